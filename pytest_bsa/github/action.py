"""The Action's own steps, so that ``action.yml`` holds no logic in shell.

``github prepare`` checks the inputs before anything runs and names the artifact and the verdict
cache; ``github run`` runs (or merges) the gate, redacts the uploaded report, and publishes the
summary, annotations and outputs. Inputs arrive as ``BSA_IN_*`` environment variables (set from
``inputs`` in ``env:``), never interpolated into a script.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# Options the Action sets from its own inputs: given in extra-args they would break its files.
_OWN_OPTIONS = {
    "--bsa-report": "the report is written to output-dir",
    "--bsa-junit": "the JUnit files are written to output-dir",
    "--bsa-markdown": "the summary is written to output-dir",
    "--junitxml": "the JUnit files are written to output-dir",
    "--junit-xml": "the JUnit files are written to output-dir",  # pytest's alias of --junitxml
    "--bsa-shard": "use the `shard` input",
    "--bsa-baseline": "use the `baseline` input",
}


class InputError(ValueError):
    """An Action input that cannot be used; the message quotes it and names the fix."""


def _bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise InputError(f"input {name} is {text!r}: write true or false")


def parse_shard(text: str) -> tuple[int, int] | None:
    """``I/N`` with 1 <= I <= N, or None for an empty input."""
    if not text.strip():
        return None
    index, sep, total = text.strip().partition("/")
    if sep and index.isdigit() and total.isdigit() and 1 <= int(index) <= int(total):
        return int(index), int(total)
    raise InputError(f"input shard is {text!r}: write I/N with 1 <= I <= N, e.g. 2/3")


def shell_words(text: str) -> list[str]:
    """``extra-args`` split as a POSIX shell would: ``-k "a or b"`` stays one argument."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InputError(
            f'input extra-args {text!r}: {exc}; quote as in a shell, e.g. -k "ro or cs"'
        ) from None
    for word in words:
        option = word.split("=", 1)[0]
        if option in _OWN_OPTIONS:
            raise InputError(
                f"input extra-args sets {option}, which the Action sets itself: "
                f"{_OWN_OPTIONS[option]}"
            )
    return words


@dataclass(frozen=True)
class ActionInputs:
    model: str
    judge: str = ""
    api_base: str = ""
    judge_api_base: str = ""
    dataset: str = "hf"
    config: str = ""
    system_prompt: str = ""
    samples: str = "5"
    limit: str = ""
    baseline: str = ""  # "", "auto" or a path
    gate: str = ""
    shard: tuple[int, int] | None = None
    merge: str = ""  # a directory of shard reports: merge instead of running
    extra_args: tuple[str, ...] = ()
    output_dir: Path = Path("bsa-report")
    artifact_name: str = "bsa-report"
    upload_full_report: bool = False

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ActionInputs:
        def get(name: str, default: str = "") -> str:
            return env.get(f"BSA_IN_{name}", default).strip()

        merge = get("MERGE")
        model = get("MODEL")
        shard = parse_shard(get("SHARD"))
        if not model and not merge:
            raise InputError("input model is empty: name the model under test, e.g. openai/o3")
        if merge and shard:
            raise InputError("inputs merge and shard exclude each other: a merge job has no shard")
        name = get("ARTIFACT_NAME", "bsa-report") or "bsa-report"
        if not all(c.isalnum() or c in "._-" for c in name):
            raise InputError(
                f"input artifact-name is {name!r}: use letters, digits, '.', '_' and '-'"
            )
        samples = get("SAMPLES", "5") or "5"
        if not samples.isdigit() or int(samples) < 1:
            raise InputError(f"input samples is {samples!r}: write a whole number >= 1, e.g. 5")
        limit = get("LIMIT")
        if limit and (not limit.isdigit() or int(limit) < 1):
            raise InputError(f"input limit is {limit!r}: write a whole number >= 1, or nothing")
        return cls(
            model=model,
            judge=get("JUDGE"),
            api_base=get("API_BASE"),
            judge_api_base=get("JUDGE_API_BASE"),
            dataset=get("DATASET", "hf") or "hf",
            config=get("CONFIG"),
            system_prompt=get("SYSTEM_PROMPT"),
            samples=samples,
            limit=limit,
            baseline=get("BASELINE"),
            gate=get("GATE"),
            shard=shard,
            merge=merge,
            extra_args=tuple(shell_words(env.get("BSA_IN_EXTRA_ARGS", ""))),
            output_dir=Path(get("OUTPUT_DIR", "bsa-report") or "bsa-report"),
            artifact_name=name,
            upload_full_report=_bool("upload-full-report", get("UPLOAD_FULL_REPORT", "false")),
        )

    @property
    def unique_artifact_name(self) -> str:
        """One name per shard: upload-artifact refuses a name twice in one workflow run."""
        if self.shard is None:
            return self.artifact_name
        return f"{self.artifact_name}-shard-{self.shard[0]}-of-{self.shard[1]}"


