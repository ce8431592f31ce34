"""Bad input is refused before the first paid call: a corpus pinned case by case.

Every case ends with exit code 4 and one message that names the bad thing and the fix, with
no traceback; the model endpoint (a simulator on 127.0.0.1) receives no request; no file in the
working directory is changed, and no file (temporary or not) is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import RO, csv_text

from pytest_bsa.simulate import Script, start_simulator
from pytest_bsa.simulate.running import RunningSimulator

TINY = Path(__file__).parent / "data" / "tiny_report.json"
ROW = {
    "id": "a",
    "query": "An everyday question.",
    "risk_summary": "A neutral risk description.",
    "dataset_name": RO,
    "label": "Rumors-Fabricated News",
}
SYS_READ_ONLY = Path("/sys")  # writes fail there even for root (tests here run as root)
NEEDS_SYS = (pytest.mark.skipif(not SYS_READ_ONLY.is_dir(), reason="needs /sys"),)


Setup = Callable[[Path], None]


def write(name: str, text: str | bytes) -> Setup:
    def setup(root: Path) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")

    return setup


def mkdir(name: str) -> Setup:
    return lambda root: (root / name).mkdir(parents=True)


def report(name: str, edit: Callable[[str], str] = lambda t: t) -> Setup:
    return write(name, edit(TINY.read_text(encoding="utf-8")))


def edited(name: str, change: Callable[[dict], None]) -> Setup:
    """The tiny report with ``change`` applied to its parsed JSON (a hand edit)."""

    def setup(root: Path) -> None:
        data = json.loads(TINY.read_text(encoding="utf-8"))
        change(data)
        (root / name).write_text(json.dumps(data), encoding="utf-8")

    return setup


def _set(path: str, value: object) -> Callable[[dict], None]:
    """Set the field at a dotted path (numbers index lists) of a report's JSON."""

    def change(data: dict) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


def both(*setups: Setup) -> Setup:
    def setup(root: Path) -> None:
        for s in setups:
            s(root)

    return setup


def sqlite(name: str, statements: tuple[str, ...]) -> Setup:
    def setup(root: Path) -> None:
        import sqlite3

        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.close()

    return setup


@dataclass(frozen=True)
class Case:
    """One bad input: the arguments (``{d}`` is the working directory), what the message must
    say (the thing, the fix), and the files the user had before the run."""

    args: tuple[str, ...]
    expect: tuple[str, ...]
    setup: Setup | None = None
    command: str = "pytest"  # or "cli": python -m pytest_bsa
    defaults: bool = True  # the valid model, judge, dataset and measure-only gate first
    marks: tuple = field(default=())


def csv_rows(*rows: dict[str, str], header: tuple[str, ...] | None = None) -> str:
    return csv_text(list(rows), header or tuple(ROW))


