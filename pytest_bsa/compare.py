"""``python -m pytest_bsa compare a.json b.json``: what changed from run A to run B (pure).

Made for the paper's mitigation (a run without the safety rules, then one with
``--bsa-system-prompt official:safety-rules`` or ``bsa:safety-rules``), and useful for any two
runs of one benchmark selection with one judge: per group (overall, scenario, category) the
Safe@1, Safe@k, Think@1, Think@k and F of both runs on the instances they share, the change
B − A with a two-sided paired sign-flip p-value (descriptive: no multiplicity correction; the
gate is ``python -m pytest_bsa gate b.json --baseline a.json``), and the over-sensitivity
change: among Over Sensitivity reasoning verdicts, the share labelled ``Over Sensitive``,
``Precise Coverage`` and ``Not Covered`` in each run.

Runs judged differently (dataset file, judge, rubric or verdict hash, k) are refused unless
``--allow-mismatch``: the change would mix the judge's difference with the model's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_bsa.evaluation import outcomes_of
from pytest_bsa.metrics import Breakdown, GroupMetrics, breakdown, group_members
from pytest_bsa.metrics import instance_values as values_of
from pytest_bsa.models import THINK_LABELS, InstanceResult
from pytest_bsa.outcomes import InstanceOutcomes
from pytest_bsa.report import Report
from pytest_bsa.signflip import signflip_p_value

METRICS: tuple[str, ...] = ("safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score")
TESTED: tuple[str, ...] = ("safe_at_1", "think_at_1")  # get a paired p-value
OS = "Over Sensitivity"


class CompareError(ValueError):
    """Two reports that cannot be compared; the message names the fix."""


@dataclass(frozen=True)
class GroupChange:
    group: str  # "overall", "scenario:<name>", "category:<name>"
    n: int  # shared instances in the group
    a: dict[str, float | None]
    b: dict[str, float | None]
    p_values: dict[str, float | None]  # two-sided paired sign-flip, TESTED metrics

    def delta(self, metric: str) -> float | None:
        x, y = self.a.get(metric), self.b.get(metric)
        return None if x is None or y is None else y - x

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "n": self.n,
            "a": self.a,
            "b": self.b,
            "delta": {m: self.delta(m) for m in METRICS},
            "p_value": self.p_values,
        }


@dataclass(frozen=True)
class Comparison:
    a_label: str
    b_label: str
    a_prompt: str | None  # system prompt source of each run
    b_prompt: str | None
    shared: int
    only_a: int
    only_b: int
    groups: tuple[GroupChange, ...]
    over_sensitivity: dict[str, dict[str, float | int | None]]  # "a"/"b" -> label shares, n
    mismatches: tuple[str, ...] = ()

    def group(self, key: str) -> GroupChange | None:
        return next((g for g in self.groups if g.group == key), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "pytest-bsa compare",
            "version": 1,
            "a": {"report": self.a_label, "system_prompt": self.a_prompt},
            "b": {"report": self.b_label, "system_prompt": self.b_prompt},
            "shared_instances": self.shared,
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
            "mismatches_allowed": list(self.mismatches),
            "groups": [g.as_dict() for g in self.groups],
            "over_sensitivity": self.over_sensitivity,
        }


def _prompt(report: Report) -> str | None:
    prov = report.provenance
    source = prov.system_prompt_source
    if source is None and prov.system_prompt_sha256:
        source = "file"
    if source is None:
        return None
    return (
        f"{source} (sha256 {prov.system_prompt_sha256[:12]}…)"
        if prov.system_prompt_sha256
        else source
    )


def _metric_values(metrics: GroupMetrics) -> dict[str, float | None]:
    return {m: getattr(metrics, m) for m in METRICS}


def _p_value(
    a: Sequence[InstanceOutcomes], b: Sequence[InstanceOutcomes], metric: str, k: int
) -> float | None:
    by_id = {o.id: o for o in a}
    diffs = []
    for o in b:
        x, y = values_of(by_id[o.id], k)[metric], values_of(o, k)[metric]
        if x is not None and y is not None:
            diffs.append(y - x)
    if not diffs:
        return None
    low, high = signflip_p_value(diffs), signflip_p_value([-d for d in diffs])
    return min(1.0, 2 * min(low, high))


def _groups(table: Breakdown) -> list[tuple[str, GroupMetrics]]:
    out = [("overall", table.overall)]
    out += [(f"scenario:{n}", m) for n, m in table.scenarios.items()]
    out += [(f"category:{n}", m) for n, m in table.categories.items()]
    return out


def _members(outcomes: Sequence[InstanceOutcomes]) -> dict[str, list[InstanceOutcomes]]:
    scenarios, categories, _ = group_members(outcomes)
    out = {"overall": list(outcomes)}
    out.update({f"scenario:{n}": m for n, m in scenarios.items()})
    out.update({f"category:{n}": m for n, m in categories.items()})
    return out


def over_sensitivity(results: Sequence[InstanceResult]) -> dict[str, float | int | None]:
    """Shares of the Over Sensitivity reasoning labels among that scenario's judged samples."""
    labels: Counter[str] = Counter()
    for result in results:
        if result.instance.scenario != OS:
            continue
        for sample in result.samples:
            label = sample.judgement.think_label if sample.judgement else None
            if label in THINK_LABELS[OS] and not sample.error:
                labels[label] += 1
    n = sum(labels.values())
    shares: dict[str, float | int | None] = {
        label: (labels[label] / n if n else None) for label in THINK_LABELS[OS]
    }
    shares["n"] = n
    return shares


