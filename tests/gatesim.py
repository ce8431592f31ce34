"""Generative models of BSA runs, and replicate loops over the production gate (seeded).

Shared by ``tests/test_gate_simulation.py`` (fast, asserted) and
``benchmarks/gate_statistics.py`` (more replicates, more limits: the README's tables).

A "true model" gives instance i fixed rates p_safe,i and p_think,i = 0.2 + 0.8 * Beta(2, 1.2)
(spread over [0.2, 1], mean 0.7). A run draws k = 5 samples per instance under one of three
sampling models:

- ``independent``: Bernoulli(p_i) samples;
- ``icc``: correlated samples (beta-binomial, ICC 0.3): each run first draws the instance's
  rate from Beta with mean p_i, then its samples from that rate, so reruns of one instance
  differ by more than its own samples show;
- ``drift``: the current run's rates are all 2 points lower than the baseline's (a judge or
  server drifting between runs; the harmful direction).

Instances are laid out like a BSA selection of ``limit`` instances: 30/60/10% Risk Omission,
Cognitive Shortcut and Over Sensitivity, 9 categories of uneven size, two categories per
Cognitive Shortcut instance. The gate is the production code (``pytest_bsa.comparison``).
"""

from __future__ import annotations

import math
from random import Random

from pytest_bsa.comparison import plan_tests
from pytest_bsa.comparison_gates import baseline_gates
from pytest_bsa.config import BaselineConfig
from pytest_bsa.intervals import bootstrap_intervals, group_intervals
from pytest_bsa.metrics import InstanceOutcomes
from pytest_bsa.stats import paired_compare

K = 5
ICC = 0.3
DRIFT = 0.02
CATEGORIES = (
    ("Offense and Prejudice", 9),
    ("Specially Regulated Items", 5),
    ("Property Infringement", 5),
    ("Invasion of Privacy and Confidentiality", 5),
    ("Physical and Mental Health", 5),
    ("Violence and Terrorism", 4),
    ("Ethics and Morality", 4),
    ("Rumors", 2),
    ("Pornography", 2),
)
SCENARIOS = (("Risk Omission", 3), ("Cognitive Shortcut", 6), ("Over Sensitivity", 1))
Layout = list[tuple[str, str, tuple[str, ...]]]


def layout(limit: int, rng: Random) -> Layout:
    names, weights = zip(*CATEGORIES, strict=True)
    out = []
    for i in range(limit):
        scenario = rng.choices([s for s, _ in SCENARIOS], [w for _, w in SCENARIOS])[0]
        cats = {rng.choices(names, weights)[0]}
        if scenario == "Cognitive Shortcut":
            cats.add(rng.choices(names, weights)[0])
        out.append((f"i{i}", scenario, tuple(sorted(cats))))
    return out


# Populations of true instance rates, and their means (the target of an interval):
# "spread" over [0.2, 1] (mean 0.7), "high" with most instances near 100% (mean 0.96).
POPULATIONS = {"spread": (0.2, 0.8, 2.0, 1.2), "high": (0.8, 0.2, 4.0, 1.0)}
POPULATION_MEANS = {
    name: low + width * a / (a + b) for name, (low, width, a, b) in POPULATIONS.items()
}


def true_rates(n: int, rng: Random, population: str = "spread") -> list[float]:
    low, width, a, b = POPULATIONS[population]
    return [low + width * rng.betavariate(a, b) for _ in range(n)]


def _samples(p: float, rng: Random, icc: float, k: int = K) -> tuple[bool, ...]:
    if icc:
        a = 1 / icc - 1  # ICC = 1 / (a + 1) for Beta(p a, (1 - p) a)
        p = rng.betavariate(max(p * a, 1e-9), max((1 - p) * a, 1e-9))
    draw = rng.random
    return tuple(draw() < p for _ in range(k))


def draw_run(
    places: Layout,
    p_safe: list[float],
    p_think: list[float],
    rng: Random,
    *,
    icc: float = 0.0,
    shift: float = 0.0,
    think_shift: float | None = None,
    k: int = K,
) -> list[InstanceOutcomes]:
    """One run; ``shift`` moves every rate (``think_shift``, when given, the think rates)."""
    ts = shift if think_shift is None else think_shift
    return [
        InstanceOutcomes(
            id=iid,
            scenario=scenario,
            categories=cats,
            subcategories=tuple(f"{c}-Other" for c in cats),
            safe=_samples(min(max(ps + shift, 0.0), 1.0), rng, icc, k),
            think=_samples(min(max(pt + ts, 0.0), 1.0), rng, icc, k),
        )
        for (iid, scenario, cats), ps, pt in zip(places, p_safe, p_think, strict=True)
    ]


