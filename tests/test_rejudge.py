"""``python -m pytest_bsa rejudge``: a saved run judged again by a second scripted judge, with
no model call. Kappa and deltas are recomputed here by hand from the two reports."""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from conftest import (
    SIX,
    SIX_PLAN,
    read_json,
    regated_exit_code,
    requests,
    run_bsa,
    script_for,
    write_rows,
)
from rubric_files import write_rubric_dir

from pytest_bsa.__main__ import main
from pytest_bsa.reporting import __file__ as reporting_init
from pytest_bsa.simulate.judges import JudgeQuality

SCHEMA = Path(reporting_init).with_name("report.schema.json")
CORRECT = {"true", "Fully Covered", "Precise Coverage"}


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def saved(pytester, simulator, cache_dir):
    """A run of the six instances judged by ``j`` (honest), its report, and the simulator,
    which also serves ``second``, a judge that changes exactly 30% of what it is shown."""
    script = script_for(SIX_PLAN).model_copy(update={"judges": {"second": JudgeQuality(flip=0.3)}})
    sim = simulator(script)
    data = write_rows(pytester, SIX)
    report = pytester.path / "run.json"
    result = run_bsa(
        pytester,
        f"--bsa-dataset={data}",
        "--bsa-samples=3",
        f"--bsa-report={report}",
        cache_dir=cache_dir,
        sim=sim,
    )
    assert result.ret == 0
    sim.reset_stats()
    return report, sim


def _kappa(pairs: list[tuple[object, object]]) -> float:
    """Cohen's kappa by its definition: (Po - Pe) / (1 - Pe)."""
    n = len(pairs)
    po = sum(a == b for a, b in pairs) / n
    rows, cols = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    pe = sum(rows[x] * cols[x] for x in rows) / n / n
    return (po - pe) / (1 - pe)


def test_rejudge_reports_kappa_and_deltas_with_no_model_call(saved, cache_dir, tmp_path) -> None:
    report, sim = saved
    out, summary, markdown = tmp_path / "re.json", tmp_path / "cmp.json", tmp_path / "cmp.md"
    code, stdout, stderr = _cli(
        "rejudge",
        str(report),
        "--bsa-judge",
        "openai/second",
        "--bsa-judge-api-base",
        sim.base_url,
        "--bsa-cache-dir",
        str(cache_dir),
        "-o",
        str(out),
        "--json",
        str(summary),
        "--markdown",
        str(markdown),
    )
    assert code == 0, stderr
    model_calls, judge_calls = requests(sim)
    assert model_calls == 0 and judge_calls > 0
    old, new, result = read_json(report), read_json(out), read_json(summary)
    jsonschema.Draft202012Validator(read_json(SCHEMA)).validate(new)
    assert result["model_calls"] == 0 and result["judge_calls"] == judge_calls
    assert new["provenance"]["judge"]["model"] == "openai/second"
    assert new["provenance"]["model"] == old["provenance"]["model"]
    assert new["totals"]["model"]["calls"] == 0
    # The answers are the saved ones, sample by sample.
    for a, b in zip(old["instances"], new["instances"], strict=True):
        assert [s["completion"] for s in a["samples"]] == [s["completion"] for s in b["samples"]]
    # Cohen's kappa of saved against new labels, overall and per scenario, by hand.
    safety, think = [], []
    by_scenario: dict[str, list[tuple[object, object]]] = {}
    for a, b in zip(old["instances"], new["instances"], strict=True):
        for sa, sb in zip(a["samples"], b["samples"], strict=True):
            ja, jb = sa["judgement"], sb["judgement"]
            safety.append((ja["safety_label"], jb["safety_label"]))
            if ja["think_label"] is not None:
                think.append((ja["think_label"] in CORRECT, jb["think_label"] in CORRECT))
                scenario = a["instance"]["scenario"]
                by_scenario.setdefault(scenario, []).append((ja["think_label"], jb["think_label"]))
    agreement = result["agreement"]
    assert agreement["overall"]["safety"]["kappa"] == pytest.approx(_kappa(safety))
    assert agreement["overall"]["think"]["kappa"] == pytest.approx(_kappa(think))
    for scenario, pairs in by_scenario.items():
        got = agreement[f"scenario:{scenario}"]["reasoning"]["kappa"]
        if len({a for a, _ in pairs} | {b for _, b in pairs}) > 1:
            assert got == pytest.approx(_kappa(pairs)), scenario
    assert sum(a != b for a, b in safety) > 0  # the second judge did disagree
    # The deltas are the new report's metrics minus the saved ones.
    for group, metrics in result["deltas"].items():
        for metric, values in metrics.items():
            assert values["saved"] == old["groups"][group][metric]
            assert values["new"] == new["groups"][group][metric]
    assert list(result["deltas"])[:4] == [
        "overall",
        "scenario:Risk Omission",
        "scenario:Cognitive Shortcut",
        "scenario:Over Sensitivity",
    ]
    # The re-judged report re-gates to its own exit code; the Markdown says who judged.
    assert regated_exit_code(out) == new["exit_code"]
    text = markdown.read_text(encoding="utf-8")
    assert "### Re-judged: openai/j → openai/second" in text and "0 model calls" in text
    assert "re-judged 6 instances: openai/j -> openai/second; 0 model calls" in stdout


def test_rejudge_with_a_rubric_directory(saved, cache_dir, tmp_path) -> None:
    report, sim = saved
    rubric = write_rubric_dir(tmp_path / "Prompt")
    out = tmp_path / "re.json"
    code, _, stderr = _cli(
        "rejudge",
        str(report),
        "--judge",
        "openai/j",
        "--judge-api-base",
        sim.base_url,
        "--rubric",
        str(rubric),
        "--cache-dir",
        str(cache_dir),
        "-o",
        str(out),
    )
    assert code == 0, stderr
    new = read_json(out)
    assert new["provenance"]["rubric"]["name"] == "custom"
    assert new["provenance"]["verdict_hash"] != read_json(report)["provenance"]["verdict_hash"]
    assert requests(sim)[0] == 0


def test_rejudge_refuses_what_it_cannot_do(saved, cache_dir, tmp_path) -> None:
    report, sim = saved
    data = read_json(report)
    data["redacted"] = True
    redacted = tmp_path / "redacted.json"
    redacted.write_text(__import__("json").dumps(data), encoding="utf-8")
    base = ("--bsa-judge-api-base", sim.base_url, "--bsa-cache-dir", str(cache_dir))
    cases = [
        ((str(redacted), "--bsa-judge", "openai/second", *base), "the report was redacted"),
        ((str(report), *base), "name the judge to re-judge with"),
        ((str(tmp_path / "none.json"), "--bsa-judge", "openai/x", *base), "cannot read report"),
        ((str(report), "--bsa-judge", "openai/x", "-o", str(report), *base), "is an input"),
    ]
    for args, message in cases:
        code, _, stderr = _cli("rejudge", *args)
        assert code == 4 and message in stderr, (args, stderr)
    assert requests(sim) == (0, 0)
