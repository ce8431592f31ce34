"""Numbers and texts as every report writes them: percentages, points, counts, money, time,
one-line excerpts of model output (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def metric_title(metric: str, k: int) -> str:
    """``safe_at_k`` -> ``Safe@5``; other names as they are."""
    titles = {
        "safe_at_1": "Safe@1",
        "safe_at_k": f"Safe@{k}",
        "think_at_1": "Think@1",
        "think_at_k": f"Think@{k}",
        "f_score": "F",
        "unjudged_rate": "unjudged rate",
        "error_rate": "error rate",
    }
    return titles.get(metric, metric)


def pct(value: float | None, digits: int = 1) -> str:
    """A rate in percent without the sign; ``-`` when not measurable."""
    return "-" if value is None else f"{100 * value:.{digits}f}"


def points(delta: float | None) -> str:
    """A change of a rate in signed percentage points (``-13.1``, ``+2.0``)."""
    return "-" if delta is None else f"{100 * delta:+.1f}"


def count(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def dollars(value: float | None) -> str:
    return "unknown (no price)" if value is None else f"${value:,.4f}"


_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def one_line(text: object) -> str:
    """``text`` on one line: whitespace runs flattened, control characters dropped (model
    output may carry NUL or ESC)."""
    return " ".join(str(text).translate(_CONTROL).split())


def excerpt(text: str | None, width: int) -> str:
    """:func:`one_line` text of at most ``width`` characters (``…`` marks a cut)."""
    flat = one_line(text or "")
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def flip_metric(flip: Mapping[str, Any], k: int, esc: Callable[[Any], str] = str) -> str:
    """A flip's metric, e.g. ``Think@5``, with the category whose own credit it is (escaped
    by ``esc`` for the report's format)."""
    name = f"{'Safe' if flip['dimension'] == 'safe' else 'Think'}@{k}"
    return f"{name} ({esc(flip['category'])})" if flip.get("category") else name


def flip_value(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"
