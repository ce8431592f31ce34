"""Comparing runs of BSA metrics: paired tests, power and detectable drops.

Pure standard library (no numpy). The unit is always the *instance*: samples of one instance
share its prompt, so they are not independent and must move together. Intervals of a single
run are in :mod:`pytest_bsa.intervals`, flipped instances in :mod:`pytest_bsa.flips`. See the
README's Statistics section for the methods and the simulations that check them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, product
from math import sqrt
from random import Random
from statistics import NormalDist

from pytest_bsa.flips import Flip as Flip
from pytest_bsa.flips import by_id
from pytest_bsa.flips import flips as flips
from pytest_bsa.metrics import (
    INTERVAL_METRICS,
    RATE_METRICS,
    InstanceOutcomes,
    f_score,
    instance_values,
    rate_at_k,
)
from pytest_bsa.numeric import check_reps, column_getter, percentile_interval, t_quantile
from pytest_bsa.signflip import signflip_p_value

COMPARABLE_METRICS: tuple[str, ...] = INTERVAL_METRICS


# Maps a random byte to its lowest bit, so ``randbytes(n).translate(_PARITY)`` is n fair flags.
_PARITY = bytes(i & 1 for i in range(256))


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


def _compared(
    metric: str,
    n: int,
    current: float,
    baseline: float,
    interval: tuple[float, float],
    p: float,
    alpha: float,
    max_drop: float,
    variance: float | None = None,
) -> PairedComparison:
    """The comparison, its interval widened to hold the observed change."""
    delta = current - baseline
    ci = (min(interval[0], delta), max(interval[1], delta))
    significant = p <= alpha + 1e-12
    return PairedComparison(
        metric, n, baseline, current, delta, ci, p, significant, max_drop, variance
    )


def _paired_columns(
    current: Sequence[InstanceOutcomes],
    baseline: Sequence[InstanceOutcomes],
    components: tuple[str, ...],
    k: int,
) -> list[tuple[float, ...]]:
    """Per shared instance: current components then baseline components (all defined)."""
    base = by_id(baseline, "baseline")
    rows = []
    for o in by_id(current, "current").values():
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
    interval = mean_difference_interval(diffs, level)
    cur, base, variance = sum(current) / n, sum(baseline) / n, paired_variance(diffs, within)
    return _compared(metric, n, cur, base, interval, p, alpha, max_drop, variance)


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
    check_reps(reps, level)
    if metric != "f_score":
        base_by_id = by_id(baseline, "baseline")
        pairs = []
        for o in by_id(current, "current").values():
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
        get = column_getter(idx)
        means = [sum(get(col)) / n for col in columns]
        return f_score(means[0], means[1]) - f_score(means[2], means[3])

    population = range(n)
    boot = [replicate(rng.choices(population, k=n)) for _ in range(reps)]
    return _compared(metric, n, cur, base, percentile_interval(boot, level), p, alpha, max_drop)


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
