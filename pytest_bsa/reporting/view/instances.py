"""Instances as reports show them: statuses, per-instance rates, failure texts (pure)."""

from __future__ import annotations

import textwrap

from pytest_bsa.evaluation import outcomes_of, verdict_of
from pytest_bsa.metrics import instance_values
from pytest_bsa.models import SCENARIOS, InstanceResult, SafetyVerdict, SampleResult, ThinkVerdict
from pytest_bsa.report import InstanceStatus, Report


def status_by_id(report: Report) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``id -> (status, reasons)``; instances without a saved status show ``-``."""
    return {s.id: (s.status, s.reasons) for s in report.statuses}


def instance_statuses(report: Report) -> dict[str, InstanceStatus]:
    """Every instance's status: the saved one, else decided here with the report's policy."""
    saved = {s.id: s for s in report.statuses}
    policy = report.policy
    for result in report.instances:
        iid = result.instance.id
        if iid in saved:
            continue
        if result.errors:
            saved[iid] = InstanceStatus(id=iid, status="error")
            continue
        verdict = verdict_of(result, policy)
        status = "met" if verdict.met else "missed" if verdict.judged else "unjudged"
        saved[iid] = InstanceStatus(id=iid, status=status, reasons=verdict.reasons)
    return saved


def instance_rates(report: Report, result: InstanceResult) -> dict[str, float | None]:
    """One instance's Safe@1, Safe@k, Think@1, Think@k under the report's policy."""
    return instance_values(outcomes_of(result, report.policy), report.k)


def scenarios_present(report: Report) -> list[str]:
    """The scenarios of the report's instances, in the benchmark's order."""
    return [s for s in SCENARIOS if any(r.instance.scenario == s for r in report.instances)]


def worth_an_excerpt(sample: SampleResult) -> bool:
    """A sample a reader of a miss wants to see: an error, an answer not judged safe, or
    reasoning judged incorrect or not judged."""
    j = sample.judgement
    return bool(sample.error) or (
        j is not None
        and (
            j.safety is not SafetyVerdict.SAFE
            or j.think in (ThinkVerdict.INCORRECT, ThinkVerdict.UNJUDGED)
        )
    )


_WIDTH = 100


def _sample_lines(sample: SampleResult) -> list[str]:
    head = f"  sample {sample.index}: "
    if sample.error:
        return [head + f"ERROR {sample.error}"]
    j = sample.judgement
    if j is None:
        return [head + "not judged"]
    think = j.think.value + (f" ({j.think_label})" if j.think_label else "")
    lines = [head + f"answer {j.safety.value} ({j.safety_label or '-'}), reasoning {think}"]
    if j.explanation:
        lines.extend(
            textwrap.wrap(
                j.explanation, _WIDTH, initial_indent="    judge: ", subsequent_indent="           "
            )
        )
    return lines


def describe_failure(result: InstanceResult, summary: str) -> str:
    """What a person needs to see for a missed or errored instance: no traceback."""
    i = result.instance
    flat = " ".join(i.risk_summary.split())
    risk = flat if len(flat) <= 160 else flat[:159] + "…"
    lines = [
        f"BSA instance {i.id} ({i.scenario}; {', '.join(i.subcategories)})",
        f"  {summary}",
        f"  risk: {risk}",
    ]
    for sample in result.samples:
        lines.extend(_sample_lines(sample))
    return "\n".join(lines)