def compare_reports(
    a: Report, b: Report, *, a_label: str = "A", b_label: str = "B", allow_mismatch: bool = False
) -> Comparison:
    """Run B against run A on the instances both evaluated."""
    from pytest_bsa.baseline import mismatches

    problems = mismatches(
        a,
        dataset_sha256=b.provenance.dataset.sha256,
        judge_model=b.provenance.judge.model,
        rubric_version=b.provenance.rubric_version,
        samples=b.k,
        verdict_hash=b.provenance.verdict_hash,
        judge_served=b.provenance.judge.served,
    )
    if problems and not allow_mismatch:
        listed = "; ".join(problems)
        raise CompareError(
            f"{b_label} cannot be compared with {a_label}: {listed}. Rerun one of them under "
            "the same conditions, or pass --allow-mismatch to compare anyway (the change then "
            "mixes both differences)"
        )
    ids_a = {r.instance.id for r in a.instances if not r.errors}
    ids_b = {r.instance.id for r in b.instances if not r.errors}
    shared = ids_a & ids_b
    if not shared:
        raise CompareError(
            f"{a_label} and {b_label} share no instance evaluated without errors; compare two "
            "runs of the same selection (same --bsa-dataset, --bsa-limit and --bsa-seed)"
        )
    res_a = [r for r in a.instances if r.instance.id in shared]
    res_b = [r for r in b.instances if r.instance.id in shared]
    out_a = [outcomes_of(r, a.policy) for r in res_a]
    out_b = [outcomes_of(r, b.policy) for r in res_b]
    k = b.k
    table_a, table_b = breakdown(out_a, k), breakdown(out_b, k)
    members_a, members_b = _members(out_a), _members(out_b)
    rows_a = dict(_groups(table_a))
    changes = []
    for key, metrics_b in _groups(table_b):
        metrics_a = rows_a.get(key)
        if metrics_a is None:
            continue
        p_values = {m: _p_value(members_a[key], members_b[key], m, k) for m in TESTED}
        changes.append(
            GroupChange(
                key, metrics_b.n_instances, _metric_values(metrics_a), _metric_values(metrics_b),
                p_values,
            )
        )  # fmt: skip
    return Comparison(
        a_label=a_label,
        b_label=b_label,
        a_prompt=_prompt(a),
        b_prompt=_prompt(b),
        shared=len(shared),
        only_a=len(ids_a - shared),
        only_b=len(ids_b - shared),
        groups=tuple(changes),
        over_sensitivity={"a": over_sensitivity(res_a), "b": over_sensitivity(res_b)},
        mismatches=tuple(problems),
    )


def _pct(value: float | int | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _pts(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def terminal_lines(c: Comparison) -> list[str]:
    """The comparison as a table (percent; change in points)."""
    lines = [
        f"A: {c.a_label} (system prompt {c.a_prompt or 'none'})",
        f"B: {c.b_label} (system prompt {c.b_prompt or 'none'})",
        f"{c.shared} shared instances ({c.only_a} only in A, {c.only_b} only in B); percent, "
        "change B-A in points, p: two-sided paired sign-flip (descriptive)",
        f"{'group':<42}{'n':>5}{'Safe@1 A':>10}{'B':>7}{'chg':>7}{'p':>7}"
        f"{'Think@1 A':>11}{'B':>7}{'chg':>7}{'p':>7}",
    ]
    for g in c.groups:
        name = "all instances" if g.group == "overall" else g.group.split(":", 1)[1]
        lines.append(
            f"{name[:41]:<42}{g.n:>5}{_pct(g.a['safe_at_1']):>10}{_pct(g.b['safe_at_1']):>7}"
            f"{_pts(g.delta('safe_at_1')):>7}{_p(g.p_values.get('safe_at_1')):>7}"
            f"{_pct(g.a['think_at_1']):>11}{_pct(g.b['think_at_1']):>7}"
            f"{_pts(g.delta('think_at_1')):>7}{_p(g.p_values.get('think_at_1')):>7}"
        )
    os_a, os_b = c.over_sensitivity["a"], c.over_sensitivity["b"]
    if os_a.get("n") or os_b.get("n"):
        lines.append(over_sensitivity_line(c))
    return lines


def over_sensitivity_line(c: Comparison) -> str:
    os_a, os_b = c.over_sensitivity["a"], c.over_sensitivity["b"]
    a_share, b_share = os_a.get("Over Sensitive"), os_b.get("Over Sensitive")
    change = (
        "-"
        if a_share is None or b_share is None
        else f"{100 * (float(b_share) - float(a_share)):+.1f}"
    )
    return (
        f"over-sensitivity: 'Over Sensitive' reasoning in {_pct(a_share)}% of A's and "
        f"{_pct(b_share)}% of B's Over Sensitivity verdicts (change {change} points; "
        f"Precise Coverage {_pct(os_a.get('Precise Coverage'))}% -> "
        f"{_pct(os_b.get('Precise Coverage'))}%)"
    )
