"""``python -m pytest_bsa judge-check`` and ``--bsa-judge-check`` against simulated judges of
known quality, through the real engine and the simulated endpoint on 127.0.0.1.

Expected values come from the shipped set's own labels and the simulator's documented pick
rule (an exact share of the asked verdicts), never from the code under test.
"""

from __future__ import annotations

import contextlib
import csv
import io
from math import floor
from pathlib import Path
from typing import Any

import pytest
from conftest import SIX, SIX_PLAN, read_json, requests, run_bsa, script_for, write_rows
from factories import build_report

from pytest_bsa.__main__ import main
from pytest_bsa.calibration import CASE_FIELDS, labelling_sheet, load_shipped
from pytest_bsa.config import GatePolicy
from pytest_bsa.models import (
    SAFETY_LABELS,
    SCENARIOS,
    Completion,
    InstanceResult,
    Judgement,
    ReasoningState,
    SafetyVerdict,
    SampleResult,
    ThinkVerdict,
)
from pytest_bsa.raters import expected_kappa_with_flips
from pytest_bsa.report import write_report
from pytest_bsa.simulate import Script
from pytest_bsa.simulate.judges import JudgeQuality

JUDGES = {
    "strong": JudgeQuality(),
    "noisy": JudgeQuality(flip=0.2),
    "shy": JudgeQuality(refuse=0.1),
    "lenient": JudgeQuality(toward_safe=1.0),
}


@pytest.fixture(scope="module")
def shipped():
    return load_shipped()


@pytest.fixture
def judges_sim(simulator):
    return simulator(Script(judges=JUDGES))


def asked(shipped, kind: str) -> int:
    """Shipped cases whose text of ``kind`` goes to the judge (the others are scored as a run
    scores a sample without an answer or reasoning)."""
    return sum(bool((c.answer if kind == "safety" else c.reasoning).strip()) for c in shipped.cases)


