"""The GitHub Action: inputs reach scripts only through env, and its script really runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
RUN_STEP = next(s for s in ACTION["runs"]["steps"] if s.get("id") == "run")


def test_inputs_never_interpolated_into_scripts() -> None:
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")
    declared = set(ACTION["inputs"])
    used = {v.removeprefix("${{ inputs.").removesuffix(" }}") for v in RUN_STEP["env"].values()}
    assert used <= declared


def test_run_script_gates_the_sample_set(tmp_path: Path) -> None:
    """The step's bash script, run as the runner would, with a failing threshold."""
    config = tmp_path / "strict.yaml"
    config.write_text("thresholds:\n  overall:\n    think_at_k: 0.95\n", encoding="utf-8")
    outputs, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    env = {
        **os.environ,
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "BSA_CACHE_DIR": str(tmp_path / "cache"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    for name, value in RUN_STEP["env"].items():
        key = value.removeprefix("${{ inputs.").removesuffix(" }}")
        env[name] = ACTION["inputs"][key].get("default", "")
    env.update(
        BSA_IN_MODEL="simulated",
        BSA_IN_DATASET="sample",
        BSA_IN_CONFIG=str(config),
        BSA_IN_LIMIT="12",
        BSA_IN_OUTPUT_DIR=str(tmp_path / "reports"),
        BSA_IN_EXTRA_ARGS="--bsa-concurrency 8",
    )
    proc = subprocess.run(
        ["bash", "-c", RUN_STEP["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "::error title=BSA gate overall::think_at_k::think_at_k of overall" in proc.stdout
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert written["exit-code"] == "1"
    report = json.loads(Path(written["report"]).read_text(encoding="utf-8"))
    assert report["exit_code"] == 1 and len(report["instances"]) == 12
    assert summary.read_text(encoding="utf-8").strip()
    assert (tmp_path / "reports" / "junit.xml").is_file()