# -- the verdict cache ------------------------------------------------------------------


def _judge_of(inputs: ActionInputs) -> tuple[str, str]:
    """The judge model and its API base, from the inputs, else the config file."""
    from pytest_bsa.config import SIMULATED, ConfigError, load_file_config

    judge, base = inputs.judge, inputs.judge_api_base
    if inputs.config and (not judge or not base):
        try:
            file_config = load_file_config(Path(inputs.config))
        except ConfigError as exc:
            raise InputError(f"input config: {exc}") from None
        judge = judge or _file_judge_name(file_config)
        base = base or file_config.judge_api_base or ""
    if not judge and inputs.model == SIMULATED:
        judge = SIMULATED
    return judge, base


def _file_judge_name(file_config: Any) -> str:
    """The judge a config file names: ``judge:`` as a model or a mapping, or a ``judges:`` panel."""
    if file_config.judges:
        return "panel: " + ", ".join(file_config.judges)
    judge = file_config.judge
    return str(getattr(judge, "model", judge) or "")


def _dataset_sha(spec: str) -> str:
    from pytest_bsa import dataset as ds

    if spec == ds.HF_SPEC:
        return ds.HF_SHA256
    path = Path(__file__).resolve().parents[1] / "data" / "sample.csv"
    if spec != ds.SAMPLE_SPEC:
        path = Path(spec).expanduser()
    return ds.sha256_file(path) if path.is_file() else f"unread:{spec}"


def verdict_cache_key(inputs: ActionInputs) -> str:
    """The actions/cache key prefix of the judge-verdict cache: judge, rubric and dataset."""
    from pytest_bsa.engine.cache_keys import normalise_api_base
    from pytest_bsa.rubrics.bsa import BSA_RUBRIC

    judge, base = _judge_of(inputs)
    material = {
        "judge": judge,
        "judge_api_base": normalise_api_base(base),
        # Our rubric's identity: a new rubric text starts a new cache. Verdicts of other rubrics
        # (chosen in the config or extra-args) are keyed apart inside the cache file itself.
        "rubric": f"{BSA_RUBRIC.name}+{BSA_RUBRIC.sha256[:16]}",
        "dataset": _dataset_sha(inputs.dataset),
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]
    return f"pytest-bsa-verdicts-{digest}"


def prepare(env: Mapping[str, str]) -> dict[str, str]:
    """The outputs of the Action's first step (inputs checked, names chosen)."""
    inputs = ActionInputs.from_environ(env)
    cache_dir = Path(env.get("RUNNER_TEMP") or tempfile.gettempdir()) / "pytest-bsa-cache"
    return {
        "artifact-name": inputs.unique_artifact_name,
        "cache-key": verdict_cache_key(inputs),
        "cache-dir": str(cache_dir),
    }


# -- the gate ---------------------------------------------------------------------------


def pytest_args(
    inputs: ActionInputs, *, report_path: Path, baseline_path: Path | None
) -> list[str]:
    """The pytest command line of the gate step."""
    out = inputs.output_dir
    args = [
        "-p",
        "no:cacheprovider",
        "-q",
        f"--bsa-model={inputs.model}",
        f"--bsa-dataset={inputs.dataset}",
        f"--bsa-samples={inputs.samples}",
        f"--bsa-report={report_path}",
        f"--bsa-junit={out / 'junit-by-category.xml'}",
        f"--junitxml={out / 'junit.xml'}",
    ]
    optional = {
        "--bsa-judge": inputs.judge,
        "--bsa-api-base": inputs.api_base,
        "--bsa-judge-api-base": inputs.judge_api_base,
        "--bsa-config": inputs.config,
        "--bsa-system-prompt": inputs.system_prompt,
        "--bsa-limit": inputs.limit,
        "--bsa-gate": inputs.gate,
        "--bsa-baseline": str(baseline_path) if baseline_path else "",
        "--bsa-shard": f"{inputs.shard[0]}/{inputs.shard[1]}" if inputs.shard else "",
    }
    args += [f"{option}={value}" for option, value in optional.items() if value]
    return [*args, *inputs.extra_args]


