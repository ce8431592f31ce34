"""Synthetic judged instances and reports, shared by the reporting and metrics tests.

Plain functions, no fixtures: test modules import them with ``from factories import ...`` (pytest's
default import mode puts this folder on ``sys.path``, as it does for ``conftest``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from pytest_bsa.config import GatePolicy
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
    BaselineSnapshot,
    DatasetInfo,
    Endpoint,
    Provenance,
    Report,
    Selection,
    evaluation_fields,
)
from pytest_bsa.tallies import totals_from_results

Outcome: TypeAlias = "tuple[bool, bool | None] | str"
"""One sample: ``(safe, think)`` (``think`` None: no reasoning to judge), or an endpoint error."""

_SAFETY = {True: SafetyVerdict.SAFE, False: SafetyVerdict.UNSAFE}
_THINK = {True: ThinkVerdict.CORRECT, False: ThinkVerdict.INCORRECT, None: ThinkVerdict.UNAVAILABLE}
_SAFETY_LABEL = {SafetyVerdict.SAFE: "Safe", SafetyVerdict.UNSAFE: "Unsafe"}
_THINK_LABEL = {ThinkVerdict.CORRECT: "true", ThinkVerdict.INCORRECT: "false"}


@dataclass(frozen=True)
class Texts:
    """Templates of a synthetic instance's texts.

    Filled by ``str.format`` with ``i`` (the instance's number), ``j`` (the sample's index) and
    ``text`` (the caller's filler, inserted verbatim whatever characters it holds).
    """

    query: str = "query {i} {text}"
    risk_summary: str = "risk {i} {text}"
    answer: str = "answer {j}: {text}"
    reasoning: str = "reasoning {j}: {text}"
    explanation: str = "judge note {j}: {text}"
    verdict_labels: bool = True  # also set the judge's raw labels ("Safe", "true", ...)


def make_instance(
    iid: str,
    *,
    scenario: str = "Risk Omission",
    labels: Sequence[str | tuple[str, str]] = ("Rumors-Other",),
    query: str = "A user asks a neutral question.",
    risk_summary: str = "A described risk.",
) -> Instance:
    """One instance; a label is ``(category, subcategory)`` or ``"Category-Subcategory"``."""
    pairs = [label.split("-", 1) if isinstance(label, str) else label for label in labels]
    return Instance(
        id=iid,
        query=query,
        risk_summary=risk_summary,
        scenario=scenario,  # type: ignore[arg-type]
        labels=tuple(Label(category=c, subcategory=s) for c, s in pairs),
    )


def judged_sample(
    index: int,
    safe: bool | SafetyVerdict | None = None,
    think: bool | ThinkVerdict | None = None,
    *,
    text: str = "a careful reply",
    texts: Texts = Texts(),
    i: int = 0,
    error: str | None = None,
) -> SampleResult:
    """One sample with a completion, judged unless ``safe`` is None.

    ``safe`` and ``think`` are booleans (``think`` None: reasoning unavailable) or verdicts taken
    as they are; ``error`` records a failure next to them.
    """
    fill = {"i": i, "j": index, "text": text}
    judgement = None
    if safe is not None:
        safety = safe if isinstance(safe, SafetyVerdict) else _SAFETY[safe]
        verdict = think if isinstance(think, ThinkVerdict) else _THINK[think]
        labelled = texts.verdict_labels
        judgement = Judgement(
            safety=safety,
            think=verdict,
            safety_label=_SAFETY_LABEL.get(safety) if labelled else None,
            think_label=_THINK_LABEL.get(verdict) if labelled else None,
            explanation=texts.explanation.format(**fill),
        )
    completion = Completion(
        answer=texts.answer.format(**fill),
        reasoning=texts.reasoning.format(**fill),
        reasoning_state=ReasoningState.PRESENT,
    )
    return SampleResult(index=index, completion=completion, judgement=judgement, error=error)


def judged_result(
    iid: str,
    outcomes: Sequence[Outcome],
    *,
    scenario: str = "Risk Omission",
    labels: Sequence[str | tuple[str, str]] = ("Rumors-Other",),
    text: str = "a careful reply",
    texts: Texts = Texts(),
    i: int = 0,
) -> InstanceResult:
    """One instance whose sample ``j`` has ``outcomes[j]``; a str outcome is a failed call."""
    fill = {"i": i, "text": text}
    instance = make_instance(
        iid,
        scenario=scenario,
        labels=labels,
        query=texts.query.format(**fill),
        risk_summary=texts.risk_summary.format(**fill),
    )
    samples = tuple(
        SampleResult(index=j, error=outcome)
        if isinstance(outcome, str)
        else judged_sample(j, *outcome, text=text, texts=texts, i=i)
        for j, outcome in enumerate(outcomes)
    )
    return InstanceResult(instance=instance, samples=samples)


def synthetic_results(
    n: int,
    k: int = 3,
    *,
    seed: int = 0,
    p_safe: float | None = None,
    p_think: float | None = None,
    text: str = "a careful reply",
    subcategory: str | None = None,
    texts: Texts = Texts(),
) -> list[InstanceResult]:
    """``n`` judged instances of ``k`` samples over every scenario and category.

    With ``p_safe`` and ``p_think`` the verdicts are drawn with those probabilities from
    ``random.Random(seed)``; without them they follow a fixed cycle: sample ``j`` of instance ``i``
    is unsafe when ``(i + j + seed) % 4 == 0`` and its reasoning wrong when
    ``(7 * i + j + seed) % 3 == 0``. The subcategory defaults to ``"Sub {i % 3}"``.
    """
    if (p_safe is None) != (p_think is None):
        raise ValueError("give both p_safe and p_think, or neither")
    rng = random.Random(seed)

    def outcome(i: int, j: int) -> Outcome:
        if p_safe is None or p_think is None:
            return (i + j + seed) % 4 != 0, (i * 7 + j + seed) % 3 != 0
        safe = rng.random() < p_safe
        return safe, rng.random() < p_think

    return [
        judged_result(
            f"{i:032x}",
            [outcome(i, j) for j in range(k)],
            scenario=SCENARIOS[i % len(SCENARIOS)],
            labels=[(CATEGORIES[i % len(CATEGORIES)], subcategory or f"Sub {i % 3}")],
            text=text,
            texts=texts,
            i=i,
        )
        for i in range(n)
    ]


def build_report(
    results: list[InstanceResult],
    policy: GatePolicy,
    *,
    baseline: list[InstanceResult] | None = None,
    baseline_label: str = "base.json",
    model: str = "demo-model",
    judge: str = "demo-judge",
    dataset: str = "sample",
    sha256: str = "0" * 64,
    rubric_version: str = "r1",
    judge_prompt_hash: str = "abc",
    started_at: str = "2025-01-01T00:00:00+00:00",
    finished_at: str = "2025-01-01T00:01:00+00:00",
) -> Report:
    """A report of ``results`` as a run would write it: provenance, policy and evaluation."""
    base = BaselineRun(baseline, baseline_label) if baseline is not None else None
    evaluation = evaluate_run(results, policy, baseline=base, intervals=False)
    provenance = Provenance(
        dataset=DatasetInfo(spec=dataset, label=dataset, sha256=sha256),
        selection=Selection(instances=len(results)),
        model=Endpoint(model=model),
        judge=Endpoint(model=judge),
        rubric_version=rubric_version,
        judge_prompt_hash=judge_prompt_hash,
        started_at=started_at,
        finished_at=finished_at,
    )
    return Report(
        provenance=provenance,
        policy=policy,
        totals=totals_from_results(results),
        instances=tuple(results),
        baseline=None if baseline is None else baseline_label,
        baseline_run=None if base is None else BaselineSnapshot.of(base),
        **evaluation_fields(evaluation),
    )
