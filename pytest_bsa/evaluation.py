"""From judged instances to the run's verdict: metrics, intervals, gates, exit code (pure).

The pytest run and ``python -m pytest_bsa gate`` both call :func:`evaluate_run`, so re-gating a
saved report gives exactly the verdicts and exit code of the run that wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_bsa.comparison import BaselineTest, detectable_drops, plan_tests
from pytest_bsa.comparison import gate_result as baseline_gate_result
from pytest_bsa.config import GatePolicy
from pytest_bsa.gate import (
    GateResult,
    InstanceVerdict,
    evaluate,
    instance_verdict,
    with_unjudged_ceilings,
)
from pytest_bsa.metrics import Breakdown, InstanceOutcomes, breakdown
from pytest_bsa.models import InstanceResult
from pytest_bsa.stats import Flip, breakdown_with_intervals, flips

BOOTSTRAP_REPS = 1000
COST_LIMIT_MARK = "(--bsa-max-cost)"  # in the error of a sample the cost limit stopped


@dataclass(frozen=True)
class BaselineRun:
    """A saved run to compare against: its instances and a label for sentences."""

    results: Sequence[InstanceResult]
    label: str


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

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if g.status == "failed"]

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
    intervals: bool = True,
    seed: int = 0,
) -> RunEvaluation:
    """Decide every gate of a run from its judged instances.

    ``missing`` counts selected instances without a result (an interrupted run): any makes
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
    evaluation = RunEvaluation(table, gates, verdicts, errored)
    tests: list[BaselineTest] = []
    if baseline is not None:
        base_outcomes = [outcomes_of(r, policy) for r in baseline.results]
        tests = plan_tests(outcomes, base_outcomes, policy.baseline, k, seed=seed)
        evaluation.gates.extend(
            baseline_gate_result(t, policy.baseline, baseline.label) for t in tests
        )
        evaluation.flips = flips(outcomes, base_outcomes, k)
    unrun = sum(any(COST_LIMIT_MARK in e for e in r.errors) for r in results)
    evaluation.gates.append(_error_budget_gate(len(results), len(errored), unrun, policy))
    if missing:
        evaluation.gates.append(_completeness_gate(len(results), missing))
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


def _completeness_gate(evaluated: int, missing: int) -> GateResult:
    sentence = (
        f"{missing} of {evaluated + missing} selected instances were not evaluated (the run was "
        "interrupted or stopped early); rerun it: the cache keeps what was done"
    )
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
