"""Uncertainty for BSA metrics: intervals, paired tests, flips, power and detectable drops.

Pure standard library (no numpy). The unit is always the *instance*: samples of one instance
share its prompt, so they are not independent and must move together. See the README's
Statistics section for the methods and the simulations that check them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, product
from math import exp, lgamma, log, sqrt
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
    rate_at_k,
)
from pytest_bsa.signflip import signflip_p_value

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


# -- clustered Wilson intervals ------------------------------------------------------------------


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (continued fraction, Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1.0 - x))
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return front * h / a


def chi2_sf(x: float, df: int) -> float:
    """``P(X >= x)`` for a chi-square ``X`` with ``df`` degrees of freedom."""
    if x <= 0:
        return 1.0
    a, half = df / 2.0, x / 2.0
    front = exp(-half + a * log(half) - lgamma(a))
    if half < a + 1.0:  # series for the lower incomplete gamma
        term = total = 1.0 / a
        for n in range(1, 1000):
            term *= half / (a + n)
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - front * total)
    tiny = 1e-300  # continued fraction for the upper one (Lentz)
    b = half + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return front * h


@lru_cache(maxsize=4096)
def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile (q > 0.5) of Student's t with ``df`` degrees of freedom."""
    if df > 400:
        return NormalDist().inv_cdf(q)
    target = 2.0 * (1.0 - q)  # two-sided tail: I_{df/(df+t^2)}(df/2, 1/2)
    lo, hi = 0.0, 1e4
    for _ in range(200):
        mid = (lo + hi) / 2
        if _betainc(df / 2.0, 0.5, df / (df + mid * mid)) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return (lo + hi) / 2


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


@dataclass(frozen=True)
class PairedComparison:
    """Current run vs baseline on the instances both evaluated (one-sided: did it drop?)."""

    metric: str
    n_shared: int
    baseline: float
    current: float
    delta: float  # current - baseline
    ci: tuple[float, float]  # interval for delta (t-interval; bootstrap for f_score)
    p_value: float  # H0: no drop beyond max_drop; H1: current < baseline - max_drop
    significant: bool
    max_drop: float = 0.0
    # per-instance variance of the paired difference: max(within-run, observed); None for F
    variance: float | None = None


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


def mean_difference_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student's t interval for the mean of paired differences (a point with one pair)."""
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, mean
    sd = sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(1 - (1 - level) / 2, n - 1) * sd / sqrt(n)
    return mean - half, mean + half


def within_variances(values: Sequence[float], judged: Sequence[int]) -> list[float]:
    """Per instance, the run-to-run variance of its @1 share of ``judged`` samples.

    p(1-p)/(m-1) is unbiased for the variance p(1-p)/m of a share of m Bernoulli draws, but it
    is 0 whenever all m samples agree (common at k = 5), which would claim any drop is
    detectable; Jeffreys smoothing, p = (s + 1/2) / (m + 1), keeps a floor p(1-p)/m. An instance
    with one judged sample shows nothing of its own: it gets the spread of the values across
    instances (an upper bound for the average p(1-p)).
    """
    n = len(values)
    mean = sum(values) / n if n else 0.0
    spread = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.25
    out = []
    for v, m in zip(values, judged, strict=True):
        if m <= 1:
            out.append(spread)
            continue
        p = (v * m + 0.5) / (m + 1)
        out.append(max(v * (1 - v) / (m - 1), p * (1 - p) / m))
    return out