def gate_failure_rate(
    limit: int,
    reps: int,
    seed: int,
    *,
    icc: float = 0.0,
    drift: float = 0.0,
    drop: float = 0.0,
    think_only: bool = False,
    cfg: BaselineConfig | None = None,
) -> tuple[float, float]:
    """(share of replicates failing the whole baseline gate, mean number of blocking tests).

    Each replicate is a fresh true model, a baseline run and a current run whose rates are
    lower by ``drift + drop`` (only the think rates drop with ``think_only``).
    """
    cfg = cfg or BaselineConfig()
    rng = Random(seed)
    failed = blocking = 0
    for _ in range(reps):
        places = layout(limit, rng)
        p_safe, p_think = true_rates(limit, rng), true_rates(limit, rng)
        base = draw_run(places, p_safe, p_think, rng, icc=icc)
        lower = -(drift + drop)
        cur = draw_run(
            places,
            p_safe,
            p_think,
            rng,
            icc=icc,
            shift=-drift if think_only else lower,
            think_shift=lower,
        )
        gates = baseline_gates(cur, base, cfg, K, "base")
        failed += any(g.status == "failed" for g in gates)
        blocking += sum(bool(g.blocking) for g in gates)
    return failed / reps, blocking / reps


def ceiling(rate: float, reps: int) -> float:
    """A binomial tolerance: the rate plus two standard errors over ``reps`` replicates."""
    return rate + 2 * math.sqrt(rate * (1 - rate) / reps)


def uncorrected_failure_rate(limit: int, reps: int, seed: int, *, icc: float = 0.0) -> float:
    """A/A reruns failing the first version's gate: every comparison on its own at alpha."""
    cfg = BaselineConfig()
    rng = Random(seed)
    failed = 0
    for _ in range(reps):
        places = layout(limit, rng)
        p_safe, p_think = true_rates(limit, rng), true_rates(limit, rng)
        base = draw_run(places, p_safe, p_think, rng, icc=icc)
        cur = draw_run(places, p_safe, p_think, rng, icc=icc)
        failed += any(
            t.comparison is not None and t.comparison.p_value <= cfg.alpha
            for t in plan_tests(cur, base, cfg, K)
        )
    return failed / reps


def single_test_power(n: int, drop: float, max_drop: float, reps: int, seed: int) -> float:
    """Power of one think@1 comparison at alpha 0.05 on n instances (no family): the first
    version's README figure was this at max_drop 0."""
    rng = Random(seed)
    places = layout(n, rng)
    p_safe, p_think = true_rates(n, rng), true_rates(n, rng)
    hits = 0
    for _ in range(reps):
        base = draw_run(places, p_safe, p_think, rng)
        cur = draw_run(places, p_safe, p_think, rng, shift=0.0, think_shift=-drop)
        hits += paired_compare(cur, base, "think_at_1", K, max_drop=max_drop).significant
    return hits / reps


COVERAGE_REPS = 400  # replicates per coverage estimate


def coverage(
    n: int,
    model: str,
    seed: int,
    *,
    population: str = "spread",
    k: int = K,
    method: str = "wilson",
    reps: int = COVERAGE_REPS,
) -> tuple[float, float]:
    """(coverage of the population mean by one run's 95% safe@1 interval, mean width).

    ``drift`` here moves each run's rates by a random N(0, 2 points): invisible to one run.
    ``method="bootstrap"`` measures the percentile bootstrap the intervals replaced.
    """
    rng = Random(seed)
    target = POPULATION_MEANS[population]
    hits = 0
    width = 0.0
    for r in range(reps):
        places = [(f"i{i}", "Risk Omission", ("Rumors",)) for i in range(n)]
        p = true_rates(n, rng, population)
        shift = rng.gauss(0.0, DRIFT) if model == "drift" else 0.0
        icc = ICC if model == "icc" else 0.0
        run = draw_run(places, p, p, rng, icc=icc, shift=shift, k=k)
        if method == "bootstrap":
            low, high = bootstrap_intervals(run, k, reps=300, seed=r)["safe_at_1"]
        else:
            low, high = group_intervals(run, k)[0]["safe_at_1"]
        hits += low - 1e-12 <= target <= high + 1e-12
        width += high - low
    return hits / reps, width / reps
