"""From judged instances to the run's verdict: metrics, intervals, gates, exit code (pure).

The pytest run and ``python -m pytest_bsa gate`` both call :func:`evaluate_run`, so re-gating a
saved report gives exactly the verdicts and exit code of the run that wrote it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_bsa.comparison import BaselineTest, detectable_drops, plan_tests
from pytest_bsa.comparison_gates import gate_result as baseline_gate_result
from pytest_bsa.config import MODEL_METRICS, GatePolicy
from pytest_bsa.flips import Flip, flips
from pytest_bsa.gate import (
    GateResult,
    InstanceVerdict,
    evaluate,
    instance_verdict,
    with_unjudged_ceilings,
)
from pytest_bsa.intervals import breakdown_with_intervals
from pytest_bsa.metrics import Breakdown, InstanceOutcomes, breakdown
from pytest_bsa.models import InstanceResult

BOOTSTRAP_REPS = 1000
COST_LIMIT_MARK = "(--bsa-max-cost)"  # in the error of a sample the cost limit stopped


@dataclass(frozen=True)
class BaselineRun:
    """A saved run to compare against: its instances and a label for sentences.

    Re-gating a report uses the compact copy the report keeps of its baseline (``stored``
    outcomes and answer digests, no samples) instead of the baseline file.
    """

    results: Sequence[InstanceResult]
    label: str
    stored: Sequence[InstanceOutcomes] | None = None
    digests: Mapping[str, str] | None = None  # instance id -> answer_digest
    allow_identical: bool = False  # --bsa-baseline-allow-identical

    def outcomes(self, policy: GatePolicy | None = None) -> list[InstanceOutcomes]:
        """The baseline's outcomes: the stored copy, else its results under ``policy``'s rules
        for missing answers and reasoning (the defaults without one)."""
        if self.stored is not None:
            return list(self.stored)
        return [outcomes_of(r, policy or GatePolicy()) for r in self.results]

    def answer_digests(self) -> dict[str, str]:
        if self.digests is not None:
            return dict(self.digests)
        return {r.instance.id: answer_digest(r) for r in self.results}


def answer_digest(result: InstanceResult) -> str:
    """A digest of an instance's k answers and reasoning traces, in sample order."""
    texts = [
        [s.completion.answer, s.completion.reasoning] if s.completion else None
        for s in result.samples
    ]
    return hashlib.sha256(json.dumps(texts).encode("ascii")).hexdigest()


@dataclass
class RunEvaluation:
    """Everything decided about a run."""

    breakdown: Breakdown
    gates: list[GateResult]
    instance_verdicts: dict[str, InstanceVerdict]
    errored: list[str]
    flips: list[Flip] = field(default_factory=list)
    power: dict[str, float | None] = field(default_factory=dict)  # category -> detectable drop
    # group key ("overall", "scenario:<name>", "category:<name>") -> detectable Think@1 drop
    detectable: dict[str, float | None] = field(default_factory=dict)
    report_only: bool = False  # --bsa-gate=report: thresholds and baselines were advisory

    @property
    def failed_gates(self) -> list[GateResult]:
        """Gates that fail the run (advisory gates of a measure-only run never do)."""
        return [g for g in self.gates if g.status == "failed" and not g.advisory]

    @property
    def advisory_misses(self) -> list[GateResult]:
        """Thresholds and baseline comparisons a measure-only run missed (not enforced)."""
        return [g for g in self.gates if g.status == "failed" and g.advisory]

    @property
    def missed(self) -> list[str]:
        """Instances judged and found short of their criteria."""
        return [i for i, v in self.instance_verdicts.items() if v.judged and not v.met]

    @property
    def unjudged(self) -> list[str]:
        return [i for i, v in self.instance_verdicts.items() if not v.judged]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_gates else 0

    def groups(self) -> dict[str, dict[str, Any]]:
        return self.breakdown.groups()


