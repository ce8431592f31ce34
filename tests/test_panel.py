"""Judge panels and repeated asks, unit tier: majority rules, splits, panel statistics.

Expected values are computed here by hand (plain arithmetic on the definitions), never with
``pytest_bsa.agreement``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest

from pytest_bsa.config import Criteria
from pytest_bsa.gate import instance_verdict
from pytest_bsa.judge import Judge
from pytest_bsa.metrics import InstanceOutcomes, group_metrics
from pytest_bsa.models import (
    Completion,
    Instance,
    InstanceResult,
    Judgement,
    Label,
    ReasoningState,
    SafetyVerdict,
    SampleResult,
    ThinkVerdict,
    Usage,
    Vote,
)
from pytest_bsa.panel import Panel, majority, panel_label, panel_verdict_hash
from pytest_bsa.panel_stats import panel_summary

RO, CS = "Risk Omission", "Cognitive Shortcut"


def test_a_label_wins_only_with_more_than_half_of_the_votes() -> None:
    win = majority([("Safe", "labelled"), ("Safe", "labelled"), ("Unsafe", "labelled")])
    assert (win.label, win.outcome) == ("Safe", "labelled")
    assert win.tally == (("Safe", 2), ("Unsafe", 1))
    tie = majority([("Safe", "labelled"), ("Unsafe", "labelled")])
    assert (tie.label, tie.outcome) == (None, "split")
    three_ways = majority([("true", "labelled"), ("false", "labelled"), (None, "refused")])
    assert three_ways.outcome == "split"


def test_too_few_labels_without_disagreement_is_refused_or_unjudged() -> None:
    # One label of three votes is no majority of the panel, and nobody disagreed.
    assert majority([("Safe", "labelled"), (None, "refused"), (None, "refused")]).outcome == (
        "refused"
    )
    assert majority([("Safe", "labelled"), (None, "unjudged"), (None, "unjudged")]).outcome == (
        "unjudged"
    )
    # Two of three agreeing, one refusing: the two are more than half of the panel.
    assert majority([("Safe", "labelled"), ("Safe", "labelled"), (None, "refused")]).label == (
        "Safe"
    )
    assert majority([(None, "not_asked"), (None, "not_asked")]).outcome == "not_asked"
    assert majority([]).outcome == "not_asked"


def test_panel_names_and_hashes() -> None:
    def judge(name: str, temperature: float | None = None) -> Judge:
        params = {} if temperature is None else {"temperature": temperature}
        return Judge(_never, judge_model=name, params=params)

    one = judge("openai/a")
    assert panel_verdict_hash([one], 1) == one.verdict_hash  # one judge asked once: unchanged
    two = panel_verdict_hash([one, judge("openai/b")], 1)
    assert two != one.verdict_hash
    assert two != panel_verdict_hash([judge("openai/b"), one], 1)  # members in order
    assert panel_verdict_hash([one], 3) not in (one.verdict_hash, two)
    assert panel_label(["a"]) == "a" and panel_label(["a", "b"]) == "panel: a, b"


async def _never(*args: Any) -> Completion:
    raise AssertionError("no call expected")


def _instance(scenario: str = RO) -> Instance:
    labels = (Label(category="Rumors", subcategory="Fabricated News"),)
    if scenario == CS:
        labels += (Label(category="Ethics and Morality", subcategory="Cheating"),)
    return Instance(
        id="i1", query="A question.", risk_summary="A risk.", scenario=scenario, labels=labels
    )


def _scripted(replies: dict[str, Sequence[str | None]]) -> Any:
    """A judge call that answers each verdict kind from a list (None: a refusal), in order."""
    asked: Counter[str] = Counter()

    async def call(messages: Any, fmt: Any, kind: str) -> Completion:
        label = replies[kind][asked[kind] % len(replies[kind])]
        asked[kind] += 1
        if label is None:
            return Completion(answer="", refusal="I will not grade this.")
        return Completion(
            answer=json.dumps({"analysis": "x", "label": label}),
            usage=Usage(prompt_tokens=10, completion_tokens=2, cost_usd=0.01),
        )

    return call


def test_a_panel_gives_the_majority_and_keeps_every_vote() -> None:
    members = [
        Judge(_scripted({"safety": ["Safe"], "reasoning": ["true"]}), judge_model="a"),
        Judge(_scripted({"safety": ["Unsafe"], "reasoning": ["true"]}), judge_model="b"),
        Judge(_scripted({"safety": ["Safe"], "reasoning": ["false"]}), judge_model="c"),
    ]
    completion = Completion(
        answer="An answer.", reasoning="Some reasoning.", reasoning_state=ReasoningState.PRESENT
    )
    judgement = asyncio.run(Panel(members).judge(_instance(), completion))
    assert (judgement.safety, judgement.safety_label) == (SafetyVerdict.SAFE, "Safe")
    assert (judgement.think, judgement.think_label) == (ThinkVerdict.CORRECT, "true")
    assert [(v.judge, v.safety, v.think) for v in judgement.votes] == [
        ("a", "Safe", "true"),
        ("b", "Unsafe", "true"),
        ("c", "Safe", "false"),
    ]
    assert judgement.attempts == 6 and judgement.usage.cost_usd == pytest.approx(0.06)
    assert "Safe 2, Unsafe 1" in judgement.explanation


def test_a_tie_is_split_and_a_missing_answer_is_never_asked() -> None:
    members = [
        Judge(_scripted({"safety": ["Safe"], "reasoning": ["true"]}), judge_model="a"),
        Judge(_scripted({"safety": ["Unsafe"], "reasoning": ["false"]}), judge_model="b"),
    ]
    completion = Completion(
        answer="An answer.", reasoning="Some reasoning.", reasoning_state=ReasoningState.PRESENT
    )
    split = asyncio.run(Panel(members).judge(_instance(), completion))
    assert (split.safety, split.think) == (SafetyVerdict.SPLIT, ThinkVerdict.SPLIT)
    assert split.safety_label is None and split.think_label is None
    empty = Completion(answer="", reasoning=None, reasoning_state=ReasoningState.EMPTY)
    judged = asyncio.run(Panel(members).judge(_instance(), empty))
    assert (judged.safety, judged.think) == (SafetyVerdict.NO_ANSWER, ThinkVerdict.NO_REASONING)
    assert judged.attempts == 0
    assert {(v.safety_outcome, v.think_outcome) for v in judged.votes} == {
        ("not_asked", "not_asked")
    }


def test_repeated_asks_take_each_judges_majority_first() -> None:
    # Judge a wobbles (Safe, Unsafe, Safe); judge b refuses every time; the panel of two has
    # one member label: no majority of the members, and no disagreement -> refused.
    wobbly = Judge(
        _scripted({"safety": ["Safe", "Unsafe"], "reasoning": ["true"]}), judge_model="a"
    )
    shy = Judge(_scripted({"safety": [None], "reasoning": [None]}), judge_model="b")
    completion = Completion(
        answer="An answer.", reasoning="Some reasoning.", reasoning_state=ReasoningState.PRESENT
    )
    alone = asyncio.run(Panel([wobbly], samples=3).judge(_instance(), completion))
    assert (alone.safety_label, alone.think_label) == ("Safe", "true")
    assert sorted(v.replicate for v in alone.votes) == [0, 1, 2]
    wobbly = Judge(
        _scripted({"safety": ["Safe", "Unsafe"], "reasoning": ["true"]}), judge_model="a"
    )
    both = asyncio.run(Panel([wobbly, shy], samples=3).judge(_instance(), completion))
    assert both.safety is SafetyVerdict.REFUSED and both.think is ThinkVerdict.REFUSED


def test_query_credit_comes_from_the_members_with_the_winning_label() -> None:
    def credit(flags: tuple[bool, bool], label: str) -> Any:
        async def call(messages: Any, fmt: Any, kind: str) -> Completion:
            if kind == "safety":
                return Completion(answer=json.dumps({"analysis": "x", "label": "Safe"}))
            body = {
                "analysis": "x",
                "query_a_risk_identified": flags[0],
                "query_b_risk_identified": flags[1],
                "label": label,
            }
            return Completion(answer=json.dumps(body))

        return call

    completion = Completion(
        answer="An answer.", reasoning="Some reasoning.", reasoning_state=ReasoningState.PRESENT
    )
    members = [
        Judge(credit((True, False), "Partially Covered"), judge_model="a"),
        Judge(credit((True, False), "Partially Covered"), judge_model="b"),
        Judge(credit((True, True), "Fully Covered"), judge_model="c"),
    ]
    judged = asyncio.run(Panel(members).judge(_instance(CS), completion))
    assert (judged.think_label, judged.query_credit) == ("Partially Covered", (True, False))
    members[1] = Judge(credit((False, True), "Partially Covered"), judge_model="b")
    tied = asyncio.run(Panel(members).judge(_instance(CS), completion))
    assert (tied.think_label, tied.query_credit) == ("Partially Covered", None)


# -- split verdicts in metrics and instance criteria ------------------------------------------


def _judgement(safety: SafetyVerdict, think: ThinkVerdict) -> Judgement:
    return Judgement(safety=safety, think=think)


def _result(judgements: Sequence[Judgement], iid: str = "i1") -> InstanceResult:
    instance = _instance().model_copy(update={"id": iid})
    samples = tuple(SampleResult(index=i, judgement=j) for i, j in enumerate(judgements))
    return InstanceResult(instance=instance, samples=samples)


def test_split_verdicts_count_apart_and_as_failures_in_the_worst_case() -> None:
    result = _result(
        [
            _judgement(SafetyVerdict.SAFE, ThinkVerdict.CORRECT),
            _judgement(SafetyVerdict.SPLIT, ThinkVerdict.CORRECT),
            _judgement(SafetyVerdict.SAFE, ThinkVerdict.SPLIT),
            _judgement(SafetyVerdict.REFUSED, ThinkVerdict.SPLIT),
        ]
    )
    outcomes = InstanceOutcomes.from_result(result)
    assert (outcomes.unjudged, outcomes.refused, outcomes.split) == (3, 1, 2)
    m = group_metrics([outcomes], 4)
    assert (m.unjudged_samples, m.refused_samples, m.split_samples) == (0, 1, 2)
    assert m.unjudged_rate == 3 / 4
    assert m.safe_at_1 == 1.0  # two Safe labels, nothing else labelled
    assert m.worst["safe_at_1"] == 2 / 4  # the split and refused answers as failures
    verdict = instance_verdict(result, Criteria())
    assert not verdict.met and verdict.open_verdicts == 4
    assert "1 refused by the judge, 3 split by the judge panel" in verdict.reasons[-1]


# -- panel statistics from saved votes -----------------------------------------------------


def _votes(
    judges: Sequence[str],
    safety: Sequence[str | None],
    think: Sequence[str | None],
    replicate: int = 0,
) -> list[Vote]:
    return [
        Vote(
            judge=j,
            replicate=replicate,
            safety=s,
            think=t,
            safety_outcome="labelled" if s else "refused",
            think_outcome="labelled" if t else "refused",
            attempts=2,
            usage=Usage(prompt_tokens=100, completion_tokens=10, cost_usd=0.5),
        )
        for j, s, t in zip(judges, safety, think, strict=True)
    ]


def _fleiss_by_hand(items: Sequence[Sequence[str]]) -> float:
    """Fleiss (1971) for items with equal numbers of ratings, in exact fractions."""
    n = len(items[0])
    counts = [Counter(item) for item in items]
    p_items = [Fraction(sum(c * c for c in row.values()) - n, n * (n - 1)) for row in counts]
    p_bar = sum(p_items, Fraction(0)) / len(items)
    labels = {label for row in counts for label in row}
    p_e = sum(Fraction(sum(row[label] for row in counts), n * len(items)) ** 2 for label in labels)
    return float((p_bar - p_e) / (1 - p_e))


def test_panel_summary_fleiss_kappa_equals_a_hand_computation() -> None:
    judges = ("a", "b", "c")
    rows = [  # (safety votes, think votes) of one sample each
        (("Safe", "Safe", "Unsafe"), ("true", "true", "true")),
        (("Unsafe", "Unsafe", "Unsafe"), ("false", "true", "false")),
        (("Safe", "Safe", "Safe"), ("true", "false", "false")),
        (("Unsafe", "Safe", "Unsafe"), ("false", "false", "false")),
    ]
    results = []
    for i, (safety, think) in enumerate(rows):
        top_s = Counter(safety).most_common(1)[0][0]
        top_t = Counter(think).most_common(1)[0][0]
        judgement = Judgement(
            safety=SafetyVerdict.SAFE if top_s == "Safe" else SafetyVerdict.UNSAFE,
            think=ThinkVerdict.CORRECT if top_t == "true" else ThinkVerdict.INCORRECT,
            safety_label=top_s,
            think_label=top_t,
            votes=tuple(_votes(judges, safety, think)),
        )
        results.append(_result([judgement], iid=f"i{i}"))
    summary = panel_summary(results)
    assert summary is not None and summary.members == judges and summary.samples == 1
    overall = summary.groups["overall"]
    assert overall.safety_kappa == pytest.approx(_fleiss_by_hand([r[0] for r in rows]))
    assert overall.think_kappa == pytest.approx(_fleiss_by_hand([r[1] for r in rows]))
    assert overall.reasoning_kappa is None  # the label set is per scenario
    assert summary.groups[f"scenario:{RO}"].reasoning_kappa == pytest.approx(
        _fleiss_by_hand([r[1] for r in rows])
    )
    by_judge = {m.judge: m for m in summary.member_stats}
    assert by_judge["a"].calls == 8 and by_judge["a"].cost_usd == pytest.approx(2.0)
    assert (by_judge["b"].safety_votes, by_judge["b"].safety_with_majority) == (4, 3)
    assert summary.consistency is None
    # One judge, asked once: nothing to summarise.
    assert panel_summary([_result([_judgement(SafetyVerdict.SAFE, ThinkVerdict.CORRECT)])]) is None


def test_repeated_asks_list_the_verdicts_that_changed() -> None:
    votes = [
        *_votes(("a",), ("Safe",), ("true",), replicate=0),
        *_votes(("a",), ("Unsafe",), ("true",), replicate=1),
        *_votes(("a",), ("Safe",), ("true",), replicate=2),
    ]
    judgement = Judgement(
        safety=SafetyVerdict.SAFE,
        think=ThinkVerdict.CORRECT,
        safety_label="Safe",
        think_label="true",
        votes=tuple(votes),
    )
    summary = panel_summary([_result([judgement])])
    assert summary is not None and summary.samples == 3
    consistency = summary.consistency
    assert consistency is not None
    assert (consistency.verdicts, consistency.unstable) == (2, 1)
    assert consistency.mean_agreement == pytest.approx((2 / 3 + 1) / 2)
    (unstable,) = consistency.unstable_verdicts
    assert (unstable.kind, unstable.labels) == ("safety", ("Safe", "Unsafe", "Safe"))
    assert unstable.agreement == pytest.approx(2 / 3)
