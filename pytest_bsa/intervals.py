"""Intervals for BSA metrics: clustered Wilson intervals on Student's t for every group, and a
percentile bootstrap over instances (pure standard library; the instance is the unit).
See the README's Statistics section for the methods and the simulations that check them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from math import sqrt
from random import Random
from typing import Literal

from pytest_bsa.metrics import (
    INTERVAL_METRICS,
    RATE_METRICS,
    Breakdown,
    GroupMetrics,
    InstanceOutcomes,
    f_score,
    group_members,
    group_metrics,
    instance_values,
)
from pytest_bsa.numeric import check_reps, column_getter, percentile_interval, t_quantile


def bootstrap_intervals(
    outcomes: Sequence[InstanceOutcomes],
    k: int,
    *,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Instance-level (cluster) percentile bootstrap intervals for the group metrics.

    Each replicate draws ``len(outcomes)`` instances with replacement (all of an instance's
    samples move together) and recomputes every metric over the drawn instances that enter
    it; F-score is recomputed from the replicate's think@1 and safe@1. Metrics no instance
    enters are absent. The interval is widened to contain the point estimate if resampling
    noise leaves it outside (possible only for the non-linear F-score at tiny n).
    """
    check_reps(reps, level)
    point = group_metrics(outcomes, k)
    points = {m: getattr(point, m) for m in INTERVAL_METRICS}
    n = len(outcomes)
    columns = [instance_values(o, k) for o in outcomes]
    prepared: dict[str, tuple[list[float], list[int] | None]] = {}
    for metric in RATE_METRICS:
        raw = [c[metric] for c in columns]
        if all(v is None for v in raw):
            continue
        values = [0.0 if v is None else v for v in raw]
        entered = None if all(v is not None for v in raw) else [v is not None for v in raw]
        prepared[metric] = (values, entered)  # type: ignore[assignment]
    draws: dict[str, list[float]] = {m: [] for m in INTERVAL_METRICS}
    if n > 1:
        rng = Random(seed)
        population = range(n)
        for _ in range(reps):
            get = column_getter(rng.choices(population, k=n))
            means: dict[str, float] = {}
            for metric, (values, entered) in prepared.items():
                count = n if entered is None else sum(get(entered))
                if count:
                    means[metric] = sum(get(values)) / count
                    draws[metric].append(means[metric])
            if "think_at_1" in means and "safe_at_1" in means:
                draws["f_score"].append(f_score(means["think_at_1"], means["safe_at_1"]))
    intervals = {}
    for metric in INTERVAL_METRICS:
        estimate = points[metric]
        if estimate is None:
            continue
        low, high = (
            percentile_interval(draws[metric], level) if draws[metric] else (estimate, estimate)
        )
        intervals[metric] = (min(low, estimate), max(high, estimate))
    return intervals


def wilson_interval(
    values: Sequence[float], cap: float, level: float = 0.95
) -> tuple[float, float] | None:
    """A clustered Wilson interval for the mean of instance values in [0, 1].

    The effective number of trials is ``n* = m(1 - m) / (s^2 / n)``: how many independent
    pass/fail trials would give the observed variance of the mean (Korn and Graubard's design
    effect), capped at ``cap`` (the judged samples: no more information than that) and used
    with Student's t quantile on n - 1 degrees of freedom instead of z, so a handful of
    instances gets a wide interval instead of a confident one. When every instance has the same
    value ``n* = cap``: the interval stays open towards the unseen. None with fewer than 2.
    """
    n = len(values)
    if n < 2:
        return None
    m = sum(values) / n
    s2 = sum((v - m) ** 2 for v in values) / (n - 1)
    trials = cap if s2 <= 0 or m <= 0 or m >= 1 else min(max(m * (1 - m) * n / s2, 1.0), cap)
    z = t_quantile(1 - (1 - level) / 2, n - 1)
    z2 = z * z / trials
    center = (m + z2 / 2) / (1 + z2)
    half = z / (1 + z2) * sqrt(m * (1 - m) / trials + z2 / (4 * trials))
    return max(0.0, min(center - half, m)), min(1.0, max(center + half, m))


