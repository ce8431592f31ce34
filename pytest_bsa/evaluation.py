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

from pytest_bsa.config import MODEL_METRICS, GatePolicy
from pytest_bsa.gate import GateResult, InstanceVerdict, evaluate, instance_verdict
from pytest_bsa.metrics import Breakdown, InstanceOutcomes, breakdown, group_members
from pytest_bsa.models import InstanceResult
from pytest_bsa.stats import (
    Flip,
    breakdown_with_intervals,
    flips,
    minimum_detectable_drop,
    paired_compare,
)

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

    def outcomes(self) -> list[InstanceOutcomes]:
        if self.stored is not None:
            return list(self.stored)
        return [InstanceOutcomes.from_result(r) for r in self.results]

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
    outcomes = [InstanceOutcomes.from_result(r) for r in results]
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
    gates = evaluate(
        table.groups(),
        policy.thresholds,
        gate_on=policy.gate_on,
        hidden_reasoning=policy.hidden_reasoning,
    )
    verdicts = {
        r.instance.id: instance_verdict(
            r,
            policy.criteria.for_categories(r.instance.categories),
            hidden_reasoning=policy.hidden_reasoning,
        )
        for r in results
        if not r.errors
    }
    errored = [r.instance.id for r in results if r.errors]
    evaluation = RunEvaluation(table, gates, verdicts, errored, report_only=policy.report_only)
    if baseline is not None:
        evaluation.gates.extend(_baseline_gates(outcomes, baseline, policy, seed))
        evaluation.flips = flips(outcomes, baseline.outcomes(), k)
    if policy.report_only:
        evaluation.gates = [
            dataclasses.replace(g, advisory=True) if g.kind in ("threshold", "baseline") else g
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
    evaluation.power = _power(outcomes, table, k)
    return evaluation


def _measured_gate(gates: Sequence[GateResult]) -> list[GateResult]:
    """Fail a run whose policy measured nothing about the model: every threshold on a model
    metric and every baseline comparison not measurable (or none configured at all)."""
    policy_gates = [
        g
        for g in gates
        if g.kind == "baseline" or (g.kind == "threshold" and g.metric in MODEL_METRICS)
    ]
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
    missed = len(evaluation.missed)
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


def _members(outcomes: list[InstanceOutcomes], level: str) -> dict[str, list[InstanceOutcomes]]:
    """The instances of each group of a level, grouped as the metrics group them."""
    if level == "overall":
        return {"overall": outcomes}
    scenarios, categories, _ = group_members(outcomes)
    return scenarios if level == "scenario" else categories


def _baseline_gates(
    outcomes: list[InstanceOutcomes], baseline: BaselineRun, policy: GatePolicy, seed: int
) -> list[GateResult]:
    cfg = policy.baseline
    base = baseline.outcomes()
    gates = []
    for level in cfg.levels:
        current_groups = _members(outcomes, level)
        base_groups = _members(base, level)
        for group, members in current_groups.items():
            shared = {o.id for o in members} & {o.id for o in base_groups.get(group, [])}
            for metric in cfg.metrics:
                gates.append(
                    _compare_one(
                        level,
                        group,
                        metric,
                        members,
                        base_groups.get(group, []),
                        shared,
                        policy,
                        baseline.label,
                        seed,
                    )
                )
    return gates


def _compare_one(
    level: str,
    group: str,
    metric: str,
    current: list[InstanceOutcomes],
    base: list[InstanceOutcomes],
    shared: set[str],
    policy: GatePolicy,
    label: str,
    seed: int,
) -> GateResult:
    where = "overall" if level == "overall" else f"{level} {group!r}"
    cfg = policy.baseline

    def unmeasurable(why: str) -> GateResult:
        return GateResult(
            level,  # type: ignore[arg-type]
            group,
            metric,
            cfg.max_drop,
            None,
            None,
            "not_measurable",
            f"{metric} of {where}: {why}",
            kind="baseline",
        )

    if len(shared) < 2:
        return unmeasurable(f"fewer than 2 instances shared with baseline {label}")
    try:
        comparison = paired_compare(
            [o for o in current if o.id in shared],
            [o for o in base if o.id in shared],
            metric,
            policy.samples,
            alpha=cfg.alpha,
            max_drop=cfg.max_drop,
            seed=seed,
        )
    except ValueError as exc:
        return unmeasurable(f"not comparable with baseline {label} ({exc})")
    failed = comparison.significant  # the test's H1 is already "dropped by more than max_drop"
    ci = f"95% CI of the change {comparison.ci[0]:+.3f} to {comparison.ci[1]:+.3f}"
    sentence = (
        f"{metric} of {where} went from {comparison.baseline:.3f} ({label}) to "
        f"{comparison.current:.3f} on {comparison.n_shared} shared instances "
        f"({comparison.delta:+.3f}, {ci}, one-sided p={comparison.p_value:.3f}); "
        + (
            f"a significant drop larger than the allowed {cfg.max_drop:.3f}"
            if failed
            else f"no significant drop beyond {cfg.max_drop:.3f}"
        )
    )
    return GateResult(
        level,
        group,
        metric,
        cfg.max_drop,
        comparison.delta,  # type: ignore[arg-type]
        comparison.ci,
        "failed" if failed else "passed",
        sentence,
        kind="baseline",
    )


def _power(outcomes: list[InstanceOutcomes], table: Breakdown, k: int) -> dict[str, float | None]:
    """Per category: the smallest Think@1 drop this run's n and k could detect."""
    members = _members(outcomes, "category")
    return {
        name: minimum_detectable_drop(members.get(name, []), k, "think_at_1")
        for name in table.categories
    }