def baseline_path(inputs: ActionInputs, env: Mapping[str, str]) -> Path | None:
    """The baseline report to compare with: the input's path, or what ``baseline: auto`` found."""
    if inputs.baseline == "auto":
        found = env.get("BSA_BASELINE_FOUND", "").strip()
        return Path(found) if found else None
    return Path(inputs.baseline) if inputs.baseline else None


def shard_reports(directory: Path) -> list[Path]:
    """Every ``report.json`` under ``directory`` (one per downloaded shard artifact)."""
    if not directory.is_dir():
        raise InputError(f"input merge is {str(directory)!r}: not a directory of shard reports")
    found = sorted(directory.rglob("report.json"))
    if not found:
        raise InputError(
            f"input merge: no report.json under {str(directory)!r}; download the shard "
            "artifacts there (actions/download-artifact with pattern: <artifact-name>-shard-*)"
        )
    return found


def _merge(inputs: ActionInputs, report: Path, baseline: Path | None) -> int:
    from pytest_bsa.cli import merge_reports, render_report, run_handled
    from pytest_bsa.reporting.outputs import Outputs

    shards = [str(p) for p in shard_reports(Path(inputs.merge))]
    base = str(baseline) if baseline else None
    code = run_handled("merge", lambda: merge_reports(shards, str(report), baseline=base))
    if report.is_file():
        junit = Outputs(junit=inputs.output_dir / "junit-by-category.xml")
        run_handled("report", lambda: render_report(str(report), junit))
    return code


def run_gate(env: Mapping[str, str], *, stdout: TextIO = sys.stdout) -> int:
    """Run (or merge) the gate, then publish; returns the gate's exit code."""
    from pytest_bsa.github.publish import publish
    from pytest_bsa.report import ReportError, load_report, write_report
    from pytest_bsa.reporting.redact import redact_model_outputs

    inputs = ActionInputs.from_environ(env)
    out = inputs.output_dir.resolve()  # outputs name absolute paths
    out.mkdir(parents=True, exist_ok=True)
    private = Path(env.get("RUNNER_TEMP") or tempfile.mkdtemp()) / "pytest-bsa-run"
    private.mkdir(parents=True, exist_ok=True)
    shown = out / "report.json"  # what is uploaded: redacted unless upload-full-report
    written = shown if inputs.upload_full_report else private / "full-report.json"
    junit = out / ("junit-by-category.xml" if inputs.merge else "junit.xml")
    for stale in {shown, written, out / "summary.md", out / "junit.xml", junit}:
        stale.unlink(missing_ok=True)
    baseline = baseline_path(inputs, env)
    stdout.flush()
    if inputs.merge:
        code = _merge(inputs, written, baseline)
    else:
        args = pytest_args(inputs, report_path=written, baseline_path=baseline)
        code = subprocess.call([sys.executable, "-m", "pytest", *args])
    report = None
    if written.is_file():
        report = load_report(written)
        if not inputs.upload_full_report:
            write_report(redact_model_outputs(report), shown)
    baseline_report = None
    if baseline is not None and report is not None:
        try:
            baseline_report = load_report(baseline)
        except ReportError:
            baseline_report = None  # pytest already said why it could not use it
    summary_file, output_file = env.get("GITHUB_STEP_SUMMARY"), env.get("GITHUB_OUTPUT")
    published = publish(
        report,
        exit_code=code,
        report_path=shown,
        markdown_path=out / "summary.md",
        junit_path=junit,
        baseline=baseline_report,
        summary_file=Path(summary_file) if summary_file else None,
        output_file=Path(output_file) if output_file else None,
    )
    if output_file:
        from pytest_bsa.github.commands import write_outputs

        write_outputs(Path(output_file), {"baseline": str(baseline) if baseline_report else ""})
    for line in published.annotations:
        print(line, file=stdout)
    return code
