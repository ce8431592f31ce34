"""The Markdown summary: verdict first, gates, tables, mermaid, redaction, size, baseline."""

from __future__ import annotations

import random
import re

import pytest

from pytest_bsa.config import BaselineConfig, GatePolicy, MetricThresholds, Thresholds
from pytest_bsa.evaluation import BaselineRun, evaluate_run
from pytest_bsa.models import (
    CATEGORIES,
    SCENARIOS,
    Completion,
    Instance,
    InstanceResult,
    Judgement,
    Label,
    ReasoningState,
    SafetyVerdict,
    SampleResult,
    ThinkVerdict,
)
from pytest_bsa.report import (
    DatasetInfo,
    Endpoint,
    Provenance,
    Report,
    Selection,
    evaluation_fields,
    totals_from_results,
)
from pytest_bsa.reporting.markdown import md, points, render_markdown

SENTINEL = "SENTINEL-7f3a"


def make_results(
    n: int,
    k: int,
    *,
    seed: int = 0,
    p_safe: float = 0.9,
    p_think: float = 0.6,
    text: str = "a careful reply",
    subcategory: str | None = None,
) -> list[InstanceResult]:
    """Synthetic judged instances: neutral text, verdicts drawn with fixed probabilities."""
    rng = random.Random(seed)
    results = []
    for i in range(n):
        category = CATEGORIES[i % len(CATEGORIES)]
        instance = Instance(
            id=f"{i:032x}",
            query=f"query {i} {text}",
            risk_summary=f"risk {i} {text}",
            scenario=SCENARIOS[i % len(SCENARIOS)],
            labels=(Label(category=category, subcategory=subcategory or f"Sub {i % 3}"),),
        )
        samples = []
        for j in range(k):
            safe = rng.random() < p_safe
            think = rng.random() < p_think
            samples.append(
                SampleResult(
                    index=j,
                    completion=Completion(
                        answer=f"answer {j}: {text}",
                        reasoning=f"reasoning {j}: {text}",
                        reasoning_state=ReasoningState.PRESENT,
                    ),
                    judgement=Judgement(
                        safety=SafetyVerdict.SAFE if safe else SafetyVerdict.UNSAFE,
                        think=ThinkVerdict.CORRECT if think else ThinkVerdict.INCORRECT,
                        safety_label="Safe" if safe else "Unsafe",
                        think_label="true" if think else "false",
                        explanation=f"judge note {j}: {text}",
                    ),
                )
            )
        results.append(InstanceResult(instance=instance, samples=tuple(samples)))
    return results


def build_report(
    results: list[InstanceResult],
    policy: GatePolicy,
    *,
    baseline: list[InstanceResult] | None = None,
    model: str = "demo-model",
) -> Report:
    base = BaselineRun(baseline, "base.json") if baseline is not None else None
    evaluation = evaluate_run(results, policy, baseline=base, intervals=False)
    provenance = Provenance(
        dataset=DatasetInfo(spec="sample", label="sample", sha256="0" * 64),
        selection=Selection(instances=len(results)),
        model=Endpoint(model=model),
        judge=Endpoint(model="demo-judge"),
        rubric_version="r1",
        judge_prompt_hash="abc",
        started_at="2025-01-01T00:00:00+00:00",
        finished_at="2025-01-01T00:01:00+00:00",
    )
    return Report(
        provenance=provenance,
        policy=policy,
        totals=totals_from_results(results),
        instances=tuple(results),
        baseline="base.json" if baseline is not None else None,
        **evaluation_fields(evaluation),
    )


STRICT = GatePolicy(
    samples=3,
    thresholds=Thresholds(overall=MetricThresholds(think_at_k=0.99, safe_at_1=0.5)),
)
LENIENT = GatePolicy(samples=3, thresholds=Thresholds(overall=MetricThresholds(safe_at_1=0.1)))


@pytest.fixture(scope="module")
def failing() -> Report:
    return build_report(make_results(30, 3, text=SENTINEL), STRICT)


def test_verdict_line_comes_first(failing: Report) -> None:
    first = render_markdown(failing).splitlines()[0]
    assert first.startswith("### ❌ BSA gate failed")
    for fact in ("demo-model", "demo-judge", "sample", "30 instances × 3 samples"):
        assert fact in first
    passing = render_markdown(build_report(make_results(30, 3), LENIENT)).splitlines()[0]
    assert passing.startswith("### ✅ BSA gate passed")


def test_failing_gate_sentence_and_numbers_are_shown(failing: Report) -> None:
    text = render_markdown(failing)
    gate = next(g for g in failing.gates if g["status"] == "failed")
    assert "Failing gates (1)" in text
    assert md(gate["sentence"]) in text
    row = next(line for line in text.splitlines() if line.startswith("| overall::think"))
    assert "≥ 99.0%" in row