def spread_variance(values: Sequence[float]) -> float:
    """The variance of values across instances (for @k: an upper bound of each one's own)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return sum((v - mean) ** 2 for v in values) / (n - 1)


def paired_variance(diffs: Sequence[float], within: float) -> float:
    """The per-instance variance of a paired difference that power is computed with.

    The larger of ``within`` (the two runs' within-run binomial variances, which assume that
    a rerun only redraws the samples) and the observed variance of the differences (which
    also shows run-to-run variation the samples of one run cannot: correlated samples, drift
    that varies by instance).
    """
    return max(within, spread_variance(diffs))


def rate_comparison(
    metric: str,
    current: Sequence[float],
    baseline: Sequence[float],
    within: float,
    *,
    alpha: float = 0.05,
    max_drop: float = 0.0,
    level: float = 0.95,
) -> PairedComparison:
    """The paired sign-flip test of one rate metric from the shared instances' values.

    ``within`` is the mean over instances of the two runs' within-run variances of their
    values. The p-value is :func:`pytest_bsa.signflip.signflip_p_value` of the differences
    shifted by ``max_drop`` (exact, or saddlepoint for large n); ``ci`` the t interval.
    """
    n = len(current)
    if n == 0 or n != len(baseline):
        raise ValueError("need the same non-zero number of current and baseline values")
    diffs = [c - b for c, b in zip(current, baseline, strict=True)]
    p = signflip_p_value([d + max_drop for d in diffs])
    cur, base = sum(current) / n, sum(baseline) / n
    delta = cur - base
    low, high = mean_difference_interval(diffs, level)
    return PairedComparison(
        metric=metric,
        n_shared=n,
        baseline=base,
        current=cur,
        delta=delta,
        ci=(min(low, delta), max(high, delta)),
        p_value=p,
        significant=p <= alpha + 1e-12,
        max_drop=max_drop,
        variance=paired_variance(diffs, within),
    )


def _within_of(
    outcomes: Sequence[InstanceOutcomes], metric: str, k: int, values: Sequence[float]
) -> float:
    """Mean within-run variance of one run's values of ``metric`` (in ``outcomes`` order)."""
    if not values:
        return 0.0
    if metric.endswith("_k"):
        return spread_variance(values)
    samples = "safe" if metric.startswith("safe") else "think"
    judged = [sum(v is not None for v in getattr(o, samples)) for o in outcomes]
    return sum(within_variances(values, judged)) / len(values)


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
    the distribution unchanged; the p-value is the share of swaps whose statistic is at most
    the observed one. For the rate metrics the statistic is the sum of per-instance
    differences shifted by ``max_drop`` and the share is computed without sampling
    (:mod:`pytest_bsa.signflip`); ``ci`` is a t interval. For ``f_score`` the statistic is
    F(current) - F(baseline) + ``max_drop``, recomputed from the swapped think@1 and safe@1
    means: with ``2**n <= reps`` all swaps are enumerated, otherwise ``reps`` random swaps give
    the valid Monte Carlo p-value ``(1 + hits) / (1 + reps)``, and ``ci`` is a paired bootstrap
    percentile interval. Raises ValueError when no instance enters the metric in both runs.
    """
    if metric not in COMPARABLE_METRICS:
        raise ValueError(f"metric must be one of {', '.join(COMPARABLE_METRICS)}; got {metric!r}")
    _check(reps, level)
    if metric != "f_score":
        base_by_id = _by_id(baseline, "baseline")
        pairs = []
        for o in _by_id(current, "current").values():
            b = base_by_id.get(o.id)
            if b is None:
                continue
            cv, bv = instance_values(o, k)[metric], instance_values(b, k)[metric]
            if cv is not None and bv is not None:
                pairs.append((o, b, cv, bv))
        if not pairs:
            raise ValueError(
                f"no instance has a {metric} value in both the current and the baseline run"
            )
        cur_values = [c for _, _, c, _ in pairs]
        base_values = [b for _, _, _, b in pairs]
        within = _within_of([o for o, *_ in pairs], metric, k, cur_values) + _within_of(
            [b for _, b, *_ in pairs], metric, k, base_values
        )
        return rate_comparison(
            metric, cur_values, base_values, within, alpha=alpha, max_drop=max_drop, level=level
        )
    rows = _paired_columns(current, baseline, ("think_at_1", "safe_at_1"), k)
    n = len(rows)
    if n == 0:
        raise ValueError(
            f"no instance has a {metric} value in both the current and the baseline run"
        )
    rng = Random(seed)
    flag_sets, exact = _flag_sets(n, reps, rng)
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
        significant=p <= alpha + 1e-12,
        max_drop=max_drop,
    )


@dataclass(frozen=True)
class Flip:
    """One instance whose all-k outcome changed between baseline and current; ``category``
    names the category whose own Think@k this is when it differs from the instance's."""

    id: str
    dimension: Literal["safe", "think"]
    before: float
    after: float
    category: str | None = None


