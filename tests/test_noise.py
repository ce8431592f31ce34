"""``python -m pytest_bsa noise``: run-to-run variation of A/A reports, drift, max_drop advice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from factories import build_report, synthetic_results

from pytest_bsa.config import GatePolicy
from pytest_bsa.noise import NoiseError, measure_noise, render
from pytest_bsa.report import Report, write_report

K = 5
POLICY = GatePolicy(samples=K)


def rerun(seed: int, p_think: float = 0.7, n: int = 180, **kw: str) -> Report:
    """A report of one more run of the same model (same instances, fresh samples)."""
    return build_report(
        synthetic_results(n, K, seed=seed, p_safe=0.9, p_think=p_think), POLICY, **kw
    )


def test_reruns_of_an_unchanged_model_show_no_drift() -> None:
    reports = [(f"run{i}.json", rerun(seed=i)) for i in range(6)]
    noise = measure_noise(reports)
    assert noise.runs == 6 and noise.metrics == ("safe_at_1", "think_at_1")
    overall = {g.metric: g for g in noise.groups if g.group == "overall"}
    for g in overall.values():
        assert g.n == 180 and g.runs == 6
        # Exchangeable reruns: the run-to-run spread is what the instances predict.
        assert 0.4 * g.expected_sd < g.run_sd < 2.0 * g.expected_sd
        assert g.drift_q > 0.05
        assert g.binomial_ratio is not None and 0.6 < g.binomial_ratio < 1.5
    assert overall["think_at_1"].mean == pytest.approx(0.7, abs=0.03)
    assert noise.suggested_max_drop <= 0.05
    groups = {g.group for g in noise.groups}
    assert "scenario:Risk Omission" in groups and "category:Rumors" in groups
    text = "\n".join(render(noise))
    assert "no run-level drift beyond instance noise" in text
    assert "the default 0.05 covers it" in text


def test_a_drifting_judge_is_detected_and_max_drop_suggested_to_cover_it() -> None:
    # Every other rerun the judge calls 12 points fewer reasoning traces correct.
    reports = [(f"run{i}.json", rerun(seed=i, p_think=0.72 if i % 2 else 0.6)) for i in range(6)]
    noise = measure_noise(reports)
    think = next(g for g in noise.groups if g.group == "overall" and g.metric == "think_at_1")
    safe = next(g for g in noise.groups if g.group == "overall" and g.metric == "safe_at_1")
    assert think.drift_q <= 0.05 and think.drift_sd > 0.03
    assert think.largest_drop > 0.08
    assert safe.drift_sd < think.drift_sd
    assert noise.suggested_max_drop == think.suggested_max_drop > 0.05
    text = "\n".join(render(noise))
    assert "run-level drift beyond instance noise" in text and "overall think_at_1" in text
    assert "does NOT cover it" in text


def test_reports_that_are_not_reruns_are_refused() -> None:
    with pytest.raises(NoiseError, match="at least two reports"):
        measure_noise([("a.json", rerun(1))])
    with pytest.raises(NoiseError, match="differ in model"):
        measure_noise([("a.json", rerun(1)), ("b.json", rerun(2, model="other-model"))])
    with pytest.raises(NoiseError, match="same verdicts on every instance"):
        measure_noise([("a.json", rerun(1)), ("b.json", rerun(1))])
    with pytest.raises(NoiseError, match="share fewer than 2 instances"):
        measure_noise([("a.json", rerun(1, n=1)), ("b.json", rerun(2, n=1))])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_bsa", "noise", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_prints_the_table_or_json_and_refuses_bad_input(tmp_path: Path) -> None:
    for i in range(3):
        write_report(rerun(seed=10 + i), tmp_path / f"run{i}.json")
    done = _cli("run0.json", "run1.json", "run2.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("run-to-run noise over 3 reruns")
    assert any(line.startswith("overall") and "think_at_1" in line for line in lines)
    assert "suggested baseline.max_drop: at least" in done.stdout
    data = json.loads(_cli("run0.json", "run1.json", "--json", cwd=tmp_path).stdout)
    assert data["runs"] == 2 and data["groups"][0]["group"] == "overall"
    one = _cli("run0.json", "--metric", "think_at_1", cwd=tmp_path)
    assert one.returncode == 4 and one.stdout == ""
    assert one.stderr.strip() == (
        "python -m pytest_bsa noise: give at least two reports of reruns of the same model"
    )
    missing = _cli("run0.json", "nope.json", cwd=tmp_path)
    assert missing.returncode == 4 and "cannot read report 'nope.json'" in missing.stderr
    assert "Traceback" not in missing.stderr
