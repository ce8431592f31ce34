"""The Markdown summary: verdict first, gates, tables, mermaid, redaction, size, baseline."""

from __future__ import annotations

import re
from functools import partial

import pytest
from factories import build_report, synthetic_results

from pytest_bsa.config import BaselineConfig, GatePolicy, MetricThresholds, Thresholds
from pytest_bsa.report import Report
from pytest_bsa.reporting.markdown import md, render_markdown
from pytest_bsa.reporting.view import points

SENTINEL = "SENTINEL-7f3a"
# Neutral text, verdicts drawn with fixed probabilities.
make_results = partial(synthetic_results, p_safe=0.9, p_think=0.6)


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
    header = (
        "| {} | n | Safe@1 | Safe@3 | Think@1 | Think@3 | F | unjudged | refused | no answer | "
        "no reasoning | gate |"
    )
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
    # 30 instances over 9 categories: no category test could detect any drop
    assert "Rumors: no drop of any size is detectable at this size" in text
    assert "9 of 9 categories cannot detect a 20-point drop" in text
    assert "too small to gate" in text
    assert "80% power at a category test's share of α = 0.05" in text
    assert "beyond the allowed max_drop of 5 points" in text
    large = render_markdown(
        build_report(make_results(900, 5), LENIENT.model_copy(update={"samples": 5}))
    )
    assert "this run can detect a Think@1 drop of" in large
    limits = re.findall(r"drop of (\d+\.\d) points in ([^(]+) \(n=", large)
    assert limits and all(float(drop) > 5.0 for drop, _ in limits)  # beyond max_drop


def test_cost_time_and_provenance(failing: Report) -> None:
    text = render_markdown(failing)
    assert "#### Cost and time" in text and "Wall time" in text
    assert "<details><summary>Provenance</summary>" in text
    assert "0" * 64 in text