def flips(
    current: Sequence[InstanceOutcomes], baseline: Sequence[InstanceOutcomes], k: int
) -> list[Flip]:
    """Shared instances whose safe@k or think@k changed, biggest drop first.

    With exactly k judged samples these are 1 -> 0 (regression) and 0 -> 1 (fix) flips; with
    more than k judged the @k estimator can move by less. The instance's flip uses its single
    official label (as its scenario counts it); a two-label Cognitive Shortcut instance also
    gets a think flip per category whose own credit (as the category tables count it) changed
    otherwise. Order: ``after - before`` ascending, then safe before think, then id and
    category. Instances without a value in both runs are skipped.
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
        single = (rate_at_k(b.think, k), rate_at_k(o.think, k))
        for category in o.categories:
            before = rate_at_k(b.for_group("category", category).think, k)
            after = rate_at_k(o.for_group("category", category).think, k)
            if None in (before, after) or before == after or (before, after) == single:
                continue
            found.append(Flip(o.id, "think", before, after, category))  # type: ignore[arg-type]
    order = {"safe": 0, "think": 1}
    return sorted(
        found, key=lambda f: (f.after - f.before, order[f.dimension], f.id, f.category or "")
    )


def _run_variance(outcomes: Sequence[InstanceOutcomes], k: int, metric: str) -> tuple[float, int]:
    """Mean run-to-run variance of one instance's value, and the number of entrants."""
    samples = "safe" if metric.startswith("safe") else "think"
    at = 1 if metric.endswith("_1") else k
    entrants = [
        (o, value) for o in outcomes if (value := rate_at_k(getattr(o, samples), at)) is not None
    ]
    n = len(entrants)
    if n < 2:
        return 0.0, n
    values = [v for _, v in entrants]
    return _within_of([o for o, _ in entrants], metric, k, values), n


def power_at(drop: float, variance: float, n: int, *, alpha: float, max_drop: float) -> float:
    """Chance that the paired test at level ``alpha`` flags a true drop of ``drop``.

    The normal approximation of the sign-flip test: with u = drop - max_drop, the shifted
    differences have mean -u and variance ``variance``; the test compares their sum with
    ``z[1-alpha]`` times the root of their sum of squares (which grows with u too), so
    ``power = Phi((sqrt(n) u - z sqrt(variance + u^2)) / sqrt(variance))``. It is 0 when the
    smallest p-value ``n`` pairs can give, 2**-n, exceeds ``alpha``.
    """
    if n < 1 or 2.0**-n > alpha:
        return 0.0
    u = drop - max_drop
    z = NormalDist().inv_cdf(1 - alpha)
    if variance <= 0:
        return 1.0 if u > 0 and sqrt(n) > z else 0.0
    return NormalDist().cdf((sqrt(n) * u - z * sqrt(variance + u * u)) / sqrt(variance))


def detectable_drop(
    variance: float, n: int, *, alpha: float, power: float = 0.8, max_drop: float = 0.0
) -> float | None:
    """The smallest true drop :func:`power_at` catches with ``power``; None when no drop of a
    rate (at most ``1 - max_drop`` beyond the allowance) reaches it at this n."""
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1); got {alpha}, {power}")
    top = 1.0
    if power_at(top, variance, n, alpha=alpha, max_drop=max_drop) < power:
        return None
    lo = max_drop
    for _ in range(60):
        mid = (lo + top) / 2
        if power_at(mid, variance, n, alpha=alpha, max_drop=max_drop) >= power:
            top = mid
        else:
            lo = mid
    return top


def minimum_detectable_drop(
    outcomes: Sequence[InstanceOutcomes],
    k: int,
    metric: str = "think_at_1",
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    max_drop: float = 0.0,
) -> float | None:
    """Smallest true drop a paired comparison of one more run of this size detects.

    :func:`detectable_drop` with the variance of a paired difference predicted from this one
    run: twice its mean within-run variance (for @1 metrics each instance's binomial variance
    from its judged samples; for @k metrics, whose single all-k outcome per run shows no
    variance of its own, the variance of the values across instances, an upper bound). A
    baseline comparison can do better: it also sees the observed variance of the differences
    (:func:`paired_variance`). None when fewer than 2 instances enter, or when no drop is
    detectable at this size.
    """
    if metric not in RATE_METRICS:
        raise ValueError(f"metric must be one of {', '.join(RATE_METRICS)}; got {metric!r}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1); got {alpha}, {power}")
    s2, n = _run_variance(outcomes, k, metric)
    if n < 2:
        return None
    return detectable_drop(2 * s2, n, alpha=alpha, power=power, max_drop=max_drop)