def evaluate_run(
    results: Sequence[InstanceResult],
    policy: GatePolicy,
    *,
    baseline: BaselineRun | None = None,
    missing: int = 0,
    stopped: str | None = None,
    intervals: bool = True,
    seed: int = 0,
) -> RunEvaluation:
    """Decide every gate of a run from its judged instances.

    ``missing`` counts selected instances without a result (an interrupted run) and
    ``stopped`` says why the run stopped itself (cost limit, circuit breaker): either makes
    the run fail, so a partial report can never pass a gate.
    """
    outcomes = [outcomes_of(r, policy) for r in results]
    k = policy.samples
    if intervals and outcomes:
        table = breakdown_with_intervals(
            outcomes,
            k,
            reps=BOOTSTRAP_REPS,
            seed=seed,
            subcategory_intervals=bool(policy.thresholds.subcategories),
        )
    else:
        table = breakdown(outcomes, k)
    compared = {"scenario": table.scenarios, "category": table.categories} if baseline else None
    gates = evaluate(
        table.groups(),
        with_unjudged_ceilings(policy, baseline_groups=compared),
        gate_on=policy.gate_on,
        hidden_reasoning=policy.hidden_reasoning,
    )
    verdicts = {r.instance.id: verdict_of(r, policy) for r in results if not r.errors}
    errored = [r.instance.id for r in results if r.errors]
    evaluation = RunEvaluation(table, gates, verdicts, errored, report_only=policy.report_only)
    tests: list[BaselineTest] = []
    if baseline is not None:
        base_outcomes = baseline.outcomes(policy)
        tests = plan_tests(outcomes, base_outcomes, policy.baseline, k, seed=seed)
        evaluation.gates.extend(
            baseline_gate_result(t, policy.baseline, baseline.label) for t in tests
        )
        evaluation.flips = flips(outcomes, base_outcomes, k)
    if policy.report_only:
        evaluation.gates = [
            dataclasses.replace(g, advisory=True) if _on_the_model(g) else g
            for g in evaluation.gates
        ]
    elif policy.gate != "instances":
        evaluation.gates.extend(_measured_gate(evaluation.gates))
    if baseline is not None:
        evaluation.gates.extend(_identical_answers_gate(results, baseline))
    unrun = sum(any(COST_LIMIT_MARK in e for e in r.errors) for r in results)
    evaluation.gates.append(_error_budget_gate(len(results), len(errored), unrun, policy))
    if missing or stopped:
        evaluation.gates.append(_completeness_gate(len(results), missing, stopped))
    if results and table.overall.n_safe_judged == 0:
        evaluation.gates.append(_nothing_judged_gate(table.overall.total_samples))
    if policy.gate == "instances":
        evaluation.gates.append(_instances_gate(evaluation))
    evaluation.detectable = detectable_drops(outcomes, policy.baseline, k, tests)
    evaluation.power = {
        name: evaluation.detectable.get(f"category:{name}") for name in table.categories
    }
    return evaluation


def outcomes_of(result: InstanceResult, policy: GatePolicy) -> InstanceOutcomes:
    """An instance's outcomes under the policy's rules for missing answers and reasoning."""
    return InstanceOutcomes.from_result(
        result, no_answer=policy.no_answer, no_reasoning=policy.no_reasoning
    )


def verdict_of(result: InstanceResult, policy: GatePolicy) -> InstanceVerdict:
    """Whether an instance met the policy's criteria for its categories."""
    return instance_verdict(
        result,
        policy.criteria.for_categories(result.instance.categories),
        hidden_reasoning=policy.hidden_reasoning,
        no_answer=policy.no_answer,
        no_reasoning=policy.no_reasoning,
    )


def _on_the_model(gate: GateResult) -> bool:
    """A gate on what the model did (a threshold on a model metric, a baseline comparison), as
    opposed to one on the measurement itself (unjudged or error rates): only the former become
    advisory in report mode, the measurement must still hold."""
    return gate.kind == "baseline" or (gate.kind == "threshold" and gate.metric in MODEL_METRICS)


