"""Evidence by simulation that the paired baseline gate has the right size and enough power.

A "true model" gives every instance i a fixed probability of a safe answer and of a correct
reasoning trace. A run draws k = 5 Bernoulli samples per instance from it. Each scenario
below simulates PAIRS (baseline run, current run) pairs and counts how often
``paired_compare`` calls the difference significant at alpha = 0.05 with max_drop = 0.

Everything is seeded, so the rates are reproducible numbers, not flaky draws (they are
quoted in the README's Statistics section). REPS = 499 random sign flips per test: the
Monte Carlo p-value
``(1 + hits) / (1 + REPS)`` has exactly the permutation test's size at any REPS, so a small
REPS keeps validity and only costs a little power.
"""

from __future__ import annotations

import math
from random import Random

import pytest

from pytest_bsa.metrics import InstanceOutcomes
from pytest_bsa.stats import minimum_detectable_drop, paired_compare

N = 100  # instances in the compared group (one category's worth)
K = 5  # samples per instance
PAIRS = 200
REPS = 499
ALPHA = 0.05
FALSE_ALARM_CEILING = ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / PAIRS)  # ~0.081


def true_model(seed: int = 2024) -> tuple[list[float], list[float]]:
    """Per-instance true rates, spread over [0.2, 1.0] and skewed high (Beta(2, 1.2))."""
    rng = Random(seed)
    p_safe = [0.2 + 0.8 * rng.betavariate(2.0, 1.2) for _ in range(N)]
    p_think = [0.2 + 0.8 * rng.betavariate(2.0, 1.2) for _ in range(N)]
    return p_safe, p_think


def simulate_run(p_safe: list[float], p_think: list[float], rng: Random) -> list[InstanceOutcomes]:
    draw = rng.random
    return [
        InstanceOutcomes(
            id=f"inst-{i}",
            scenario="Risk Omission",
            categories=("Rumors",),
            subcategories=("Rumors-Other",),
            safe=tuple(draw() < ps for _ in range(K)),
            think=tuple(draw() < pt for _ in range(K)),
        )
        for i, (ps, pt) in enumerate(zip(p_safe, p_think, strict=True))
    ]


def detection_rate(metric: str, think_drop: float, seed: int) -> float:
    """Share of PAIRS simulated (baseline, current) pairs flagged as a significant drop."""
    p_safe, p_think = true_model()
    lowered = [max(p - think_drop, 0.0) for p in p_think]
    rng = Random(seed)
    hits = 0
    for j in range(PAIRS):
        baseline = simulate_run(p_safe, p_think, rng)
        current = simulate_run(p_safe, lowered, rng)
        result = paired_compare(
            current, baseline, metric, K, alpha=ALPHA, max_drop=0.0, reps=REPS, seed=j
        )
        hits += result.significant
    return hits / PAIRS


@pytest.mark.parametrize("metric", ["think_at_1", "think_at_k", "f_score"])
def test_no_change_false_alarm_rate_is_at_most_alpha(metric: str) -> None:
    rate = detection_rate(metric, 0.0, seed=1)
    print(f"\nfalse alarms, {metric}, no change, n={N}, k={K}: {rate:.3f}")
    assert rate <= FALSE_ALARM_CEILING


def test_ten_point_think_drop_is_detected_at_least_80_percent() -> None:
    rate = detection_rate("think_at_1", 0.10, seed=2)
    print(f"\npower, think_at_1, true drop 0.10, n={N}, k={K}: {rate:.3f}")
    assert rate >= 0.80


def test_minimum_detectable_drop_predicts_the_simulated_power() -> None:
    p_safe, p_think = true_model()
    observed = simulate_run(p_safe, p_think, Random(3))
    mdd = minimum_detectable_drop(observed, K, "think_at_1", alpha=ALPHA, power=0.8)
    assert mdd is not None
    assert mdd < 0.10  # consistent with the 10-point drop being detected >= 80% of the time
    rate = detection_rate("think_at_1", mdd, seed=4)
    print(f"\nMDD from one run: {mdd:.4f}; simulated power at that drop: {rate:.3f}")
    # The formula is a normal approximation from one run's variance: near 80%, not exact.
    assert 0.65 <= rate <= 0.95