CASES: dict[str, Case] = {
    # -- command-line options --
    "timeout-0": Case(("--bsa-timeout=0",), ("--bsa-timeout", "'0' is not a positive number")),
    "timeout-negative": Case(("--bsa-timeout=-5",), ("--bsa-timeout", "positive number")),
    "timeout-inf": Case(("--bsa-timeout=inf",), ("--bsa-timeout", "'inf' is not a positive")),
    "retries-negative": Case(
        ("--bsa-max-retries=-1",), ("--bsa-max-retries", "'-1' is not a whole number >= 0")
    ),
    "samples-0": Case(("--bsa-samples=0",), ("--bsa-samples", "'0' is not a positive whole")),
    "samples-word": Case(("--bsa-samples=two",), ("--bsa-samples", "'two' is not a positive")),
    "limit-negative": Case(("--bsa-limit=-5",), ("--bsa-limit", "'-5' is not a positive")),
    "concurrency-0": Case(("--bsa-concurrency=0",), ("--bsa-concurrency", "'0' is not a")),
    "breaker-0": Case(("--bsa-breaker=0",), ("--bsa-breaker", "'0' is not a positive")),
    "shard-3-of-2": Case(("--bsa-shard=3/2",), ("--bsa-shard", "'3/2' is not I/N")),
    "temperature-negative": Case(("--bsa-temperature=-1",), ("--bsa-temperature", "non-negative")),
    "max-cost-nan": Case(("--bsa-max-cost=nan",), ("--bsa-max-cost", "'nan' is not a non-neg")),
    # 0 requests (tokens) per minute would never send: refused, not an INTERNALERROR (review 1)
    "rpm-0": Case(("--bsa-rpm=0",), ("--bsa-rpm", "'0' is not a positive number per minute")),
    "tpm-0": Case(("--bsa-tpm=0",), ("--bsa-tpm", "'0' is not a positive", "leave the option")),
    "rpm-inf": Case(("--bsa-rpm=inf",), ("--bsa-rpm", "'inf' is not a positive number")),
    "max-errors-negative": Case(("--bsa-max-errors=-1",), ("--bsa-max-errors", "non-negative")),
    "gate-unknown": Case(("--bsa-gate=strict",), ("--bsa-gate", "invalid choice: 'strict'")),
    "param-without-value": Case(("--bsa-param=top_p",), ("--bsa-param 'top_p'", "KEY=VALUE")),
    "param-reserved": Case(
        ("--bsa-param=model=x",), ("'model' is set by pytest-bsa", "--bsa-model")
    ),
    "price-not-numbers": Case(("--bsa-price=m=a,b",), ("--bsa-price 'm=a,b'", "MODEL=IN,OUT")),
    "model-empty": Case(("--bsa-model=",), ("--bsa-model '' is empty", "--bsa-model=openai/")),
    "api-base-ftp": Case(
        ("--bsa-api-base=ftp://127.0.0.1/v1",), ("--bsa-api-base 'ftp://", "http://127.0.0.1")
    ),
    "api-base-no-scheme": Case(
        ("--bsa-api-base=localhost:8000/v1",), ("--bsa-api-base 'localhost:8000/v1'", "http(s)")
    ),
    "judge-api-base-no-host": Case(
        ("--bsa-judge-api-base=http:///v1",), ("--bsa-judge-api-base 'http:///v1'", "with a host")
    ),
    "api-base-credentials": Case(
        ("--bsa-api-base=http://user:pw@127.0.0.1:9/v1",),
        ("credentials in the URL", "--bsa-api-key-env"),
    ),
    "key-env-is-a-key": Case(
        ("--bsa-api-key-env=sk-abc-123",), ("--bsa-api-key-env expects the NAME", "MY_ENDPOINT")
    ),
    "key-env-unset": Case(
        ("--bsa-judge-api-key-env=BSA_TEST_UNSET_VARIABLE",),
        ("--bsa-judge-api-key-env BSA_TEST_UNSET_VARIABLE", "export it"),
    ),
    "unknown-category": Case(("--bsa-category=Rumours",), ("'Rumours'", "did you mean 'Rumors'")),
    "unknown-scenario": Case(
        ("--bsa-scenario=over sensitivity",), ("'over sensitivity'", "'Over Sensitivity'")
    ),
    "no-judge": Case(
        ("--bsa-model=openai/m", "--bsa-api-base=http://127.0.0.1:9/v1", "--bsa-gate=report"),
        ("no judge model", "--bsa-judge"),
        defaults=False,
    ),
    "no-policy": Case(
        ("--bsa-model=simulated", "--bsa-dataset=sample"),
        ("no gate policy", "--bsa-gate=report"),
        defaults=False,
    ),
    "system-prompt-missing": Case(
        ("--bsa-system-prompt={d}/nowhere.txt",), ("--bsa-system-prompt", "UTF-8 text file")
    ),
    "simulate-script-invalid": Case(
        ("--bsa-model=simulated", "--bsa-simulate-script={d}/s.yaml", "--bsa-gate=report"),
        ("s.yaml is invalid", "bogus"),
        write("s.yaml", "bogus: 1\n"),
        defaults=False,
    ),
    # -- datasets --
    "dataset-missing": Case(("--bsa-dataset={d}/nowhere.csv",), ("nowhere.csv", "file not found")),
    "dataset-directory": Case(("--bsa-dataset={d}/data",), ("data", "directory"), mkdir("data")),
    "dataset-empty": Case(("--bsa-dataset={d}/d.csv",), ("d.csv", "empty"), write("d.csv", "")),
    "dataset-header-only": Case(
        ("--bsa-dataset={d}/d.csv",), ("d.csv", "no rows"), write("d.csv", csv_rows())
    ),
    "dataset-missing-column": Case(
        ("--bsa-dataset={d}/d.csv",),
        ("field 'risk_summary'", "missing column"),
        write("d.csv", csv_rows(ROW, header=("id", "query", "dataset_name", "label"))),
    ),
    "dataset-unknown-scenario": Case(
        ("--bsa-dataset={d}/d.csv",),
        ("d.csv:2: field 'dataset_name'", "Risk Omission"),
        write("d.csv", csv_rows({**ROW, "dataset_name": "Risk Omision"})),
    ),
    "dataset-duplicate-id": Case(
        ("--bsa-dataset={d}/d.csv",),
        ("d.csv:3: field 'id'", "duplicate id 'a'"),
        write("d.csv", csv_rows(ROW, ROW)),
    ),
    "dataset-nul-byte": Case(
        ("--bsa-dataset={d}/d.csv",),
        ("d.csv:2", "a NUL byte", "export the dataset again"),
        write("d.csv", csv_rows({**ROW, "query": "An every\x00day question."})),
    ),
    "dataset-not-utf8": Case(
        ("--bsa-dataset={d}/d.csv",),
        ("d.csv", "not UTF-8", "save the file as UTF-8"),
        write("d.csv", csv_rows({**ROW, "query": "caf\u00e9"}).encode("latin-1")),
    ),
    "dataset-jsonl-broken": Case(
        ("--bsa-dataset={d}/d.jsonl",), ("d.jsonl", "JSON"), write("d.jsonl", '{"id": "a",\n')
    ),
    # -- config files --
    "config-missing": Case(("--bsa-config={d}/nowhere.yaml",), ("nowhere.yaml", "cannot read")),
    "config-bad-yaml": Case(
        ("--bsa-config={d}/c.yaml",), ("c.yaml:", "not valid YAML"), write("c.yaml", "a: [1\n")
    ),
    "config-not-a-mapping": Case(
        ("--bsa-config={d}/c.yaml",), ("c.yaml", "mapping of keys"), write("c.yaml", "- 1\n")
    ),
    "config-unknown-key": Case(
        ("--bsa-config={d}/c.yaml",),
        ("c.yaml: treshold", "unknown key"),
        write("c.yaml", "treshold: 1\n"),
    ),
    "config-threshold-above-one": Case(
        ("--bsa-config={d}/c.yaml",),
        ("thresholds.overall.think_at_1", "less than or equal to 1"),
        write("c.yaml", "thresholds:\n  overall: {think_at_1: 55}\n"),
    ),
    "config-threshold-boolean": Case(
        ("--bsa-config={d}/c.yaml",),
        ("thresholds.overall.safe_at_1", "fraction such as 0.9"),
        write("c.yaml", "thresholds:\n  overall: {safe_at_1: true}\n"),
    ),
    "config-duplicate-key": Case(
        ("--bsa-config={d}/c.yaml",),
        ("c.yaml", "duplicate key 'samples'"),
        write("c.yaml", "samples: 2\nsamples: 3\n"),
    ),
    "config-baseline-no-metrics": Case(
        ("--bsa-config={d}/c.yaml",),
        ("baseline.metrics", "name at least one metric"),
        write("c.yaml", "baseline: {metrics: []}\n"),
    ),
    "config-unknown-subcategory": Case(
        ("--bsa-config={d}/c.yaml",),
        ("'Rumors-Gossip' is not a subcategory", "label column"),
        write("c.yaml", "thresholds:\n  subcategories:\n    Rumors-Gossip: {safe_at_1: 0.9}\n"),
    ),
    "config-only-error-rates": Case(
        ("--bsa-model=simulated", "--bsa-dataset=sample", "--bsa-config={d}/c.yaml"),
        ("thresholds gate only error or unjudged rates", "--bsa-gate=report"),
        write("c.yaml", "thresholds:\n  overall: {error_rate: 0.1}\n"),
        defaults=False,
    ),
    # A policy that cannot fail is none (review 1): an unsafe model passed both with exit 0
    "config-floor-of-zero": Case(
        ("--bsa-model=simulated", "--bsa-dataset=sample", "--bsa-config={d}/c.yaml"),
        ("threshold overall.safe_at_1 is 0", "can never fail", "raise it"),
        write("c.yaml", "thresholds:\n  overall:\n    safe_at_1: 0.0\n"),
        defaults=False,
    ),
    "config-instances-criteria-of-zero": Case(
        ("--bsa-model=simulated", "--bsa-dataset=sample", "--bsa-config={d}/c.yaml"),
        ("criteria of 0", "passes every judged instance", "criteria above 0"),
        write("c.yaml", "gate: instances\ncriteria:\n  default: {safe: 0.0, think: 0.0}\n"),
        defaults=False,
    ),
    # -- ini and pyproject --
    "ini-samples-not-a-number": Case(
        (),
        ("bsa_samples = 'five'", "bsa_samples = 5"),
        write("pytest.ini", "[pytest]\nbsa_samples = five\n"),
    ),
    "pyproject-unknown-key": Case(
        ("--bsa-gate=thresholds",),
        ("pyproject.toml [tool.bsa]: treshold", "unknown key"),
        write("pyproject.toml", "[tool.bsa]\ntreshold = 1\n"),
    ),
    "pyproject-samples-0": Case(
        (),
        ("pyproject.toml [tool.bsa]: samples", "greater than or equal to 1"),
        write("pyproject.toml", "[tool.bsa]\nsamples = 0\n"),
    ),
    # -- output targets of the run --
    "report-is-a-directory": Case(
        ("--bsa-report={d}/out",), ("--bsa-report", "is a directory", "name a file"), mkdir("out")
    ),
    "report-parent-is-a-file": Case(
        ("--bsa-report={d}/f.txt/r.json",),
        ("--bsa-report", "is not a directory", "writable directory"),
        write("f.txt", "x"),
    ),
    "report-unwritable": Case(
        ("--bsa-report=/sys/bsa-report.json",),
        ("--bsa-report", "not writable", "choose a writable path"),
        marks=NEEDS_SYS,
    ),
    "junit-is-a-directory": Case(
        ("--bsa-junit={d}/out",), ("--bsa-junit", "directory"), mkdir("out")
    ),
    "markdown-is-a-directory": Case(
        ("--bsa-markdown={d}/out",), ("--bsa-markdown", "directory"), mkdir("out")
    ),
    "html-is-a-directory": Case(("--bsa-html={d}/out",), ("--bsa-html", "directory"), mkdir("out")),
    "export-is-a-directory": Case(
        ("--bsa-export-upstream={d}/out",), ("--bsa-export-upstream", "directory"), mkdir("out")
    ),
    "two-outputs-one-file": Case(
        ("--bsa-report={d}/r.txt", "--bsa-markdown={d}/r.txt"),
        ("--bsa-report and --bsa-markdown both write", "its own file"),
    ),
    # pytest's own JUnit file counts too: the JSON report silently replaced it (review 1)
    "junitxml-and-report-one-file": Case(
        ("--junitxml={d}/same.out", "--bsa-report={d}/same.out"),
        ("--bsa-report and --junitxml both write", "its own file"),
    ),
    "junit-xml-alias-is-the-dataset": Case(
        ("--bsa-dataset={d}/d.csv", "--junit-xml={d}/d.csv"),
        ("--junitxml", "is an input of this run", "another file"),
        write("d.csv", csv_rows(ROW)),
    ),
    "output-overwrites-the-dataset": Case(
        ("--bsa-dataset={d}/d.csv", "--bsa-html={d}/d.csv"),
        ("--bsa-html", "is an input of this run", "another file"),
        write("d.csv", csv_rows(ROW)),
    ),
    # -- the cache --
    "cache-file-corrupt": Case(
        ("--bsa-cache-dir={d}/cache",),
        ("cache.sqlite3", "--bsa-cache=off"),
        write("cache/cache.sqlite3", b"this is not a database" * 50),
    ),
    "cache-dir-is-a-file": Case(
        ("--bsa-cache-dir={d}/cache",),
        ("is not a directory", "--bsa-cache=off"),
        write("cache", "x"),
    ),
    "cache-from-a-newer-version": Case(
        ("--bsa-cache-dir={d}/cache",),
        ("schema version '99'", "a newer pytest-bsa"),
        sqlite(
            "cache/cache.sqlite3",
            (
                "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
                "CREATE TABLE entries (key TEXT PRIMARY KEY, kind TEXT, model TEXT,"
                " created_at REAL, body TEXT)",
                "INSERT INTO meta VALUES ('schema_version', '99')",
            ),
        ),
    ),
    "cache-foreign-database": Case(
        ("--bsa-cache-dir={d}/cache",),
        ("pytest-bsa did not write", "--bsa-cache=off"),
        sqlite("cache/cache.sqlite3", ("CREATE TABLE users (name TEXT)",)),
    ),
    # -- baselines --
    "baseline-missing": Case(("--bsa-baseline={d}/b.json",), ("b.json", "cannot read report")),
    "baseline-not-json": Case(
        ("--bsa-baseline={d}/b.json",), ("b.json", "not JSON"), write("b.json", "{nope")
    ),
    "baseline-nan": Case(
        ("--bsa-baseline={d}/b.json",),
        ("b.json", "non-finite number NaN", "write it again"),
        report("b.json", lambda t: t.replace('"latency_s": 0.0', '"latency_s": NaN', 1)),
    ),
    "baseline-other-judge": Case(
        ("--bsa-baseline={d}/b.json",),
        ("refusing to compare with baseline", "--bsa-baseline-allow-mismatch"),
        report("b.json"),
    ),
    # -- python -m pytest_bsa --
    "gate-output-is-a-directory": Case(
        ("gate", "{d}/r.json", "--output={d}/out"),
        ("--output", "is a directory"),
        both(report("r.json"), mkdir("out")),
        command="cli",
    ),
    "gate-output-unwritable": Case(
        ("gate", "{d}/r.json", "--output=/sys/regated.json"),
        ("--output", "not writable"),
        report("r.json"),
        command="cli",
        marks=NEEDS_SYS,
    ),
    "gate-output-is-the-report": Case(
        ("gate", "{d}/r.json", "--output={d}/r.json"),
        ("--output", "is an input of this run"),
        report("r.json"),
        command="cli",
    ),
    "report-markdown-is-a-directory": Case(
        ("report", "{d}/r.json", "--markdown={d}/out"),
        ("--markdown", "is a directory"),
        both(report("r.json"), mkdir("out")),
        command="cli",
    ),
    "report-html-is-a-directory": Case(
        ("report", "{d}/r.json", "--html={d}/out"),
        ("--html", "is a directory"),
        both(report("r.json"), mkdir("out")),
        command="cli",
    ),
    "report-junit-is-a-directory": Case(
        ("report", "{d}/r.json", "--junit={d}/out"),
        ("--junit", "is a directory"),
        both(report("r.json"), mkdir("out")),
        command="cli",
    ),
    "report-junit-parent-is-a-file": Case(
        ("report", "{d}/r.json", "--junit={d}/f.txt/j.xml"),
        ("--junit", "is not a directory"),
        both(report("r.json"), write("f.txt", "x")),
        command="cli",
    ),
    "report-nothing-to-render": Case(
        ("report", "{d}/r.json"),
        ("nothing to render", "--markdown"),
        report("r.json"),
        command="cli",
    ),
    "report-nan": Case(
        ("report", "{d}/r.json", "--markdown={d}/s.md"),
        ("non-finite number NaN", "--bsa-report"),
        report("r.json", lambda t: t.replace('"latency_s": 0.0', '"latency_s": NaN', 1)),
        command="cli",
    ),
    "gate-infinity": Case(
        ("gate", "{d}/r.json"),
        ("non-finite number Infinity", "--bsa-report"),
        report("r.json", lambda t: t.replace('"latency_s": 0.0', '"latency_s": Infinity', 1)),
        command="cli",
    ),
    "gate-overflow": Case(
        ("gate", "{d}/r.json"),
        ("non-finite number 1e999", "--bsa-report"),
        report("r.json", lambda t: t.replace('"latency_s": 0.0', '"latency_s": 1e999', 1)),
        command="cli",
    ),
    # Values no run writes are refused, not coerced or gated (review 1)
    "gate-negative-max-errors": Case(
        ("gate", "{d}/r.json"),
        ("policy.max_errors", "greater than or equal to 0", "write it again with --bsa-report"),
        edited("r.json", _set("policy.max_errors", -1)),
        command="cli",
    ),
    "gate-sample-index-out-of-range": Case(
        ("gate", "{d}/r.json"),
        ("samples numbered [7, 1]", "0 to 1 in order"),
        edited("r.json", _set("instances.0.samples.0.index", 7)),
        command="cli",
    ),
    "gate-sample-indexes-repeated": Case(
        ("gate", "{d}/r.json"),
        ("samples numbered [0, 0]", "0 to 1 in order"),
        edited("r.json", _set("instances.0.samples.1.index", 0)),
        command="cli",
    ),
    "gate-threshold-as-text": Case(
        ("gate", "{d}/r.json"),
        ("policy.thresholds.overall.safe_at_1", "'0.8' is not a threshold", "without quotes"),
        edited("r.json", _set("policy.thresholds.overall.safe_at_1", "0.8")),
        command="cli",
    ),
    "gate-criteria-as-text": Case(
        ("gate", "{d}/r.json"),
        ("policy.criteria.default.safe", "valid number"),
        edited("r.json", _set("policy.criteria.default.safe", "1")),
        command="cli",
    ),
    "gate-samples-as-text": Case(
        ("gate", "{d}/r.json"),
        ("policy.samples", "valid integer"),
        edited("r.json", _set("policy.samples", "2")),
        command="cli",
    ),
    "gate-missing-report": Case(
        ("gate", "{d}/nowhere.json"), ("nowhere.json", "cannot read"), command="cli"
    ),
    "gate-config-bad-yaml": Case(
        ("gate", "{d}/r.json", "--config={d}/c.yaml"),
        ("c.yaml:", "not valid YAML"),
        both(report("r.json"), write("c.yaml", "a: [1\n")),
        command="cli",
    ),
    "merge-output-is-a-directory": Case(
        ("merge", "{d}/r.json", "-o", "{d}/out"),
        ("--output", "is a directory"),
        both(report("r.json"), mkdir("out")),
        command="cli",
    ),
}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    running = start_simulator(Script())
    yield running
    running.stop()