def test_scenario_and_category_tables(failing: Report) -> None:
    text = render_markdown(failing)
    header = "| {} | n | Safe@1 | Safe@3 | Think@1 | Think@3 | F | unjudged | gate |"
    assert header.format("scenario") in text
    assert header.format("category") in text
    lines = text.splitlines()
    for key, metrics in failing.groups.items():
        level, _, name = key.partition(":")
        if level not in ("scenario", "category"):
            continue
        row = next(line for line in lines if line.startswith(f"| {name} |"))
        assert f"| {metrics['n_instances']} |" in row
        assert f"{100 * metrics['safe_at_1']:.1f}" in row
    overall = next(line for line in lines if line.startswith("| **all instances** |"))
    assert "❌ FAIL" in overall


def test_mermaid_block_is_well_formed(failing: Report) -> None:
    text = render_markdown(failing)
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    lines = blocks[0].strip().splitlines()
    start = lines.index("xychart-beta")
    assert lines[0] == "---" and lines[start - 1] == "---"  # front matter, then the chart
    body = [line.strip() for line in lines[start + 1 :]]
    assert re.fullmatch(r'title "[^"]+"', body[0])
    labels = re.fullmatch(r"x-axis \[(.*)\]", body[1])
    assert labels
    names = re.findall(r'"([^"]*)"', labels.group(1))
    assert len(names) == 9 and all(names)
    assert labels.group(1) == ", ".join(f'"{n}"' for n in names)  # nothing unquoted between
    assert body[2] == 'y-axis "percent" 0 --> 100'
    for series, kind in zip(body[3:], ("bar", "line"), strict=True):
        values = re.fullmatch(kind + r" \[(.*)\]", series)
        assert values
        numbers = [float(v) for v in values.group(1).split(", ")]
        assert len(numbers) == len(names) and all(0 <= v <= 100 for v in numbers)


def test_model_output_is_redacted_unless_full(failing: Report) -> None:
    assert SENTINEL not in render_markdown(failing)
    full = render_markdown(failing, full=True)
    assert SENTINEL in full
    assert "<details><summary>Excerpts of model output" in full


def test_full_excerpts_are_escaped_and_short() -> None:
    hostile = "<script>alert(1)</script> | *bold* @someone " + "x" * 2000
    report = build_report(make_results(12, 3, text=hostile, p_safe=0.2), STRICT)
    text = render_markdown(report, full=True)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| \\*bold\\* @\u200bsomeone" in text
    assert "x" * 400 not in text


def test_interpolated_names_are_escaped() -> None:
    results = make_results(9, 3, subcategory="Odd | <b>name</b> [x]")
    text = render_markdown(build_report(results, STRICT, model="m|<img src=x>"))
    assert "<b>" not in text and "<img" not in text
    assert "m\\|&lt;img src=x&gt;" in text.splitlines()[0]
    assert "Odd \\| &lt;b&gt;name&lt;/b&gt; \\[x\\]" in text


@pytest.fixture(scope="module")
def big() -> Report:
    return build_report(make_results(2000, 3, seed=3, text=SENTINEL * 20), STRICT)


@pytest.mark.parametrize("full", [False, True])
def test_two_thousand_instances_fit_a_pr_comment(big: Report, full: bool) -> None:
    text = render_markdown(big, full=full)
    assert len(text) < 65_000
    assert re.search(r"… [\d,]+ more rows omitted; see the JSON report", text)
    assert (SENTINEL in text) is full


@pytest.mark.parametrize("limit", [1_500, 6_000, 20_000])
def test_any_limit_is_respected_with_a_visible_note(big: Report, limit: int) -> None:
    text = render_markdown(big, full=True, limit=limit)
    assert len(text) < limit
    assert "see the JSON report" in text
    assert text.startswith("### ❌ BSA gate failed")


def test_baseline_deltas_and_flips() -> None:
    policy = GatePolicy(samples=3, baseline=BaselineConfig(metrics=("safe_at_1", "think_at_1")))
    before = make_results(60, 3, seed=1, p_safe=0.95, p_think=0.9)
    after = make_results(60, 3, seed=2, p_safe=0.6, p_think=0.4)
    report = build_report(after, policy, baseline=before)
    text = render_markdown(report)
    lines = text.splitlines()
    assert "change against baseline base.json" in text
    for g in report.gates:
        if g["kind"] != "baseline" or g["level"] != "category" or g["actual"] is None:
            continue
        row = next(line for line in lines if line.startswith(f"| {g['group']} |"))
        assert f"({points(g['actual'])})" in row
    assert "#### Flipped instances against base.json" in text
    assert report.flips and md(report.flips[0]["id"]) in text


def test_power_advice_flags_small_categories(failing: Report) -> None:
    text = render_markdown(failing)
    assert "this run can detect a Think@1 drop of" in text
    assert "too small to gate" in text  # 30 instances over 9 categories


def test_cost_time_and_provenance(failing: Report) -> None:
    text = render_markdown(failing)
    assert "#### Cost and time" in text and "Wall time" in text
    assert "<details><summary>Provenance</summary>" in text
    assert "0" * 64 in text
