"""The official evaluate.py, run on our export of a full 2,000 x 5 run, gives our metrics.

Reads the benchmark from ``$BSA_DATASET_PATH`` and the official script from
``$BSA_UPSTREAM_DIR`` (both CC BY-NC, never copied here) and needs pandas; skips without them.
The run goes through the simulated endpoint (a ``bsa-simulate`` process at zero latency) and
the project's own engine; the report is built in-process, exported, and handed to the script.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import build_report

from pytest_bsa.config import build_settings
from pytest_bsa.dataset import load_dataset
from pytest_bsa.engine.build import build_engine
from pytest_bsa.metrics import ALPHA
from pytest_bsa.reporting.upstream import export_upstream
from pytest_bsa.simulate.script import unit_hash

SCENARIOS = ("Risk Omission", "Cognitive Shortcut", "Over Sensitivity")


def _required() -> tuple[Path, Path]:
    dataset = os.environ.get("BSA_DATASET_PATH")
    upstream = os.environ.get("BSA_UPSTREAM_DIR")
    script = Path(upstream or "") / "Evaluation_Metric" / "evaluate.py"
    if not dataset or not Path(dataset).is_file():
        pytest.skip("set BSA_DATASET_PATH to the real BSA dataset.csv")
    if not upstream or not script.is_file():
        pytest.skip("set BSA_UPSTREAM_DIR to the official BSA files (reference only)")
    pytest.importorskip("pandas")
    return Path(dataset), script


@pytest.fixture(scope="module")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``bsa-simulate`` process: most samples plain, a few with no answer or no reasoning."""
    dataset, _ = _required()
    ids = [i.id for i in load_dataset(dataset)]
    odd = {}
    for iid in ids:  # chosen at run time: no benchmark id is written into the repository
        draw = unit_hash("official-metric", iid)
        if draw < 0.03:
            odd[iid] = {"answer": "cut"}
        elif draw < 0.06:
            odd[iid] = {"reasoning": "empty_tags"}
        elif draw < 0.15:
            odd[iid] = {"miss": "none"}
    script = tmp_path_factory.mktemp("sim") / "script.json"
    script.write_text(
        json.dumps({"default": {"safe": 0.9, "covered": 0.7, "miss": "partial"}, "instances": odd}),
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "pytest_bsa.simulate", "--port", "0", "--script", str(script)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "bsa-simulate listening on http://127.0.0.1:N/v1"
        assert "listening on" in line, line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_official_evaluate_py_finds_our_metrics(simulator_url: str, tmp_path: Path) -> None:
    dataset, script = _required()
    instances = load_dataset(dataset)
    settings = build_settings(
        {
            "model": "openai/x",
            "api_base": simulator_url,
            "judge": "openai/j",
            "judge_api_base": simulator_url,
            "cache": "off",
            "concurrency": 64,
        },
        None,
        base_dir=tmp_path,
    )
    engine, _ = build_engine(settings, tmp_path)
    try:
        engine.submit(instances)
        results = [engine.result(i, timeout=600) for i in instances]
    finally:
        engine.close()
    report = build_report(results, settings.policy)
    assert len(report.instances) == 2000 and report.k == 5
    overall = report.groups["overall"]
    assert overall["unjudged_samples"] == overall["error_samples"] == 0
    assert overall["no_answer_samples"] > 0 and overall["no_reasoning_samples"] > 0
    exported = tmp_path / "export.csv"
    export_upstream(report, exported)

    output = tmp_path / "official.csv"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--input",
            str(exported),
            "--k",
            "5",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    with output.open(newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    theirs = {key: float(value) for key, value in row.items() if key != "model"}

    def close(ours: float, official: float) -> bool:
        """The official value is ours in percent, rounded to two decimals."""
        return abs(100 * ours - official) <= 0.005 + 1e-9

    pairs = {
        "answer_at_1": overall["safe_at_1"],
        "answer_at_k": overall["safe_at_k"],
        "think_at_1": overall["think_at_1"],
        "think_at_k": overall["think_at_k"],
    }
    for scenario in SCENARIOS:
        group = report.groups[f"scenario:{scenario}"]
        pairs[f"{scenario}_think_at_1"] = group["think_at_1"]
        pairs[f"{scenario}_think_at_k"] = group["think_at_k"]
    mismatched = {k: (100 * v, theirs[k]) for k, v in pairs.items() if not close(v, theirs[k])}
    assert mismatched == {}
    # F-Score: the script computes it from its own rounded percentages.
    rounded = theirs["think_at_1"] ** ALPHA * theirs["answer_at_1"] ** (1 - ALPHA)
    assert abs(rounded - theirs["F-Score"]) <= 0.005 + 1e-9
    assert abs(100 * overall["f_score"] - theirs["F-Score"]) <= 0.015
    # The run really exercised every label (so the True/False spelling mattered).
    with exported.open(newline="", encoding="utf-8") as handle:
        cells = {(r["dataset_name"], r["Thk_Acc_Judge"]) for r in csv.DictReader(handle)}
    assert {("Risk Omission", "True"), ("Risk Omission", "False")} <= cells
    assert 0 < theirs["Risk Omission_think_at_1"] < 100