def snapshot(root: Path) -> dict[str, tuple[int, int, str] | None]:
    """Every path under ``root``: files with size, mtime and content digest; directories."""
    seen: dict[str, tuple[int, int, str] | None] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            seen[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, digest)
        else:
            seen[str(path.relative_to(root))] = None
    return seen


def _run_cli(args: list[str]) -> tuple[int, str]:
    from pytest_bsa.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


def _params() -> list:
    return [pytest.param(case, id=name, marks=case.marks) for name, case in CASES.items()]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 45


@pytest.mark.parametrize("case", _params())
def test_bad_input_is_refused_before_any_call(
    pytester: pytest.Pytester, sim: RunningSimulator, case: Case
) -> None:
    root = pytester.path
    if case.setup is not None:
        case.setup(root)
    args = [a.replace("{d}", str(root)) for a in case.args]
    before = snapshot(root)
    calls = len(sim.requests_seen())
    if case.command == "cli":
        code, text = _run_cli(args)
    else:
        defaults = [
            "--bsa-model=openai/m", f"--bsa-api-base={sim.base_url}",
            "--bsa-judge=openai/j", f"--bsa-judge-api-base={sim.base_url}",
            "--bsa-dataset=sample", "--bsa-gate=report", f"--bsa-cache-dir={root}/cache",
        ]  # fmt: skip
        result = pytester.runpytest(
            "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
            *(defaults if case.defaults else []), *args,
        )  # fmt: skip
        code, text = result.ret, result.stdout.str() + result.stderr.str()
    assert code == 4, text
    for fragment in case.expect:
        assert fragment in text, (fragment, text)
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    assert len(sim.requests_seen()) == calls  # no model (or judge) call
    assert snapshot(root) == before  # nothing changed, nothing left behind
