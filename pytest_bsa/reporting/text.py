"""The end-of-run table in plain text (no pytest import)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableRow:
    label: str
    n: int
    safe_at_1: float | None
    safe_at_k: float | None
    think_at_1: float | None
    think_at_k: float | None
    f_score: float | None
    unjudged: int
    gate: str  # "pass", "FAIL", "n/m" (not measurable) or "" when no threshold applies
    detectable: float | None = None  # smallest Think@1 drop this n and k can detect
    refused: int = 0
    no_answer: int = 0
    no_reasoning: int = 0
    # The rates with unjudged and refused verdicts counted as failures (shown when they differ).
    worst: Mapping[str, float | None] = field(default_factory=dict)


WORST_LABEL = "worst case"
_RATES = ("safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def render_table(sections: Iterable[tuple[str, Sequence[TableRow]]], k: int) -> list[str]:
    """Fixed-width table with one block per section (scenario, category)."""
    at_k = "k" if k == 1 else str(k)  # "Safe@1" twice would read as a mistake
    headers = [
        "n",
        "Safe@1",
        f"Safe@{at_k}",
        "Think@1",
        f"Think@{at_k}",
        "F",
        "unjudged",
        "refused",
        "no answer",
        "no reasoning",
        "min drop",
        "gate",
    ]
    sections = list(sections)
    label_width = max(
        [len(title) for title, _ in sections]
        + [len(row.label) + 2 for _, rows in sections for row in rows]
        + [len(WORST_LABEL) + 4]
    )
    widths = [6, 7, 7, 8, 8, 6, 9, 8, 10, 13, 9, 5]

    def fmt(label: str, cells: Sequence[str]) -> str:
        padded = (c.rjust(w) for c, w in zip(cells, widths, strict=True))
        return label.ljust(label_width) + "".join(padded)

    out = [fmt("", headers)]
    for title, rows in sections:
        out.append(title)
        for r in rows:
            cells = [
                str(r.n),
                _pct(r.safe_at_1),
                _pct(r.safe_at_k),
                _pct(r.think_at_1),
                _pct(r.think_at_k),
                _pct(r.f_score),
                str(r.unjudged),
                str(r.refused),
                str(r.no_answer),
                str(r.no_reasoning),
                "" if r.detectable is None else f"{100 * r.detectable:.0f}",
                r.gate,
            ]
            out.append(fmt("  " + r.label, cells))
            if r.unjudged or r.refused:
                worst = [_pct(r.worst.get(m)) for m in _RATES]
                out.append(fmt(f"    {WORST_LABEL}", ["", *worst, *[""] * 6]))
    return out
