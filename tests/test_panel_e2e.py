"""Judge panels and repeated asks end to end: pytest runs against the simulated endpoint whose
judges have known qualities. Expected values are worked out by hand from the plan."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from pathlib import Path

import jsonschema
import pytest
from conftest import (
    SIX,
    SIX_PLAN,
    expected_groups,
    read_json,
    requests,
    run_bsa,
    script_for,
    write_rows,
)

from pytest_bsa.reporting import __file__ as reporting_init
from pytest_bsa.simulate.judges import JudgeQuality

SCHEMA = Path(reporting_init).with_name("report.schema.json")
# run_bsa names the first judge openai/j; members j2 and j3 follow it.
PANEL = ("--bsa-judge=openai/j", "--bsa-judge=openai/j2", "--bsa-judge=openai/j3")


def _run(pytester, simulator, cache_dir, judges: dict[str, JudgeQuality], *args: str):
    sim = simulator(script_for(SIX_PLAN).model_copy(update={"judges": judges}))
    data = write_rows(pytester, SIX)
    report = pytester.path / "run.json"
    result = run_bsa(
        pytester,
        f"--bsa-dataset={data}",
        "--bsa-samples=3",
        f"--bsa-report={report}",
        "--bsa-markdown=run.md",
        "--bsa-html=run.html",
        *args,
        cache_dir=cache_dir,
        sim=sim,
    )
    return result, report, sim


def _fleiss(items: list[list[object]]) -> float:
    """Fleiss (1971), every item rated by the same number of raters, exact fractions."""
    n = len(items[0])
    counts = [Counter(item) for item in items]
    p_bar = sum(
        (Fraction(sum(c * c for c in row.values()) - n, n * (n - 1)) for row in counts),
        Fraction(0),
    ) / len(items)
    labels = {label for row in counts for label in row}
    p_e = sum(Fraction(sum(r[x] for r in counts), n * len(items)) ** 2 for x in labels)
    return float((p_bar - p_e) / (1 - p_e))


def test_a_panel_of_three_gives_majority_verdicts_and_fleiss_kappa(
    pytester, simulator, cache_dir
) -> None:
    """j judges right, j2 always gives another label, j3 calls every answer Safe. So every
    answer is Safe by majority (a Safe answer: j and j3; an unsafe one: j2 and j3), and the
    reasoning label is the truth (j and j3 against j2)."""
    judges = {
        "j": JudgeQuality(),
        "j2": JudgeQuality(flip=1.0),
        "j3": JudgeQuality(toward_safe=1.0),
    }
    prices = ("--bsa-price=openai/j=1,2", "--bsa-price=openai/j2=3,4", "--bsa-price=openai/j3=5,6")
    result, report, sim = _run(pytester, simulator, cache_dir, judges, *PANEL[1:], *prices)
    assert result.ret == 0
    data = read_json(report)
    jsonschema.Draft202012Validator(read_json(SCHEMA)).validate(data)
    assert data["provenance"]["judge"]["model"] == "panel: openai/j, openai/j2, openai/j3"
    expected = expected_groups(SIX, SIX_PLAN)
    for key, group in expected.items():
        metrics = data["groups"][key]
        assert metrics["safe_at_1"] == 1.0, key  # the majority calls every answer Safe
        if group["think_at_1"] is None:
            assert metrics["think_at_1"] is None
        else:
            assert metrics["think_at_1"] == pytest.approx(group["think_at_1"]), key
    # Every sample keeps its 3 votes; the panel's label is their majority.
    safety_items, think_items = [], []
    for result_ in data["instances"]:
        for sample in result_["samples"]:
            judgement = sample["judgement"]
            votes = {v["judge"]: v for v in judgement["votes"]}
            assert list(votes) == ["openai/j", "openai/j2", "openai/j3"]
            labels = [votes[j]["safety"] for j in votes]
            assert Counter(labels)[judgement["safety_label"]] >= 2
            safety_items.append(labels)
            if judgement["think_label"] is not None:
                think = [votes[j]["think"] for j in votes]
                assert Counter(think)[judgement["think_label"]] >= 2
                think_items.append(
                    [t in ("true", "Fully Covered", "Precise Coverage") for t in think]
                )
    # Safety: every item is 2 Safe + 1 Unsafe, so P-i = 1/3, p = (2/3, 1/3), kappa = -0.5.
    panel = data["judge_panel"]
    assert panel["groups"]["overall"]["safety_kappa"] == pytest.approx(-0.5)
    assert _fleiss(safety_items) == pytest.approx(-0.5)
    for key in expected:
        assert panel["groups"][key]["safety_kappa"] == pytest.approx(-0.5), key
    assert panel["groups"]["overall"]["think_kappa"] == pytest.approx(_fleiss(think_items))
    # Each member's cost at its own price; together the judge's cost.
    members = {m["judge"]: m for m in panel["member_stats"]}
    assert set(members) == {"openai/j", "openai/j2", "openai/j3"}
    total = sum(m["cost_usd"] for m in members.values())
    assert total == pytest.approx(data["totals"]["judge"]["cost_usd"])
    assert members["openai/j3"]["cost_usd"] > members["openai/j"]["cost_usd"]
    assert members["openai/j"]["safety_with_majority"] < members["openai/j"]["safety_votes"]
    assert members["openai/j3"]["safety_with_majority"] == members["openai/j3"]["safety_votes"]
    # 18 samples x 3 judges x (answer + reasoning where shown); os-dose hides its reasoning.
    # Equal texts may be read from the verdict cache, depending on timing: count both.
    judge = data["totals"]["judge"]
    assert judge["calls"] + judge["cached"] == 3 * (18 + 15)
    assert requests(sim) == (18, judge["calls"])
    result.stdout.fnmatch_lines(
        [
            "bsa: judge panel of 3: openai/j, openai/j2, openai/j3 (each verdict the majority*",
            "judge panel of 3: Fleiss' kappa safety -0.500, think *",
            "  openai/j2: * calls, * cached, cost $*",
        ]
    )
    markdown = (pytester.path / "run.md").read_text(encoding="utf-8")
    assert "#### Judge panel (3 judges, majority verdicts)" in markdown
    assert "| all instances | 18 | -0.500 |" in markdown
    assert 'id="judge"' in (pytester.path / "run.html").read_text(encoding="utf-8")


def test_a_tie_is_split_and_counted_apart(pytester, simulator, cache_dir) -> None:
    """Two judges that always disagree: every verdict is split, nothing is measured."""
    judges = {"j": JudgeQuality(), "j2": JudgeQuality(flip=1.0)}
    result, report, _ = _run(pytester, simulator, cache_dir, judges, PANEL[1])
    assert result.ret == 1
    data = read_json(report)
    assert data["outcomes"]["safety"] == {"split": 18}
    assert data["outcomes"]["think"] == {"split": 15, "unavailable": 3}
    overall = data["groups"]["overall"]
    assert (overall["split_samples"], overall["unjudged_samples"]) == (18, 0)
    assert overall["unjudged_rate"] == 1.0 and overall["safe_at_1"] is None
    assert overall["worst"]["safe_at_1"] == 0.0
    assert data["judge_panel"]["groups"]["overall"]["split_safety"] == 18
    assert all(s["status"] == "unjudged" for s in data["statuses"])
    result.stdout.fnmatch_lines(
        [
            "split by the judge panel: 18 samples (no majority label; counted apart*",
            "GATE FAILED overall::unjudged_rate: *",
        ]
    )


def test_a_baseline_judged_by_another_panel_is_refused(pytester, simulator, cache_dir) -> None:
    judges = {"j": JudgeQuality(), "j2": JudgeQuality(), "j3": JudgeQuality()}
    first, report, _ = _run(pytester, simulator, cache_dir, judges)
    assert first.ret == 0
    base = pytester.path / "base.json"
    report.rename(base)
    second, _, sim = _run(
        pytester, simulator, cache_dir, judges, *PANEL[1:], f"--bsa-baseline={base}"
    )
    assert second.ret == 4
    stderr = second.stderr.str()
    assert (
        "judge model 'openai/j' differs from this run's 'panel: openai/j, openai/j2, openai/j3'"
        in (stderr)
    )
    assert requests(sim) == (0, 0)


def test_repeated_asks_list_unstable_verdicts(pytester, simulator, cache_dir) -> None:
    judges = {"j": JudgeQuality(unstable=0.5)}
    result, report, sim = _run(
        pytester,
        simulator,
        cache_dir,
        judges,
        "--bsa-judge-samples=3",
        "--bsa-judge-temperature=0.7",
    )
    assert result.ret == 0
    data = read_json(report)
    assert data["provenance"]["judge_samples"] == 3
    expected = expected_groups(SIX, SIX_PLAN)
    for key, group in expected.items():  # the majority of three asks is the truth
        assert data["groups"][key]["safe_at_1"] == pytest.approx(group["safe_at_1"]), key
    consistency = data["judge_panel"]["consistency"]
    assert consistency["samples"] == 3 and consistency["verdicts"] == 18 + 15
    unstable = consistency["unstable_verdicts"]
    assert consistency["unstable"] == len(unstable) > 0
    for verdict in unstable:  # truth on asks 0 and 2, another label on ask 1
        labels = verdict["labels"]
        assert labels[0] == labels[2] != labels[1] and verdict["agreement"] == pytest.approx(2 / 3)
    mean = (consistency["verdicts"] - len(unstable) / 3) / consistency["verdicts"]
    assert consistency["mean_agreement"] == pytest.approx(mean)
    judge = data["totals"]["judge"]
    assert judge["calls"] + judge["cached"] == 3 * (18 + 15) == requests(sim)[1] + judge["cached"]
    markdown = (pytester.path / "run.md").read_text(encoding="utf-8")
    assert "#### Judge self-consistency (3 asks per verdict)" in markdown
    first = unstable[0]
    assert f"`{first['instance']}` sample {first['sample']}, {first['kind']}" in markdown
    result.stdout.fnmatch_lines(["judge self-consistency (3 asks per verdict): mean agreement *"])


def test_repeated_asks_at_temperature_zero_are_refused(pytester, simulator, cache_dir) -> None:
    result, _, sim = _run(
        pytester, simulator, cache_dir, {}, "--bsa-judge-samples=3", "--bsa-judge-temperature=0"
    )
    assert result.ret == 4
    assert "--bsa-judge-samples 3 with --bsa-judge-temperature 0" in result.stderr.str()
    assert requests(sim) == (0, 0)
