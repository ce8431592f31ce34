"""Many tests, one verdict: weighted Holm for the blocking family, Benjamini-Hochberg for advice.

Pure standard library. A baseline gate runs one paired test per group and metric; with 26 of
them at alpha each, a rerun of an unchanged model fails somewhere far more often than alpha.
:func:`weighted_holm` keeps the chance of any false failure in the whole family at most alpha
under any dependence between the tests (Holm 1979; the weighted form is a closed test of
weighted Bonferroni tests). :func:`benjamini_hochberg` gives q-values for an advisory list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# The share of alpha each level of the baseline gate gets, before it is split equally among
# the level's tests (groups x metrics). Levels that are not configured give their share to the
# others (the weights are normalised over the tests that take part).
LEVEL_SHARES: Mapping[str, float] = {"overall": 0.5, "scenario": 0.25, "category": 0.25}


def level_weights(tests_per_level: Mapping[str, int]) -> dict[str, float]:
    """Each test's weight per level: the level's share over its number of tests (sum 1)."""
    present = {lvl: n for lvl, n in tests_per_level.items() if n > 0}
    total = sum(LEVEL_SHARES.get(lvl, 0.0) for lvl in present)
    if not total:
        return {lvl: 1.0 / sum(present.values()) for lvl in present}
    return {lvl: LEVEL_SHARES.get(lvl, 0.0) / total / n for lvl, n in present.items()}


def weighted_holm(p_values: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values with weights: reject test i at level alpha iff ``adj[i] <= alpha``.

    Tests are ordered by ``p / w``; the j-th in that order has ``p * (sum of the weights of it
    and every later test) / w``, made monotone (Holm 1979, weighted form). Equal weights give
    the ordinary Holm adjustment. Weights must be positive.
    """
    if len(p_values) != len(weights):
        raise ValueError("one weight per p-value")
    if any(w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    order = sorted(range(len(p_values)), key=lambda i: (p_values[i] / weights[i], i))
    remaining = sum(weights)
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for i in order:
        running = max(running, min(1.0, p_values[i] * remaining / weights[i]))
        adjusted[i] = running
        remaining -= weights[i]
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH q-values: flagging every test with ``q <= level`` keeps the expected share of false
    flags among the flagged at most ``level`` (independent or positively dependent tests)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    q = [1.0] * m
    running = 1.0
    for rank, i in zip(range(m, 0, -1), order, strict=True):
        running = min(running, p_values[i] * m / rank)
        q[i] = min(1.0, running)
    return q
