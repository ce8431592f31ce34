"""Regressions from a review: partial runs never pass, limits hold, keys stay out."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_bsa.config import ConfigError, build_settings
from pytest_bsa.engine.openai_compat import chat_url
from pytest_bsa.report import ReportError, load_report

SAMPLE = [
    "--bsa-model=simulated",
    "--bsa-dataset=sample",
    "-p",
    "no:cacheprovider",
    "--bsa-gate=report",
]


def _script(pytester: pytest.Pytester, text: str) -> str:
    path = pytester.path / "script.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _gate(report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_bsa", "gate", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_run_stopped_early_writes_a_report_that_never_passes(pytester: pytest.Pytester) -> None:
    script = _script(
        pytester,
        "faults:\n  - match: {instance: '*', sample: 0, role: model}\n"
        "    kind: server_error\n    times: 100\n",
    )
    result = pytester.runpytest_subprocess(
        *SAMPLE, f"--bsa-simulate-script={script}", "--bsa-max-retries=0",
        "--bsa-max-errors=50", "-x", "--bsa-cache=off", "--bsa-report=r.json",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["complete"] is False and report["exit_code"] == 1
    assert report["provenance"]["selection"]["instances"] == 45
    regate = _gate(pytester.path / "r.json")
    assert regate.returncode == 1
    assert "FAIL overall::completeness: 44 of 45 selected instances were not evaluated" in (
        regate.stdout
    )


def test_a_run_whose_judge_never_answers_fails(pytester: pytest.Pytester) -> None:
    script = _script(
        pytester,
        "faults:\n  - match: {instance: '*', sample: '*', role: judge}\n"
        "    kind: malformed_verdict\n    times: 100\n",
    )
    result = pytester.runpytest_subprocess(
        *SAMPLE, f"--bsa-simulate-script={script}", "--bsa-limit=3", "--bsa-samples=1",
        "--bsa-cache=off",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*GATE FAILED overall::judged: none of the 3 samples got*"])


def test_cost_limit_holds_within_the_calls_in_flight(pytester: pytest.Pytester) -> None:
    # The estimate (the simulator's usual short answers) is under the limit, so the run starts;
    # the answers are 3,000 words long, so the run itself must stop at the limit.
    script = _script(pytester, "default: {words: 3000}\n")
    result = pytester.runpytest_subprocess(
        *SAMPLE, f"--bsa-simulate-script={script}", "--bsa-limit=3",
        "--bsa-price=simulated=1,1000", "--bsa-max-cost=2", "--bsa-concurrency=2",
        "--bsa-cache=off", "--bsa-report=r.json",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = json.loads((pytester.path / "r.json").read_text())
    totals = report["totals"]
    spent = totals["model"]["cost_usd"] + totals["judge"]["cost_usd"]
    # Two pools (model, judge) of two calls each may be in flight; judge calls cost more.
    in_flight = sum(
        2 * totals[r]["cost_usd"] / max(totals[r]["calls"], 1) for r in ("model", "judge")
    )
    assert spent > 2  # the estimate was beaten: only the in-run limit stopped it
    assert spent <= 2 + in_flight
    gate = next(g for g in report["gates"] if g["name"] == "overall::completeness")
    assert gate["status"] == "failed"
    assert (
        "the run stopped: the run reached its cost limit of $2 (--bsa-max-cost)"
        in (gate["sentence"])
    )
    assert report["stopped"] and report["complete"] is False
    # One line says why and how much was done; nothing per sample or per instance.
    out = result.stdout.str()
    stop = [line for line in result.outlines if line.startswith("!") and "stopped" in line]
    assert len(stop) == 1, out
    assert re.search(r"stopped after \d+ of 3 instances: the run reached its cost limit", stop[0])
    assert "not run" not in out


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"api_base": "http://user:pw@127.0.0.1:8000/v1"}, "credentials in the URL"),
        ({"params": {"model": "other"}}, "'model' is set by pytest-bsa itself"),
        ({"params": {"stream": True}}, "'stream' is set by pytest-bsa itself"),
    ],
)
def test_settings_refuse_what_would_leak_or_be_overridden(cli: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings({"model": "openai/m", "judge": "openai/j", **cli}, None, base_dir=Path())


def test_chat_url_keeps_a_query_string_at_the_end() -> None:
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("https://h/openai?api-version=2024") == (
        "https://h/openai/chat/completions?api-version=2024"
    )


def _write_report(tmp_path: Path, mutate) -> Path:
    base = json.loads((Path(__file__).parent / "data" / "tiny_report.json").read_text())
    mutate(base)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(base), encoding="utf-8")
    return path


def test_hand_edited_reports_are_checked(tmp_path: Path) -> None:
    def wrong_k(data: dict) -> None:
        data["policy"]["samples"] = 7

    def duplicate(data: dict) -> None:
        data["instances"].append(data["instances"][0])

    for mutate, message in ((wrong_k, "policy.samples is 7"), (duplicate, "more than once")):
        with pytest.raises(ReportError, match=message):
            load_report(_write_report(tmp_path, mutate))


def test_lone_surrogates_in_model_output_are_replaced(pytester: pytest.Pytester) -> None:
    """Valid JSON ("\\ud800") but not encodable: it must not break the cache or the reports."""
    script = _script(pytester, 'default: {answer_prefix: "lone \\ud800 surrogate"}\n')
    result = pytester.runpytest_subprocess(
        *SAMPLE, f"--bsa-simulate-script={script}", "--bsa-limit=3", "--bsa-samples=1",
        "--bsa-report=r.json", "--bsa-junit=j.xml", "--bsa-markdown=m.md",
        f"--bsa-cache-dir={pytester.path / 'cache'}",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    report = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    answers = [s["completion"]["answer"] for r in report["instances"] for s in r["samples"]]
    assert all("lone \ufffd surrogate" in a for a in answers)
