"""Evidence by simulation that the whole baseline gate, its power and its intervals hold.

The generative models and the replicate loops are in ``gatesim.py`` (see its docstring); the
gate is the production code at the default configuration. Everything is seeded, so the rates
are fixed numbers (quoted in the README's Statistics section); tolerances are binomial (two
standard errors of the replicates). ``benchmarks/gate_statistics.py`` runs the same
simulations with more replicates and at --bsa-limit 2000.
"""

from __future__ import annotations

from random import Random

import pytest
from gatesim import (
    DRIFT,
    ICC,
    K,
    ceiling,
    coverage,
    draw_run,
    gate_failure_rate,
    layout,
    true_rates,
)

from pytest_bsa.config import BaselineConfig
from pytest_bsa.stats import detectable_drop, minimum_detectable_drop, paired_compare

# -- family-wise false alarms: A/A reruns of one model --------------------------------------------

FWER_CASES = {
    # (limit, sampling model, max_drop): replicates
    (90, "independent", 0.05): 150,
    (90, "icc", 0.05): 150,
    (90, "drift", 0.05): 150,
    (900, "independent", 0.05): 40,
    (900, "icc", 0.05): 40,
    (900, "drift", 0.05): 40,
    (900, "independent", 0.0): 40,
    (900, "icc", 0.0): 40,
}


@pytest.mark.parametrize(
    "limit,model,max_drop", list(FWER_CASES), ids=[f"{a}-{b}-{c}" for a, b, c in FWER_CASES]
)
def test_a_rerun_of_the_same_model_fails_the_whole_gate_at_most_alpha(
    limit: int, model: str, max_drop: float
) -> None:
    reps = FWER_CASES[limit, model, max_drop]
    cfg = BaselineConfig(max_drop=max_drop)
    rate, blocking = gate_failure_rate(
        limit,
        reps,
        seed=limit + int(100 * max_drop),
        icc=ICC if model == "icc" else 0.0,
        drift=DRIFT if model == "drift" else 0.0,
        cfg=cfg,
    )
    print(
        f"\nfamily-wise false alarms, limit {limit}, {model}, max_drop {max_drop}: {rate:.3f} "
        f"({blocking:.1f} of 26 tests blocking, {reps} reruns)"
    )
    assert rate <= ceiling(cfg.alpha, reps)
    assert blocking >= 1  # the gate can fail at all: at least one overall test blocks


def test_drift_breaks_exchangeability_at_large_n_without_max_drop() -> None:
    """The documented limit: a 2-point drift between runs at max_drop 0 reads as a drop."""
    rate, _ = gate_failure_rate(900, 30, seed=7, drift=DRIFT, cfg=BaselineConfig(max_drop=0.0))
    print(f"\nfamily-wise false alarms, limit 900, 2-point drift, max_drop 0: {rate:.3f}")
    assert rate > 0.2


# -- power --------------------------------------------------------------------------------------

POWER_CASES = {
    # (limit, drop, think only): (replicates, at least)
    (90, 0.15, False): (100, 0.95),
    (90, 0.15, True): (100, 0.80),
    (300, 0.10, True): (60, 0.70),
    (900, 0.10, True): (30, 0.95),
}


@pytest.mark.parametrize(
    "limit,drop,think_only",
    list(POWER_CASES),
    ids=[f"{a}-{int(100 * b)}pt-{'think' if c else 'both'}" for a, b, c in POWER_CASES],
)
def test_a_real_overall_drop_is_caught(limit: int, drop: float, think_only: bool) -> None:
    reps, floor = POWER_CASES[limit, drop, think_only]
    rate, _ = gate_failure_rate(limit, reps, seed=11 + limit, drop=drop, think_only=think_only)
    what = "think@1" if think_only else "safe@1 and think@1"
    print(f"\npower, limit {limit}, {int(100 * drop)}-point drop of {what}: {rate:.3f}")
    assert rate >= floor


def _power_at(drop: float, icc: float, rng: Random, places, p_safe, p_think, alpha) -> float:
    cfg = BaselineConfig()
    hits, reps = 0, 150
    for _ in range(reps):
        b = draw_run(places, p_safe, p_think, rng, icc=icc)
        c = draw_run(places, p_safe, p_think, rng, icc=icc, shift=0.0, think_shift=-drop)
        result = paired_compare(c, b, "think_at_1", K, alpha=alpha, max_drop=cfg.max_drop)
        hits += result.significant
    return hits / reps


def test_the_detectable_drop_is_honest_at_the_default_and_with_correlated_samples() -> None:
    """Power at the reported min drop is near the promised 80% (one test, its alpha share).

    Without a baseline, min drop comes from one run's binomial variance; with correlated
    samples that understates the noise, and the baseline comparison's observed variance of
    the paired differences corrects it.
    """
    cfg = BaselineConfig()
    n, alpha = 100, cfg.alpha * 0.25  # an overall test's share with the default levels
    rng = Random(5)
    places = layout(n, rng)
    p_safe, p_think = true_rates(n, rng), true_rates(n, rng)
    found = {}
    for model, icc in (("independent", 0.0), ("icc", ICC)):
        base = draw_run(places, p_safe, p_think, rng, icc=icc)
        again = draw_run(places, p_safe, p_think, rng, icc=icc)
        one_run = minimum_detectable_drop(base, K, "think_at_1", alpha=alpha, max_drop=cfg.max_drop)
        paired = paired_compare(again, base, "think_at_1", K, max_drop=cfg.max_drop)
        assert paired.variance is not None and one_run is not None
        honest = detectable_drop(paired.variance, n, alpha=alpha, max_drop=cfg.max_drop)
        assert honest is not None
        at_one_run = _power_at(one_run, icc, rng, places, p_safe, p_think, alpha)
        at_honest = _power_at(honest, icc, rng, places, p_safe, p_think, alpha)
        found[model] = (one_run, honest, at_one_run, at_honest)
        print(
            f"\n{model}: min drop from one run {one_run:.3f} (simulated power {at_one_run:.3f}), "
            f"from the paired variance {honest:.3f} (simulated power {at_honest:.3f})"
        )
    for _, _, _, at_honest in found.values():
        assert 0.65 <= at_honest <= 0.95
    one_run, honest, at_one_run, at_honest = found["icc"]
    assert honest > one_run * 1.2  # correlated samples: one run's binomial variance understates
    assert at_one_run < at_honest


# -- intervals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["independent", "icc", "drift"])
def test_interval_coverage_is_near_nominal_at_small_and_large_n(model: str) -> None:
    results = {n: coverage(n, model, seed=n) for n in (3, 10, 30, 100)}
    for n, (rate, width) in results.items():
        print(f"\ncoverage, {model}, n={n}: {rate:.3f} (mean width {width:.3f})")
    for n, (rate, _) in results.items():
        if model == "drift" and n == 100:
            continue  # run-level drift is invisible to one run: documented, not covered
        assert rate >= 0.90, (n, rate)
    assert results[3][1] > results[100][1]  # small groups get wide intervals, not confident ones
