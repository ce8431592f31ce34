"""Every path to a green run is a measurement of the model under test against a policy.

End-to-end through the simulated endpoint's socket: the situations of issue #8 ("Why") each end
non-zero, and a measure-only run says REPORT ONLY everywhere it reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import (
    endpoint_args,
    read_json,
    regated_exit_code,
    requests,
    run_bsa,
)

from pytest_bsa.simulate import Behaviour, Fault, FaultMatch, Script, start_simulator

SAFE = Behaviour(safe=True, covered=True)
UNSAFE = Behaviour(safe=False, covered=False)
WAYS_OUT = (
    "--bsa-config FILE",
    "[tool.bsa] in pyproject.toml",
    "--bsa-baseline",
    "--bsa-gate=report",
)


def _plain(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A run exactly as given (no policy added by the helpers)."""
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


# -- no policy, no pass --


def test_an_unsafe_model_without_a_policy_is_refused_before_any_call(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    sim = simulator(Script(default=UNSAFE))
    result = _plain(
        pytester, *endpoint_args(sim), "--bsa-dataset=sample", f"--bsa-cache-dir={cache_dir}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "no gate policy: it has no threshold and no baseline" in err
    for way in WAYS_OUT:
        assert way in err, way
    assert "Traceback" not in err
    assert requests(sim) == (0, 0)
    assert not list(cache_dir.iterdir())  # not even the cache was touched


def test_the_projects_before_stop_check_exits_4_from_an_empty_directory(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "--bsa-model=simulated", "--bsa-dataset=sample", "--bsa-limit=3",
            "--bsa-samples=1", "--bsa-cache=off",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 4, done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


def test_thresholds_only_on_error_rates_are_not_a_policy(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    sim = simulator(Script(default=UNSAFE))
    config = pytester.makefile(".yaml", bsa="thresholds:\n  overall: {error_rate: 0.1}\n")
    result = _plain(
        pytester, *endpoint_args(sim), "--bsa-dataset=sample", f"--bsa-config={config}",
        f"--bsa-cache-dir={cache_dir}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "its thresholds gate only error or unjudged rates" in result.stderr.str()
    assert requests(sim) == (0, 0)


def test_a_policy_that_measures_nothing_on_the_selection_fails(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    """Thresholds only on a category the selection does not contain: nothing was gated."""
    sim = simulator(Script(default=UNSAFE))
    config = pytester.makefile(
        ".yaml", bsa="thresholds:\n  categories:\n    Pornography: {safe_at_1: 0.9}\n"
    )
    result = run_bsa(
        pytester, "--bsa-dataset=sample", "--bsa-category=Rumors", "--bsa-samples=1",
        f"--bsa-config={config}", "--bsa-report=r.json", cache_dir=cache_dir, sim=sim,
    )  # fmt: skip
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["GATE FAILED overall::policy: the run gated nothing about the model: none of its 1 *"]
    )


# -- measure only --


def test_a_measure_only_run_says_report_only_everywhere(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    sim = simulator(Script(default=UNSAFE))
    config = pytester.makefile(".yaml", bsa="thresholds:\n  overall: {safe_at_1: 0.9}\n")
    result = run_bsa(
        pytester, "--bsa-dataset=sample", "--bsa-limit=4", "--bsa-samples=1",
        f"--bsa-config={config}", "--bsa-gate=report", "--bsa-report=r.json",
        "--bsa-markdown=s.md", "--bsa-junit=j.xml", "--bsa-html=r.html", "--junitxml=p.xml",
        cache_dir=cache_dir, sim=sim,
    )  # fmt: skip
    out = result.stdout.str()
    assert result.ret == 0, out  # the threshold is advisory; the run measured everything
    result.stdout.fnmatch_lines(
        [
            "bsa: * | gate report (REPORT ONLY: thresholds and baseline are advisory)",
            "REPORT ONLY: measured without a gate policy (--bsa-gate=report); 1 advisory *",
            "ADVISORY overall::safe_at_1: safe_at_1 of overall is 0.000*",
        ]
    )
    assert "GATE FAILED" not in out
    data = read_json(pytester.path / "r.json")
    assert data["report_only"] is True and data["policy"]["gate"] == "report"
    gate = next(g for g in data["gates"] if g["name"] == "overall::safe_at_1")
    assert (gate["status"], gate["advisory"]) == ("failed", True)
    assert data["exit_code"] == 0
    markdown = (pytester.path / "s.md").read_text(encoding="utf-8")
    assert markdown.startswith("### 📋 BSA REPORT ONLY")
    assert "REPORT ONLY: advisory misses (1, not enforced)" in markdown
    assert "BSA REPORT ONLY" in (pytester.path / "r.html").read_text(encoding="utf-8")
    for name in ("j.xml", "p.xml"):
        root = ET.parse(pytester.path / name).getroot()
        values = {p.get("value") for p in root.iter("property")}
        assert "REPORT ONLY" in values, name
    ours = ET.parse(pytester.path / "j.xml").getroot()
    advisory = [c for c in ours.iter("testcase") if c.get("name") == "safe_at_1"]
    assert advisory[0].find("skipped").get("message").startswith("REPORT ONLY (advisory")


def test_a_measure_only_run_that_measured_nothing_fails(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    broken = Fault(match=FaultMatch(role="judge"), kind="malformed_verdict")
    sim = simulator(Script(default=SAFE, faults=(broken,)))
    result = run_bsa(
        pytester, "--bsa-dataset=sample", "--bsa-limit=3", "--bsa-samples=1",
        "--bsa-gate=report", "--bsa-report=r.json", cache_dir=cache_dir, sim=sim,
    )  # fmt: skip
    assert result.ret == 1
    result.stdout.fnmatch_lines(["GATE FAILED overall::judged: none of the 3 samples got *"])


# -- a swapped checkpoint is never served from the cache --


def _checkpoint(name: str, behaviour: Behaviour, *faults: Fault) -> Script:
    return Script(
        default=behaviour, served_model=name, system_fingerprint=f"fp-{name}", faults=faults
    )


def test_a_checkpoint_swapped_under_the_same_name_and_url_is_sampled_afresh(
    pytester: pytest.Pytester, cache_dir: Path
) -> None:
    args = ("--bsa-dataset=sample", "--bsa-samples=2")
    old = start_simulator(_checkpoint("ckpt-1", SAFE))
    try:
        first = run_bsa(pytester, *args, "--bsa-report=base.json", cache_dir=cache_dir, sim=old)
        assert first.ret == 0, first.stdout.str()
        port = old.port
    finally:
        old.stop()
    new = start_simulator(_checkpoint("ckpt-2", UNSAFE), port=port)  # same name, same URL
    # 45 instances x 2 samples are too few to gate a 20-point drop; a coarser bar lets the
    # overall comparisons block (the default would fail the run's policy gate instead).
    (pytester.path / "coarse.yaml").write_text("baseline: {power_drop: 0.6}\n")
    try:
        second = run_bsa(
            pytester, *args, "--bsa-baseline=base.json", "--bsa-report=new.json",
            "--bsa-markdown=new.md", "--bsa-config=coarse.yaml", cache_dir=cache_dir, sim=new,
        )  # fmt: skip
        assert requests(new)[0] == 45 * 2  # every answer asked of the endpoint again
    finally:
        new.stop()
    assert second.ret == 1, second.stdout.str()
    second.stdout.fnmatch_lines(["requests: model 90 (0 retries), * | cache hits: model 0, *"])
    second.stdout.fnmatch_lines(["GATE FAILED baseline::overall::safe_at_1: *"])
    data = read_json(pytester.path / "new.json")
    answers = data["provenance"]["answers"]
    assert answers["from_cache"] == 0 and answers["resumed"] is False
    assert answers["served"] == [
        {"model": "ckpt-2", "system_fingerprint": "fp-ckpt-2", "answers": 90}
    ]
    base = read_json(pytester.path / "base.json")["provenance"]["answers"]["served"]
    assert base == [{"model": "ckpt-1", "system_fingerprint": "fp-ckpt-1", "answers": 90}]
    markdown = (pytester.path / "new.md").read_text(encoding="utf-8")
    assert "0 from the cache; served: ckpt-2 / fp-ckpt-2 x90" in markdown
    # The saved report alone re-gates to the run's exit code, baseline gates included.
    assert regated_exit_code(pytester.path / "new.json") == 1


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_an_interrupted_run_is_not_resumed_into_a_swapped_checkpoint(
    pytester: pytest.Pytester, cache_dir: Path, workers: tuple[str, ...]
) -> None:
    args = ("--bsa-dataset=sample", "--bsa-limit=6", "--bsa-samples=2", "--bsa-max-retries=0")
    stop = Fault(match=FaultMatch(instance="*", sample=1, role="model"), kind="server_error")
    old = start_simulator(_checkpoint("ckpt-1", SAFE, stop))
    try:
        first = run_bsa(pytester, *args, "-x", cache_dir=cache_dir, sim=old)
        assert first.ret == 1  # stopped at the first error: an interrupted run
        port = old.port
    finally:
        old.stop()
    new = start_simulator(_checkpoint("ckpt-2", SAFE), port=port)
    try:
        again = run_bsa(
            pytester, *args, *workers, "--bsa-report=r.json", "--bsa-markdown=r.md",
            cache_dir=cache_dir, sim=new,
        )  # fmt: skip
        model_requests = requests(new)[0]
    finally:
        new.stop()
    assert again.ret == 0, again.stdout.str()
    again.stdout.fnmatch_lines(["bsa: answers: resuming interrupted run * if the endpoint still*"])
    if not workers:  # each pytest-xdist worker checks once
        assert model_requests == 6 * 2  # the check call, then every other answer afresh
    answers = read_json(pytester.path / "r.json")["provenance"]["answers"]
    assert answers["resumed"] is False and answers["from_cache"] == 0
    assert "the endpoint now serves 'ckpt-2'" in answers["note"]
    assert "interrupted run saw 'ckpt-1'" in answers["note"]
    # Review 1: the header's "resuming" was the last word the terminal said; the summary now
    # says what happened, and so does the Markdown.
    again.stdout.fnmatch_lines(
        ["answers: the endpoint now serves 'ckpt-2' *: not resumed, every answer sampled afresh"]
    )
    assert "resumed interrupted run" not in again.stdout.str()
    assert "not resumed, every answer sampled afresh" in (pytester.path / "r.md").read_text()


# -- benchmark-only collection --

UNIT_TEST = "def test_unit():\n    assert 2 + 2 == 5\n"
POLICY = "thresholds:\n  overall: {safe_at_1: 0.5}\n"


def test_a_model_set_in_the_ini_file_runs_the_projects_tests_too(
    pytester: pytest.Pytester, cache_dir: Path
) -> None:
    pytester.makefile(".yaml", bsa=POLICY)
    pytester.makeini(
        "[pytest]\nbsa_model = simulated\nbsa_dataset = sample\nbsa_config = bsa.yaml\n"
    )
    pytester.makepyfile(test_unit=UNIT_TEST)
    result = _plain(pytester, "--bsa-limit=2", "--bsa-samples=1", f"--bsa-cache-dir={cache_dir}")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "bsa: the model is set in a file, not on the command line: the project's own tests "
            "run too",
            "*FAILED test_unit.py::test_unit - assert (2 + 2) == 5*",
        ]
    )
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1  # the unit test; the benchmark measured and passed
    # 2 instances, then the gates: the policy's threshold, the unjudged ceiling, the error budget.
    assert outcomes["passed"] + outcomes.get("xfailed", 0) == 2 + 3


def test_a_model_on_the_command_line_runs_only_the_benchmark(
    pytester: pytest.Pytester, cache_dir: Path
) -> None:
    pytester.makepyfile(test_unit=UNIT_TEST)
    result = run_bsa(
        pytester, "--bsa-model=simulated", "--bsa-dataset=sample", "--bsa-limit=2",
        "--bsa-samples=1", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    assert "test_unit" not in result.stdout.str()


@pytest.mark.parametrize("spelling", [["--bsa-model="], ["--bsa-model", ""], ["--bsa-model", " "]])
def test_an_empty_model_is_refused_not_ignored(
    pytester: pytest.Pytester, spelling: list[str]
) -> None:
    pytester.makepyfile(test_unit="def test_unit():\n    pass\n")
    result = _plain(pytester, *spelling, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "is empty (an unset CI variable?)" in err
    assert "e.g. --bsa-model=openai/my-model" in err


def test_report_of_a_measure_only_run_keeps_its_verdict_through_regating(
    pytester: pytest.Pytester, cache_dir: Path
) -> None:
    result = run_bsa(
        pytester, "--bsa-model=simulated", "--bsa-dataset=sample", "--bsa-limit=3",
        "--bsa-samples=1", "--bsa-report=r.json", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == 0
    done = subprocess.run(
        [sys.executable, "-m", "pytest_bsa", "gate", "r.json"],
        cwd=pytester.path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert "REPORT ONLY (nothing enforced failed)" in done.stdout
    assert json.loads((pytester.path / "r.json").read_text())["report_only"] is True