def _reachable_lower(n: int, cap: float, level: float) -> float:
    """The lower bound of :func:`wilson_interval` when every instance passed: the most a
    group of this size can prove."""
    z = t_quantile(1 - (1 - level) / 2, n - 1)
    return cap / (cap + z * z)


def group_intervals(
    outcomes: Sequence[InstanceOutcomes], k: int, *, level: float = 0.95
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Intervals for a group's metrics, and the highest lower bound each could reach.

    Rate metrics: :func:`wilson_interval` over the instance values (@1: capped at the judged
    samples; @k: at the instances). F-score: F of the components' intervals at level
    ``1 - (1 - level) / 2`` each (F rises with both, so when both cover, F's covers: at least
    ``level`` by Bonferroni). Metrics with fewer than 2 entrants get no interval.
    """
    columns = [instance_values(o, k) for o in outcomes]
    intervals: dict[str, tuple[float, float]] = {}
    reach: dict[str, float] = {}
    halves: dict[str, tuple[tuple[float, float], float]] = {}
    wide = 1 - (1 - level) / 2
    for metric in RATE_METRICS:
        values = [c[metric] for c in columns if c[metric] is not None]
        n = len(values)
        if n < 2:
            continue
        if metric.endswith("_1"):
            samples = "safe" if metric.startswith("safe") else "think"
            cap = float(sum(sum(v is not None for v in getattr(o, samples)) for o in outcomes))
        else:
            cap = float(n)
        interval = wilson_interval(values, cap, level)  # type: ignore[arg-type]
        assert interval is not None
        intervals[metric] = interval
        reach[metric] = _reachable_lower(n, cap, level)
        if metric in ("think_at_1", "safe_at_1"):
            both = wilson_interval(values, cap, wide)  # type: ignore[arg-type]
            assert both is not None
            halves[metric] = (both, _reachable_lower(n, cap, wide))
    if len(halves) == 2:
        (t_iv, t_reach), (s_iv, s_reach) = halves["think_at_1"], halves["safe_at_1"]
        intervals["f_score"] = (f_score(t_iv[0], s_iv[0]), f_score(t_iv[1], s_iv[1]))
        reach["f_score"] = f_score(t_reach, s_reach)
    return intervals, reach


def with_intervals(
    m: GroupMetrics,
    outcomes: Sequence[InstanceOutcomes],
    k: int,
    *,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    method: Literal["wilson", "bootstrap"] = "wilson",
) -> GroupMetrics:
    """``m`` with its ``intervals`` filled: :func:`group_intervals` (default) or, with
    ``method="bootstrap"``, :func:`bootstrap_intervals` (``reps`` and ``seed`` apply to it)."""
    if method == "bootstrap":
        return dataclasses.replace(
            m, intervals=bootstrap_intervals(outcomes, k, reps=reps, level=level, seed=seed)
        )
    intervals, reach = group_intervals(outcomes, k, level=level)
    return dataclasses.replace(m, intervals=intervals, lower_reach=reach)


def breakdown_with_intervals(
    outcomes: Sequence[InstanceOutcomes],
    k: int,
    *,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    subcategory_intervals: bool = True,
    method: Literal["wilson", "bootstrap"] = "wilson",
) -> Breakdown:
    """:func:`pytest_bsa.metrics.breakdown` with the groups' ``intervals`` filled.

    ``subcategory_intervals=False`` skips the many small subcategory groups when nothing gates
    on them.
    """
    scenarios, categories, subcategories = group_members(outcomes)
    kw = {"reps": reps, "level": level, "seed": seed, "method": method}

    def table(
        members: dict[str, list[InstanceOutcomes]], intervals: bool = True
    ) -> dict[str, GroupMetrics]:
        if not intervals:
            return {name: group_metrics(m, k) for name, m in members.items()}
        return {
            name: with_intervals(group_metrics(m, k), m, k, **kw) for name, m in members.items()
        }

    return Breakdown(
        overall=with_intervals(group_metrics(outcomes, k), outcomes, k, **kw),
        scenarios=table(scenarios),
        categories=table(categories),
        subcategories=table(subcategories, subcategory_intervals),
    )
