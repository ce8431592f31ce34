"""Re-judge a saved run with another judge or rubric, calling no model (no pytest import).

``python -m pytest_bsa rejudge run.json --bsa-judge J [--bsa-rubric R] [-o rejudged.json]``
sends every saved sample's answer and reasoning to the judge again (the run's engine: retries,
verdict cache, panels), re-evaluates the run under its own policy, and reports:

- Cohen's kappa between the saved verdicts and the new ones, per group (overall, scenario,
  category) for answer safety, think (reasoning counted correct or not) and, per scenario,
  the reasoning labels; a pair enters when the saved verdict has a label, and a new verdict
  without one (refused, unjudged, split, error) is counted as missing;
- the metric deltas (new minus saved) per group.

Samples the model left without an answer or reasoning keep those outcomes (they are never
sent to a judge), and samples without a model output (endpoint errors) stay errors. A
re-judged report is a new run of the judge on the same answers: its baseline comparison is
dropped (the baseline was judged by the old judge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_bsa.agreement import Agreement, agreement
from pytest_bsa.config import Settings
from pytest_bsa.evaluation import evaluate_run
from pytest_bsa.models import (
    CATEGORIES,
    SAFETY_LABELS,
    SCENARIOS,
    THINK_CORRECT_LABELS,
    THINK_LABELS,
    InstanceResult,
    SampleResult,
)
from pytest_bsa.panel_stats import panel_summary
from pytest_bsa.report import Endpoint, Report, RubricInfo, evaluation_fields
from pytest_bsa.reporting.outputs import endpoint_host, scrub_params
from pytest_bsa.rubrics import Rubric
from pytest_bsa.tallies import outcome_counts, served_models, totals_from_results

DELTA_METRICS: tuple[str, ...] = (
    "safe_at_1",
    "safe_at_k",
    "think_at_1",
    "think_at_k",
    "f_score",
    "unjudged_rate",
)
INTERVAL_REPS = 500  # bootstrap replicates of the overall and scenario kappas (by instance)


class RejudgeError(ValueError):
    """A report that cannot be re-judged; the message names the fix."""


@dataclass(frozen=True)
class Rejudged:
    """The re-judged report, the agreement of old and new verdicts, and the metric deltas."""

    report: Report
    agreement: dict[str, dict[str, Agreement]]  # group -> dimension -> agreement
    deltas: dict[str, dict[str, tuple[float | None, float | None]]]  # group -> metric -> old, new
    old_judge: str
    new_judge: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "pytest-bsa rejudge",
            "version": 1,
            "saved_judge": self.old_judge,
            "new_judge": self.new_judge,
            "rubric": self.report.provenance.rubric_version,
            "verdict_hash": self.report.provenance.verdict_hash,
            "model_calls": 0,
            "judge_calls": self.report.totals.judge.calls,
            "judge_cost_usd": self.report.totals.judge.cost_usd,
            "agreement": {
                group: {dim: a.as_dict() for dim, a in dims.items()}
                for group, dims in self.agreement.items()
            },
            "deltas": {
                group: {
                    m: {"saved": old, "new": new, "delta": _delta(old, new)}
                    for m, (old, new) in metrics.items()
                }
                for group, metrics in self.deltas.items()
            },
            "exit_code": self.report.exit_code,
        }


def _delta(old: float | None, new: float | None) -> float | None:
    return None if old is None or new is None else new - old


def rejudge(report: Report, settings: Settings, rubric: Rubric, cache_dir: Path) -> Rejudged:
    """Judge every saved sample again with the judge of ``settings`` (raises JudgingError)."""
    from pytest_bsa.judging import judge_only_engine, judge_outputs

    if report.redacted:
        raise RejudgeError(
            "the report was redacted (model answers and reasoning removed), so there is "
            "nothing to re-judge; use the full report (--bsa-report of the run, or the "
            "Action's upload-full-report: true)"
        )
    items = [
        (result.instance, sample.completion, sample.index)
        for result in report.instances
        for sample in result.samples
        if sample.completion is not None
    ]
    with judge_only_engine(settings, rubric, cache_dir) as engine:
        judged = judge_outputs(engine, items)
        verdict_hash = str(engine.judge.verdict_hash)
        structured = bool(engine.judge.structured)
    new_samples = {
        (instance.id, index): result
        for (instance, _, index), result in zip(items, judged, strict=True)
    }
    instances = tuple(
        InstanceResult(
            instance=r.instance,
            samples=tuple(
                _replaced(s, new_samples.get((r.instance.id, s.index))) for s in r.samples
            ),
        )
        for r in report.instances
    )
    new_report = _new_report(report, instances, settings, rubric, verdict_hash, structured)
    return Rejudged(
        report=new_report,
        agreement=verdict_agreement(report.instances, instances),
        deltas=metric_deltas(report.groups, new_report.groups),
        old_judge=report.provenance.judge.model,
        new_judge=settings.judge_label,
    )


def _replaced(saved: SampleResult, new: SampleResult | None) -> SampleResult:
    if new is None:
        return saved  # no model output: an endpoint error stays one
    if new.error and saved.error and new.judgement is None:
        return saved.model_copy(update={"error": new.error, "judgement": None})
    return new


def _new_report(
    report: Report,
    instances: tuple[InstanceResult, ...],
    settings: Settings,
    rubric: Rubric,
    verdict_hash: str,
    structured: bool,
) -> Report:
    evaluation = evaluate_run(
        instances, report.policy, missing=report.missing, stopped=report.stopped
    )
    totals = totals_from_results(instances)
    totals = totals.model_copy(
        update={"model": report.totals.model.model_copy(update={"calls": 0, "retries": 0})}
    )
    _, judge_served = served_models(instances)
    prov = report.provenance.model_copy(
        update={
            "judge": Endpoint(
                model=settings.judge_label,
                host=endpoint_host(settings.judge_api_base),
                served=judge_served,
            ),
            "rubric_version": rubric.name,
            "judge_prompt_hash": rubric.sha256[:16],
            "rubric": RubricInfo(
                name=rubric.name,
                source=rubric.source,
                sha256=rubric.sha256,
                files=dict(rubric.files),
                structured=structured,
            ),
            "judge_params": scrub_params(settings.judge_params),
            "verdict_hash": verdict_hash,
        }
    )
    return report.model_copy(
        update={
            "provenance": prov,
            "totals": totals,
            "outcomes": outcome_counts(instances),
            "instances": instances,
            "baseline": None,
            "baseline_run": None,
            "judge_panel": panel_summary(instances),
            "judge_check": None,
            **evaluation_fields(evaluation),
        }
    )


def _groups(result: InstanceResult) -> tuple[str, ...]:
    inst = result.instance
    return ("overall", f"scenario:{inst.scenario}", *(f"category:{c}" for c in inst.categories))


def verdict_agreement(
    saved: Sequence[InstanceResult], new: Sequence[InstanceResult]
) -> dict[str, dict[str, Agreement]]:
    """Cohen's kappa of saved (rows) against new (columns) labels, per group and dimension."""
    new_by_id = {r.instance.id: {s.index: s for s in r.samples} for r in new}
    pairs: dict[tuple[str, str], tuple[list[Any], list[Any], list[str]]] = {}

    def add(group: str, dim: str, old: Any, now: Any, cluster: str) -> None:
        ref, pred, clusters = pairs.setdefault((group, dim), ([], [], []))
        ref.append(old)
        pred.append(now)
        clusters.append(cluster)

    for result in saved:
        mine = new_by_id.get(result.instance.id, {})
        groups = _groups(result)
        scenario = result.instance.scenario
        for sample in result.samples:
            old, now = sample.judgement, mine.get(sample.index)
            if old is None or sample.error:
                continue
            now_j = now.judgement if now is not None and not now.error else None
            cluster = result.instance.id
            if old.safety_label in SAFETY_LABELS:
                got = now_j.safety_label if now_j else None
                for group in groups:
                    add(group, "safety", old.safety_label, got, cluster)
            if old.think_label in THINK_LABELS[scenario]:
                got = now_j.think_label if now_j else None
                for group in groups:
                    add(
                        group,
                        "think",
                        old.think_label in THINK_CORRECT_LABELS,
                        None if got is None else got in THINK_CORRECT_LABELS,
                        cluster,
                    )
                add(f"scenario:{scenario}", "reasoning", old.think_label, got, cluster)
    out: dict[str, dict[str, Agreement]] = {}
    for (group, dim), (ref, pred, clusters) in pairs.items():
        labels: Sequence[Any]
        if dim == "safety":
            labels = SAFETY_LABELS
        elif dim == "think":
            labels = (True, False)
        else:
            labels = THINK_LABELS[group.split(":", 1)[1]]
        reps = 0 if group.startswith("category:") else INTERVAL_REPS
        out.setdefault(group, {})[dim] = agreement(ref, pred, labels, reps=reps, clusters=clusters)
    return dict(sorted(out.items(), key=lambda item: _group_rank(item[0])))


def _group_rank(group: str) -> tuple[int, int, str]:
    """Overall, then scenarios and categories in the benchmark's own order."""
    level, _, name = group.partition(":")
    order = {"scenario": SCENARIOS, "category": CATEGORIES}.get(level, ())
    position = order.index(name) if name in order else len(order)
    return ({"overall": 0, "scenario": 1, "category": 2}.get(level, 3), position, name)


def metric_deltas(
    saved: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]
) -> dict[str, dict[str, tuple[float | None, float | None]]]:
    """(saved, new) value per overall, scenario and category group and metric."""
    groups = [g for g in dict.fromkeys([*saved, *new]) if not g.startswith("subcategory:")]
    return {
        group: {
            metric: (saved.get(group, {}).get(metric), new.get(group, {}).get(metric))
            for metric in DELTA_METRICS
        }
        for group in sorted(groups, key=_group_rank)
    }