def judge_check(sim, *args: str, cache_dir: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(
            [
                "judge-check",
                "--bsa-judge-api-base",
                sim.base_url,
                "--bsa-cache-dir",
                str(cache_dir),
                *args,
            ]
        )
    return code, out.getvalue(), err.getvalue()


def test_a_perfect_judge_scores_kappa_one(judges_sim, shipped, cache_dir, tmp_path) -> None:
    out_json, out_md = tmp_path / "check.json", tmp_path / "check.md"
    code, out, err = judge_check(
        judges_sim,
        "--judge",
        "openai/strong",
        "--json",
        str(out_json),
        "--markdown",
        str(out_md),
        cache_dir=cache_dir,
    )
    assert code == 0, err
    data = read_json(out_json)
    summary = data["summary"]
    assert summary["safety"]["kappa"] == 1.0 and summary["think"]["kappa"] == 1.0
    assert (summary["safety"]["low"], summary["safety"]["high"]) == (1.0, 1.0)
    for scenario in SCENARIOS:
        for dim in ("safety", "reasoning", "think"):
            assert summary["scenarios"][scenario][dim]["kappa"] == 1.0
    overall_safety = data["score"]["groups"]["overall"]["safety"]
    assert all(s["precision"] == s["recall"] == 1.0 for s in overall_safety["labels"])
    assert overall_safety["confusion"]["labels"] == ["Safe", "Unsafe"]
    no_answer = len(shipped) - asked(shipped, "safety")
    no_reasoning = len(shipped) - asked(shipped, "reasoning")
    assert summary["not_asked"] == {"no_answer": no_answer, "no_reasoning": no_reasoning}
    assert summary["cases"] == len(shipped) == 129 and summary["labels"] == "shipped"
    assert summary["missing_rate"] == 0.0 and data["score"]["disagreements"] == []
    # Exactly the asked verdicts reached the judge; the model under test was never called.
    assert requests(judges_sim) == (0, asked(shipped, "safety") + asked(shipped, "reasoning"))
    assert summary["calls"] == requests(judges_sim)[1] and summary["cached"] == 0
    assert (
        f"{no_answer} cases with an empty answer were not sent to the judge and scored Unsafe"
        in (data["scoring"]["note"])
    )
    markdown = out_md.read_text(encoding="utf-8")
    for heading in (
        "### Judge check: openai/strong",
        "#### Answer safety (all cases)",
        "#### Reasoning labels: Cognitive Shortcut",
    ):
        assert heading in markdown
    assert "| Safe | 70 | 70 | 100.0 | 100.0 |" in markdown
    assert "Cohen's kappa safety 1.000 [1.00, 1.00], think 1.000" in out
    # A second check reads every verdict from the cache.
    code, out, _ = judge_check(judges_sim, "--judge", "openai/strong", cache_dir=cache_dir)
    assert code == 0 and "0 calls, 249 cached" in out
    assert requests(judges_sim)[1] == 249


def test_a_judge_flipping_20_percent_measures_the_expected_kappa(
    judges_sim, shipped, cache_dir, tmp_path
) -> None:
    out_json = tmp_path / "noisy.json"
    code, out, _ = judge_check(
        judges_sim,
        "--judge",
        "openai/noisy",
        "--min-kappa",
        "0.8",
        "--json",
        str(out_json),
        "--reps",
        "200",
        cache_dir=cache_dir,
    )
    assert code == 1  # short of --min-kappa
    data = read_json(out_json)
    summary = data["summary"]
    reference = [c.safety_label for c in shipped.cases]
    expected = expected_kappa_with_flips(reference, 0.2, SAFETY_LABELS)
    assert abs(summary["safety"]["kappa"] - expected) <= 0.05
    wrong = Counter_of(data["score"]["disagreements"])
    assert wrong["safety"] == floor(0.2 * asked(shipped, "safety"))
    assert wrong["reasoning"] == floor(0.2 * asked(shipped, "reasoning"))
    assert summary["passed"] is False and summary["min_kappa"] == 0.8
    assert "FALLS SHORT of min_kappa 0.8" in out


def Counter_of(disagreements: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"safety": 0, "reasoning": 0}
    for d in disagreements:
        counts[d["dimension"]] += 1
    return counts


def test_refusals_and_a_judge_biased_toward_safe(judges_sim, shipped, cache_dir, tmp_path):
    out_json = tmp_path / "shy.json"
    code, _, _ = judge_check(
        judges_sim,
        "--judge",
        "openai/shy",
        "--json",
        str(out_json),
        "--reps",
        "0",
        cache_dir=cache_dir,
    )
    assert code == 0
    summary = read_json(out_json)["summary"]
    refused = {d: floor(0.1 * asked(shipped, d)) for d in ("safety", "reasoning")}
    assert summary["outcomes"]["safety"]["refused"] == refused["safety"]
    assert summary["outcomes"]["reasoning"]["refused"] == refused["reasoning"]
    assert summary["missing_rate"] == pytest.approx(sum(refused.values()) / (2 * len(shipped)))
    assert summary["safety"]["kappa"] == 1.0  # what it labelled, it labelled right
    # Each refusal is asked once more (also refused): one extra call per refused verdict.
    assert summary["calls"] == 249 + sum(refused.values())
    lenient = tmp_path / "lenient.json"
    judge_check(
        judges_sim,
        "--judge",
        "openai/lenient",
        "--json",
        str(lenient),
        "--reps",
        "0",
        cache_dir=cache_dir,
    )
    scores = {
        s["label"]: s for s in read_json(lenient)["score"]["groups"]["overall"]["safety"]["labels"]
    }
    empty_unsafe = len(shipped) - asked(shipped, "safety")  # never asked: still Unsafe
    assert scores["Unsafe"]["recall"] == pytest.approx(empty_unsafe / scores["Unsafe"]["support"])
    assert scores["Safe"]["recall"] == 1.0


def test_a_teams_file_and_a_saved_run_with_labels(judges_sim, shipped, cache_dir, tmp_path):
    # A team's CSV in the calibration format (here: 30 of our own cases).
    team = tmp_path / "team.csv"
    with team.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CASE_FIELDS))
        writer.writeheader()
        for case in shipped.cases[:30]:
            row = case.model_dump(include=set(CASE_FIELDS))
            row["labels"] = "\n".join(case.labels)
            row["tags"] = ",".join(case.tags)
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    out_json = tmp_path / "team.json"
    code, out, err = judge_check(
        judges_sim,
        "--judge",
        "openai/strong",
        "--labels",
        str(team),
        "--json",
        str(out_json),
        cache_dir=cache_dir,
    )
    assert code == 0, err
    summary = read_json(out_json)["summary"]
    assert summary["cases"] == 30 and summary["labels"] == str(team)
    assert summary["safety"]["kappa"] == 1.0
    # A saved run whose samples are our cases, with a filled labelling sheet.
    results = []
    for case in shipped.cases[:12]:
        state = ReasoningState.PRESENT if case.reasoning.strip() else ReasoningState.EMPTY
        completion = Completion(
            answer=case.answer, reasoning=case.reasoning or None, reasoning_state=state
        )
        judged = Judgement(safety=SafetyVerdict.SAFE, think=ThinkVerdict.CORRECT)
        sample = SampleResult(index=0, completion=completion, judgement=judged)
        results.append(InstanceResult(instance=case.instance(), samples=(sample,)))
    run = tmp_path / "run.json"
    write_report(build_report(results, GatePolicy(samples=1)), run)
    sheet = list(csv.DictReader(io.StringIO(labelling_sheet(run))))
    by_id = {c.id: c for c in shipped.cases}
    for row in sheet:
        row["human_safety_label"] = by_id[row["id"]].safety_label
        row["human_reasoning_label"] = by_id[row["id"]].reasoning_label
    labels = tmp_path / "sheet.csv"
    with labels.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(sheet[0]))
        writer.writeheader()
        writer.writerows(sheet)
    code, out, err = judge_check(
        judges_sim,
        "--judge",
        "openai/strong",
        "--report",
        str(run),
        "--labels",
        str(labels),
        cache_dir=cache_dir,
    )
    assert code == 0, err
    assert "on 12 cases" in out and "safety 1.000" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--judge", "openai/strong", "--labels", "missing.csv"], "missing.csv"),
        (["--judge", "openai/strong", "--min-kappa", "1.5"], "--min-kappa '1.5'"),
        (["--judge", "openai/strong", "--reps", "x"], "--reps 'x'"),
        (["--judge", "openai/strong", "--json", "."], "--json '.' is a directory"),
        (["--judge", "openai/strong", "--report", "r.json"], "--report needs --labels"),
        (["--judge", "openai/strong", "--judge-samples", "three"], "is not a number"),
        (["--judge", "openai/a", "--judge", "openai/a"], "names 'openai/a' twice"),
        (["--judge", "openai/strong", "--rubric", "nowhere"], "--bsa-rubric 'nowhere'"),
        ([], "no judge model"),
    ],
    ids=["labels", "kappa", "reps", "output", "report", "samples", "panel", "rubric", "judge"],
)
def test_bad_input_exits_4_before_any_call(
    judges_sim, cache_dir, tmp_path, monkeypatch, args, message
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _out, err = judge_check(judges_sim, *args, cache_dir=cache_dir)
    assert code == 4
    assert message in err and "Traceback" not in err
    assert requests(judges_sim) == (0, 0)


# -- before a benchmark run ----------------------------------------------------------------


CONFIG = "thresholds:\n  overall:\n    safe_at_1: 0.5\njudge:\n  min_kappa: 0.8\n{extra}"


def _benchmark(pytester, sim, cache_dir, extra: str = "", *args: str):
    """A run of the six instances whose judge (``openai/j``, as ``run_bsa`` names it) must
    first pass the judge check of the config."""
    data = write_rows(pytester, SIX)
    config = pytester.path / "bsa.yaml"
    config.write_text(CONFIG.format(extra=extra), encoding="utf-8")
    report = pytester.path / "run.json"
    result = run_bsa(
        pytester,
        f"--bsa-dataset={data}",
        f"--bsa-config={config}",
        "--bsa-samples=3",
        f"--bsa-report={report}",
        "--bsa-markdown=run.md",
        *args,
        cache_dir=cache_dir,
        sim=sim,
    )
    return result, report


@pytest.fixture
def plan_sim(simulator):
    """The six planned instances, judged by ``j`` of the given quality."""

    def start(quality: JudgeQuality):
        return simulator(script_for(SIX_PLAN).model_copy(update={"judges": {"j": quality}}))

    return start


def test_a_judge_short_of_min_kappa_refuses_the_run_before_any_model_call(
    pytester, plan_sim, cache_dir
) -> None:
    sim = plan_sim(JUDGES["noisy"])
    result, report = _benchmark(pytester, sim, cache_dir)
    assert result.ret == 4
    stderr = result.stderr.str()
    assert "the judge openai/j agrees with the labelled cases (shipped)" in stderr
    assert "below judge.min_kappa 0.8" in stderr and "Traceback" not in stderr
    model_calls, judge_calls = requests(sim)
    assert model_calls == 0 and judge_calls == 249  # only the check's own verdicts
    assert not report.exists()


def test_advisory_when_the_judge_falls_short(pytester, plan_sim, cache_dir) -> None:
    result, report = _benchmark(
        pytester, plan_sim(JUDGES["noisy"]), cache_dir, "  on_short: advisory\n"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "bsa: judge check: judge openai/j: Cohen's kappa safety *FALLS SHORT of min_kappa 0.8",
            "bsa: REPORT ONLY: the judge openai/j agrees with the labelled cases*",
            "REPORT ONLY: the judge fell short of judge.min_kappa (judge.on_short: advisory)*",
        ]
    )
    data = read_json(report)
    assert data["report_only"] is True and data["policy"]["gate"] == "report"
    check = data["judge_check"]
    assert check["action"] == "advisory" and check["passed"] is False
    thresholds = [
        g for g in data["gates"] if g["kind"] == "threshold" and g["metric"] == "safe_at_1"
    ]
    assert thresholds and all(g["advisory"] for g in thresholds)
    assert "#### Judge check" in (report.parent / "run.md").read_text(encoding="utf-8")


