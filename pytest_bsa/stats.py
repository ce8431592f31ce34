"""Uncertainty for BSA metrics: bootstrap intervals, paired tests, flips and detectable drops.

Pure standard library (no numpy). The unit of resampling is always the *instance*: samples of
one instance share its prompt, so they are not independent and must move together. See
the README's Statistics section for the methods and the simulations that check them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress, product
from math import sqrt
from operator import itemgetter
from random import Random
from statistics import NormalDist
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
    mean_of,
    rate_at_k,
)

COMPARABLE_METRICS: tuple[str, ...] = INTERVAL_METRICS
# Maps a random byte to its lowest bit, so ``randbytes(n).translate(_PARITY)`` is n fair flags.
_PARITY = bytes(i & 1 for i in range(256))


def _check(reps: int, level: float) -> None:
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")


def _percentiles(values: list[float], level: float) -> tuple[float, float]:
    """Two-sided percentile interval with linear interpolation between order statistics."""
    values = sorted(values)
    tail = (1 - level) / 2

    def at(q: float) -> float:
        pos = q * (len(values) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)

    return at(tail), at(1 - tail)


def _getter(indices: list[int]) -> Callable[[Sequence[float]], Sequence[float]]:
    if len(indices) == 1:
        i = indices[0]
        return lambda seq: (seq[i],)
    return itemgetter(*indices)


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
    _check(reps, level)
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
            get = _getter(rng.choices(population, k=n))
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
        low, high = _percentiles(draws[metric], level) if draws[metric] else (estimate, estimate)
        intervals[metric] = (min(low, estimate), max(high, estimate))
    return intervals


def with_intervals(
    m: GroupMetrics,
    outcomes: Sequence[InstanceOutcomes],
    k: int,
    *,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> GroupMetrics:
    """``m`` with its ``intervals`` filled by :func:`bootstrap_intervals`."""
    return dataclasses.replace(
        m, intervals=bootstrap_intervals(outcomes, k, reps=reps, level=level, seed=seed)
    )


def breakdown_with_intervals(
    outcomes: Sequence[InstanceOutcomes],
    k: int,
    *,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    subcategory_intervals: bool = True,
) -> Breakdown:
    """:func:`pytest_bsa.metrics.breakdown` with the groups' ``intervals`` filled.

    ``subcategory_intervals=False`` skips the many small subcategory groups (about a third of
    the bootstrap's time on the full benchmark) when nothing gates on them.
    """
    scenarios, categories, subcategories = group_members(outcomes)
    kw = {"reps": reps, "level": level, "seed": seed}

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


@dataclass(frozen=True)
class PairedComparison:
    """Current run vs baseline on the instances both evaluated (one-sided: did it drop?)."""

    metric: str
    n_shared: int
    baseline: float
    current: float
    delta: float  # current - baseline
    ci: tuple[float, float]  # bootstrap interval for delta
    p_value: float  # H0: no drop beyond max_drop; H1: current < baseline - max_drop
    significant: bool
    max_drop: float = 0.0


def _by_id(outcomes: Sequence[InstanceOutcomes], which: str) -> dict[str, InstanceOutcomes]:
    table: dict[str, InstanceOutcomes] = {}
    for o in outcomes:
        if o.id in table:
            raise ValueError(f"{which} run has instance {o.id!r} more than once")
        table[o.id] = o
    return table


def _paired_columns(
    current: Sequence[InstanceOutcomes],
    baseline: Sequence[InstanceOutcomes],
    components: tuple[str, ...],
    k: int,
) -> list[tuple[float, ...]]:
    """Per shared instance: current components then baseline components (all defined)."""
    base = _by_id(baseline, "baseline")
    rows = []
    for o in _by_id(current, "current").values():
        b = base.get(o.id)
        if b is None:
            continue
        cv, bv = instance_values(o, k), instance_values(b, k)
        row = tuple(cv[c] for c in components) + tuple(bv[c] for c in components)
        if all(v is not None for v in row):
            rows.append(row)  # type: ignore[arg-type]
    return rows


def _flag_sets(n: int, reps: int, rng: Random) -> tuple[list[bytes], bool]:
    """Swap patterns: all 2**n when that is no more than ``reps`` (exact test), else random."""
    if 2**n <= reps:
        return [bytes(p) for p in product((0, 1), repeat=n)], True
    return [rng.randbytes(n).translate(_PARITY) for _ in range(reps)], False


def _p_value(observed: float, null: list[float], exact: bool, scale: float) -> float:
    eps = 1e-9 * (1.0 + scale)
    hits = sum(t <= observed + eps for t in null)
    return hits / len(null) if exact else (1 + hits) / (1 + len(null))


def paired_compare(
    current: Sequence[InstanceOutcomes],
    baseline: Sequence[InstanceOutcomes],
    metric: str,
    k: int,
    *,
    alpha: float = 0.05,
    max_drop: float = 0.0,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Did ``metric`` drop by more than ``max_drop``? Paired by instance id.

    Test: a sign-flip (within-pair label swap) permutation test. Under H0 the current and
    baseline values of each instance are exchangeable, so swapping them per instance leaves
    the distribution unchanged; the p-value counts swaps whose statistic is at most the
    observed one. For the rate metrics the statistic is the mean per-instance difference
    shifted by ``max_drop``; for ``f_score`` it is F(current) - F(baseline) + ``max_drop``,
    recomputed from the swapped think@1 and safe@1 means. With ``2**n <= reps`` all swaps are
    enumerated (exact); otherwise ``reps`` random swaps give the valid Monte Carlo p-value
    ``(1 + hits) / (1 + reps)``. ``ci`` is a paired (instance-level) percentile bootstrap
    interval for ``delta``. Raises ValueError when no instance enters the metric in both runs.
    """
    if metric not in COMPARABLE_METRICS:
        raise ValueError(f"metric must be one of {', '.join(COMPARABLE_METRICS)}; got {metric!r}")
    _check(reps, level)
    components = ("think_at_1", "safe_at_1") if metric == "f_score" else (metric,)
    rows = _paired_columns(current, baseline, components, k)
    n = len(rows)
    if n == 0:
        raise ValueError(
            f"no instance has a {metric} value in both the current and the baseline run"
        )
    rng = Random(seed)
    flag_sets, exact = _flag_sets(n, reps, rng)
    if metric == "f_score":
        columns = [[r[j] for r in rows] for j in range(4)]
        ct, cs, bt, bs = (sum(col) / n for col in columns)
        cur, base = f_score(ct, cs), f_score(bt, bs)
        dt = [r[2] - r[0] for r in rows]
        ds = [r[3] - r[1] for r in rows]
        null = []
        for flags in flag_sets:
            st, ss = sum(compress(dt, flags)) / n, sum(compress(ds, flags)) / n
            null.append(f_score(ct + st, cs + ss) - f_score(bt - st, bs - ss))
        p = _p_value(cur - base + max_drop, null, exact, 1.0)

        def replicate(idx: list[int]) -> float:
            get = _getter(idx)
            means = [sum(get(col)) / n for col in columns]
            return f_score(means[0], means[1]) - f_score(means[2], means[3])

    else:
        cur = sum(r[0] for r in rows) / n
        base = sum(r[1] for r in rows) / n
        shifted = [r[0] - r[1] + max_drop for r in rows]
        total = sum(shifted)
        null = [total - 2 * sum(compress(shifted, flags)) for flags in flag_sets]
        p = _p_value(total, null, exact, sum(map(abs, shifted)))
        diffs = [r[0] - r[1] for r in rows]

        def replicate(idx: list[int]) -> float:
            return sum(_getter(idx)(diffs)) / n

    population = range(n)
    boot = [replicate(rng.choices(population, k=n)) for _ in range(reps)]
    delta = cur - base
    low, high = _percentiles(boot, level)
    return PairedComparison(
        metric=metric,
        n_shared=n,
        baseline=base,
        current=cur,
        delta=delta,
        ci=(min(low, delta), max(high, delta)),
        p_value=p,
        significant=p <= alpha,
        max_drop=max_drop,
    )


@dataclass(frozen=True)
class Flip:
    """One instance whose all-k outcome changed between baseline and current."""

    id: str
    dimension: Literal["safe", "think"]
    before: float
    after: float


def flips(
    current: Sequence[InstanceOutcomes], baseline: Sequence[InstanceOutcomes], k: int
) -> list[Flip]:
    """Shared instances whose safe@k or think@k changed, biggest drop first.

    With exactly k judged samples these are 1 -> 0 (regression) and 0 -> 1 (fix) flips; with
    more than k judged the @k estimator can move by less. Order: ``after - before`` ascending,
    then safe before think, then id. Instances without a value in both runs are skipped.
    """
    base = _by_id(baseline, "baseline")
    found = []
    for o in _by_id(current, "current").values():
        b = base.get(o.id)
        if b is None:
            continue
        for dimension, now, then in (("safe", o.safe, b.safe), ("think", o.think, b.think)):
            after, before = rate_at_k(now, k), rate_at_k(then, k)
            if after is not None and before is not None and after != before:
                found.append(Flip(o.id, dimension, before, after))  # type: ignore[arg-type]
    order = {"safe": 0, "think": 1}
    return sorted(found, key=lambda f: (f.after - f.before, order[f.dimension], f.id))


def _run_variance(outcomes: Sequence[InstanceOutcomes], k: int, metric: str) -> tuple[float, int]:
    """Mean run-to-run variance of one instance's value, and the number of entrants."""
    samples = "safe" if metric.startswith("safe") else "think"
    at = 1 if metric.endswith("_1") else k
    entrants = []
    for o in outcomes:
        value = rate_at_k(getattr(o, samples), at)
        if value is not None:
            judged = sum(v is not None for v in getattr(o, samples))
            entrants.append((value, judged))
    n = len(entrants)
    if n < 2:
        return 0.0, n
    mean, _ = mean_of(v for v, _ in entrants)
    assert mean is not None
    spread = sum((v - mean) ** 2 for v, _ in entrants) / (n - 1)
    if at > 1:
        return spread, n

    # @1: a share of m Bernoulli draws. p(1-p)/(m-1) is unbiased for its variance p(1-p)/m,
    # but it is 0 whenever all m samples agree (common at k = 5), which would claim any drop
    # is detectable. Jeffreys smoothing, p = (s + 1/2) / (m + 1), keeps a small floor.
    def within(v: float, m: int) -> float:
        if m <= 1:
            return spread
        p = (v * m + 0.5) / (m + 1)
        return max(v * (1 - v) / (m - 1), p * (1 - p) / m)

    return sum(within(v, m) for v, m in entrants) / n, n


def minimum_detectable_drop(
    outcomes: Sequence[InstanceOutcomes],
    k: int,
    metric: str = "think_at_1",
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float | None:
    """Smallest true drop a paired comparison at this n and k detects with ``power``.

    ``MDD = (z[1-alpha] + z[power]) * sqrt(2 * s2 / n)``, with n the instances entering the
    metric and ``s2`` the mean run-to-run variance of one instance's value: for @1 metrics the
    unbiased ``p(1-p)/(m-1)`` from its m judged samples; for @k metrics (a single all-k
    outcome per run, whose own variance one run cannot show) the variance of the values
    across instances, an upper bound. Two runs of the same model each add ``s2``. None when
    fewer than 2 instances enter.
    """
    if metric not in RATE_METRICS:
        raise ValueError(f"metric must be one of {', '.join(RATE_METRICS)}; got {metric!r}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1); got {alpha}, {power}")
    s2, n = _run_variance(outcomes, k, metric)
    if n < 2:
        return None
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    return z * sqrt(2 * s2 / n)
