"""End-to-end A/A: reruns of one model through the simulated endpoint pass the baseline gate.

A smaller, seeded version of ``benchmarks/aa_reruns.py`` (the acceptance measurement: 40
reruns at --bsa-limit 90): 90 instances of our own neutral wording laid out over the 3
scenarios and 9 categories, k = 5, no cache (every run samples afresh) and another simulator
seed per run, the default baseline settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CS, OS, RO, Row, csv_text

from pytest_bsa.models import CATEGORIES

K = 5


def dataset() -> str:
    rows = []
    for i in range(90):
        scenario = RO if i < 27 else CS if i < 78 else OS
        labels = [f"{CATEGORIES[i % 9]}-Other"]
        if scenario == CS:
            labels.append(f"{CATEGORIES[(i + 4) % 9]}-Other")
        rows.append(Row(f"case-{i:03d}", scenario, tuple(labels)))
    return csv_text(rows)


def bsa(work: Path, name: str, seed: int, drop: float, *extra: str) -> tuple[int, dict[str, Any]]:
    script = work / f"{name}.json"
    rates = {"safe": round(0.9 - drop, 4), "covered": round(0.7 - drop, 4)}
    script.write_text(json.dumps({"default": rates, "seed": seed}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            f"--rootdir={work}",
            "--bsa-model=simulated",
            "--bsa-dataset=data.csv",
            f"--bsa-samples={K}",
            "--bsa-cache=off",
            f"--bsa-simulate-script={script.name}",
            f"--bsa-report={name}.report.json",
            *extra,
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr
    report = json.loads((work / f"{name}.report.json").read_text(encoding="utf-8"))
    return done.returncode, report


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("aa")
    (path / "data.csv").write_text(dataset(), encoding="utf-8")
    code, _ = bsa(path, "base", 1, 0.0, "--bsa-gate=report")  # the first run: measure only
    assert code == 0
    return path


def baseline_gates(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in report["gates"] if g["kind"] == "baseline"}


def test_a_rerun_with_another_seed_passes_the_default_gate(work: Path) -> None:
    code, report = bsa(work, "rerun", 2, 0.0, "--bsa-baseline=base.report.json")
    gates = baseline_gates(report)
    assert code == 0, [g["sentence"] for g in gates.values() if g["status"] == "failed"]
    assert len(gates) == 26  # overall, 3 scenarios, 9 categories x safe_at_1, think_at_1
    for metric in ("safe_at_1", "think_at_1"):
        assert gates[f"baseline::overall::{metric}"]["status"] == "passed"
    for name, gate in gates.items():
        if "::category::" in name:  # 10 to 16 instances: no category can block at limit 90
            assert gate["status"] == "not_measurable" and not gate["blocking"]
    assert report["flips"]  # the rerun really sampled afresh


def test_a_fifteen_point_drop_fails_the_overall_gates(work: Path) -> None:
    code, report = bsa(work, "drop", 3, 0.15, "--bsa-baseline=base.report.json")
    gates = baseline_gates(report)
    assert code == 1
    failed = {name for name, g in gates.items() if g["status"] == "failed"}
    assert {"baseline::overall::safe_at_1", "baseline::overall::think_at_1"} <= failed
    for name in failed:
        assert gates[name]["p_adjusted"] <= 0.05 and gates[name]["blocking"]
