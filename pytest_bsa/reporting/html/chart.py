"""The HTML report's bar charts: Safe@1 and Think@1 per group as inline SVG."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_bsa.reporting.html.templating import render
from pytest_bsa.reporting.view import SAFE_COLOR, THINK_COLOR, GroupRow, count, metric_title, pct


def bar_chart(title: str, rows: Sequence[GroupRow]) -> str:
    """Horizontal grouped bars of Safe@1 and Think@1 per group, as inline SVG."""
    label_w, plot_w, right = 300, 560, 70
    bar_h, inner, gap, top, bottom = 13, 2, 12, 46, 50
    group_h = 2 * bar_h + inner + gap
    plot_h = max(len(rows), 1) * group_h

    def x(value: float) -> float:
        return label_w + max(0.0, min(1.0, value)) * plot_w

    groups = []
    for i, row in enumerate(rows):
        y0 = top + i * group_h
        bars = []
        for j, (metric, color) in enumerate(
            (("safe_at_1", SAFE_COLOR), ("think_at_1", THINK_COLOR))
        ):
            value = row.rates.get(metric)
            bar: dict[str, Any] = {"y": y0 + j * (bar_h + inner), "value": value, "color": color}
            if value is not None:
                delta = row.deltas.get(metric)
                bar.update(
                    title=f"{metric_title(metric, 1)} {pct(value)}%",
                    width=f"{x(value) - label_w:.1f}",
                    text_x=f"{x(value) + 4:.1f}",
                    pct=pct(value),
                    base=None if delta is None else f"{x(value - delta):.1f}",
                    base_pct=None if delta is None else pct(value - delta),
                )
            bars.append(bar)
        label = row.label if len(row.label) <= 40 else row.label[:39] + "…"
        tip = f"{row.label} (n={row.n})"
        groups.append({"y0": y0, "label": label, "tip": tip, "n": count(row.n), "bars": bars})
    chart = {
        "title": title,
        "width": label_w + plot_w + right,
        "height": top + plot_h + bottom,
        "label_w": label_w,
        "plot_w": plot_w,
        "top": top,
        "plot_h": plot_h,
        "bar_h": bar_h,
        "legend": [("Safe@1", SAFE_COLOR, label_w), ("Think@1", THINK_COLOR, label_w + 90)],
        "baseline_x": label_w + 180 if any(r.deltas for r in rows) else None,
        "ticks": [(tick, x(tick / 100)) for tick in range(0, 101, 20)],
        "groups": groups,
    }
    return render("chart.svg.j2", chart=chart)
