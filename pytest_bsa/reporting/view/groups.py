"""The metrics tables' rows (overall, scenario, category, subcategory) and power rows (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pytest_bsa.metrics import INTERVAL_METRICS
from pytest_bsa.report import Report
from pytest_bsa.reporting.view.format import pct
from pytest_bsa.reporting.view.gates import baseline_deltas, gate_marks

RATE_COLUMNS: tuple[str, ...] = INTERVAL_METRICS  # safe_at_1 ... f_score, in table order


SAFE_COLOR = "#2f6db5"  # chart colours of Safe@1 and Think@1 (Markdown and HTML)


THINK_COLOR = "#e0861a"


@dataclass(frozen=True)
class GroupRow:
    """One line of a metrics table."""

    key: str  # "overall", "scenario:<name>", ...
    label: str
    n: int
    rates: Mapping[str, float | None]
    intervals: Mapping[str, Sequence[float]]
    unjudged: int
    gate: str  # "pass", "FAIL", "n/m" or ""
    deltas: Mapping[str, float]  # metric -> current - baseline
    refused: int = 0
    no_answer: int = 0
    no_reasoning: int = 0
    worst: Mapping[str, float | None] = field(default_factory=dict)  # unjudged as failures
    detectable: float | None = None  # smallest Think@1 drop a baseline comparison catches

    def worst_differs(self, metric: str) -> bool:
        """The worst case of ``metric`` is worth showing beside its rate."""
        worst = self.worst.get(metric)
        return (
            worst is not None
            and (self.unjudged or self.refused) > 0
            and (
                self.rates.get(metric) is None or abs(worst - (self.rates.get(metric) or 0)) > 5e-4
            )
        )


COUNT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("unjudged", "unjudged"),
    ("refused", "refused"),
    ("no_answer", "no answer"),
    ("no_reasoning", "no reasoning"),
)


def count_columns(rows: Sequence[GroupRow]) -> tuple[tuple[str, str], ...]:
    """The outcome-count columns (attribute, header) some of ``rows`` has a count in."""
    return tuple(
        (attr, name) for attr, name in COUNT_COLUMNS if any(getattr(r, attr) for r in rows)
    )


WORST_NOTE = (
    "(worst x): the rate if every unjudged or refused verdict were a failure; the unjudged, "
    "refused, no answer and no reasoning columns count samples."
)


def group_rows(report: Report, level: str) -> list[GroupRow]:
    """The rows of one level (``overall``, ``scenario``, ``category``, ``subcategory``)."""
    marks = gate_marks(report)
    deltas = baseline_deltas(report)
    rows = []
    for key, metrics in report.groups.items():
        if level == "overall":
            if key != "overall":
                continue
            label = "all instances"
        else:
            prefix, _, label = key.partition(":")
            if prefix != level:
                continue
        rows.append(
            GroupRow(
                key=key,
                label=label,
                n=int(metrics.get("n_instances", 0)),
                rates={m: metrics.get(m) for m in RATE_COLUMNS},
                intervals=metrics.get("intervals") or {},
                unjudged=int(metrics.get("unjudged_samples", 0)),
                gate=marks.get(key, ""),
                deltas={m: d for (k, m), d in deltas.items() if k == key},
                refused=int(metrics.get("refused_samples", 0)),
                no_answer=int(metrics.get("no_answer_samples", 0)),
                no_reasoning=int(metrics.get("no_reasoning_samples", 0)),
                worst=metrics.get("worst") or {},
                detectable=report.detectable.get(key),
            )
        )
    return rows


@dataclass(frozen=True)
class PowerRow:
    category: str
    n: int
    drop: float | None  # smallest detectable Think@1 drop (a rate, 0.1 = 10 points)
    limit: float = 0.20  # the policy's baseline.power_drop: a larger drop cannot block

    @property
    def too_small(self) -> bool:
        return self.drop is None or self.drop > self.limit + 1e-9


def power_rows(report: Report) -> list[PowerRow]:
    limit = report.policy.baseline.power_drop
    return [
        PowerRow(
            name, int(report.groups.get(f"category:{name}", {}).get("n_instances", 0)), drop, limit
        )
        for name, drop in report.power.items()
    ]


def power_basis(report: Report) -> str:
    """How the detectable drops were computed, in one clause."""
    cfg = report.policy.baseline
    return (
        f"{pct(cfg.power, 0)}% power at a category test's share of α = {cfg.alpha:g} in the "
        f"family-wise baseline gate, beyond the allowed max_drop of {pct(cfg.max_drop, 0)} points"
    )