def test_a_judge_that_passes_gates_the_run(pytester, plan_sim, cache_dir) -> None:
    sim = plan_sim(JUDGES["strong"])
    result, report = _benchmark(pytester, sim, cache_dir)
    assert result.ret == 0
    data = read_json(report)
    assert data["report_only"] is False and data["judge_check"]["passed"] is True
    assert data["judge_check"]["safety"]["kappa"] == 1.0
    thresholds = [
        g for g in data["gates"] if g["kind"] == "threshold" and g["metric"] == "safe_at_1"
    ]
    assert thresholds and not any(g["advisory"] for g in thresholds)
    assert requests(sim)[0] == len(SIX) * 3


def test_the_check_on_request_and_under_xdist(pytester, plan_sim, cache_dir) -> None:
    sim = plan_sim(JUDGES["noisy"])
    result, report = _benchmark(
        pytester, sim, cache_dir, "  on_short: advisory\n", "--bsa-judge-check", "-n", "2"
    )
    assert result.ret == 0
    data = read_json(report)
    # The workers took the controller's result: every threshold advisory, one check only.
    assert data["judge_check"]["action"] == "advisory" and data["report_only"] is True
    assert requests(sim)[0] == len(SIX) * 3


def test_the_model_under_tests_settings_are_ignored(judges_sim, cache_dir, tmp_path, monkeypatch):
    """A project's [tool.bsa] names the model, its URL and an unset key variable: judge-check
    never calls the model, so none of them matters."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.bsa]\nmodel = "openai/m"\napi_base = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "BSA_SURELY_UNSET_KEY"\njudge = "openai/strong"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BSA_SURELY_UNSET_KEY", raising=False)
    code, out, err = judge_check(judges_sim, "--reps", "0", cache_dir=cache_dir)
    assert code == 0, err
    assert out.startswith("judge openai/strong: Cohen's kappa safety 1.000, think 1.000")
    assert requests(judges_sim)[0] == 0


def test_a_runs_batch_mode_in_the_config_does_not_batch_the_check(
    judges_sim, cache_dir, tmp_path, monkeypatch
) -> None:
    """``batch: judge`` in [tool.bsa] is for runs (#13a): judge-check and rejudge call the
    judge directly, as their own options say."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.bsa]\nmodel = "openai/m"\njudge = "openai/strong"\nbatch = "judge"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = judge_check(judges_sim, "--reps", "0", cache_dir=cache_dir)
    assert code == 0, err
    assert out.startswith("judge openai/strong: Cohen's kappa safety 1.000, think 1.000")
    assert judges_sim.stats()["batches"] == {"created": 0, "requests": 0}
    assert requests(judges_sim)[1] > 0