def _measured_gate(gates: Sequence[GateResult]) -> list[GateResult]:
    """Fail a run whose policy measured nothing about the model: every threshold on a model
    metric and every baseline comparison not measurable (or none configured at all)."""
    policy_gates = [g for g in gates if _on_the_model(g)]
    if any(g.status != "not_measurable" for g in policy_gates):
        return []
    why = (
        f"none of its {len(policy_gates)} thresholds and baseline comparisons on the model could "
        "be measured on this selection"
        if policy_gates
        else "it has no threshold on a model metric and no baseline"
    )
    sentence = (
        f"the run gated nothing about the model: {why}; add thresholds or a baseline that the "
        "selection can measure, or run with --bsa-gate=report to measure only"
    )
    return [
        GateResult(
            "overall", "overall", "policy", 1.0, 0.0, None, "failed", sentence, kind="errors"
        )
    ]


def _identical_answers_gate(
    results: Sequence[InstanceResult], baseline: BaselineRun
) -> list[GateResult]:
    """A comparison whose answers equal the baseline's on every shared instance compared the
    baseline with itself (answers reused from a cache, or the same run passed twice)."""
    theirs = baseline.answer_digests()
    shared = [r for r in results if r.instance.id in theirs and not r.errors]
    if not shared or any(answer_digest(r) != theirs[r.instance.id] for r in shared):
        return []
    allowed = baseline.allow_identical
    sentence = (
        f"the answers of all {len(shared)} instances shared with baseline {baseline.label} are "
        "identical to the baseline's: the comparison measured the baseline against itself "
        "(answers reused from the cache, or the same report twice)"
        + (
            "; accepted with --bsa-baseline-allow-identical"
            if allowed
            else "; sample the model afresh (--bsa-answers=fresh), or pass "
            "--bsa-baseline-allow-identical when identical answers are expected"
        )
    )
    status = "passed" if allowed else "failed"
    return [
        GateResult(
            "overall",
            "overall",
            "baseline_answers_differ",
            1.0,
            float(len(shared)),
            None,
            status,  # type: ignore[arg-type]
            sentence,
            kind="errors",
        )
    ]


def _error_budget_gate(n: int, errors: int, unrun: int, policy: GatePolicy) -> GateResult:
    """Endpoint errors within ``--bsa-max-errors`` pass; instances the cost limit cut never do."""
    budget = policy.error_budget(n)
    ok = errors <= budget and not unrun
    sentence = (
        f"{errors} of {n} instances ended in endpoint errors; the budget allows {budget} "
        f"(--bsa-max-errors {policy.max_errors:g})"
    )
    if unrun:
        sentence += (
            f"; {unrun} of them were cut by the cost limit (--bsa-max-cost): raise the limit "
            "or narrow the selection"
        )
    status = "passed" if ok else "failed"
    return GateResult(
        "overall",
        "overall",
        "endpoint_errors",
        float(budget),
        float(errors),
        None,
        status,
        sentence,
        kind="errors",
    )


def _completeness_gate(evaluated: int, missing: int, stopped: str | None = None) -> GateResult:
    why = f"the run stopped: {stopped}" if stopped else "the run was interrupted or stopped early"
    if missing:
        sentence = (
            f"{missing} of {evaluated + missing} selected instances were not evaluated ({why}); "
            "rerun it: an interrupted run resumes with the answers it already has"
        )
    else:
        sentence = f"{why}; rerun it: an interrupted run resumes with the answers it already has"
    return GateResult(
        "overall",
        "overall",
        "completeness",
        0.0,
        float(missing),
        None,
        "failed",
        sentence,
        kind="errors",
    )


def _nothing_judged_gate(samples: int) -> GateResult:
    sentence = (
        f"none of the {samples} samples got a usable verdict (judge replies unparseable or every "
        "call failed): the run measured nothing"
    )
    return GateResult(
        "overall", "overall", "judged", 1.0, 0.0, None, "failed", sentence, kind="errors"
    )


def _instances_gate(evaluation: RunEvaluation) -> GateResult:
    # An instance nobody could judge has not met its criteria either.
    missed = len(evaluation.missed) + len(evaluation.unjudged)
    n = len(evaluation.instance_verdicts)
    status = "failed" if missed else "passed"
    sentence = f"{missed} of {n} instances missed their criteria (--bsa-gate=instances)"
    return GateResult(
        "overall",
        "overall",
        "instances_meeting_criteria",
        1.0,
        (n - missed) / n if n else None,
        None,
        status,
        sentence,
        kind="instances",
    )
