"""Weighted Holm and Benjamini-Hochberg: textbook values and the family-wise guarantee."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_bsa.multiplicity import (
    LEVEL_SHARES,
    benjamini_hochberg,
    level_weights,
    weighted_holm,
)


def test_equal_weights_give_the_ordinary_holm_adjustment() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, 0.06 (monotone)
    assert weighted_holm(p, [1, 1, 1, 1]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_weights_give_a_heavy_test_more_of_alpha() -> None:
    heavy, light = weighted_holm([0.03, 0.03], [0.9, 0.1])
    assert heavy == pytest.approx(0.03 / 0.9)  # rejected at 0.05 ...
    assert light == pytest.approx(0.03 / 0.9)  # ... which passes all of alpha on: rejected too
    # The same small p on the light test alone is not enough: its share was 0.005.
    assert weighted_holm([0.3, 0.03], [0.9, 0.1]) == pytest.approx([0.3, 0.3])
    assert weighted_holm([1.0], [0.2]) == [1.0]
    with pytest.raises(ValueError, match="positive"):
        weighted_holm([0.1], [0.0])


def test_level_weights_share_alpha_by_level_then_equally() -> None:
    weights = level_weights({"overall": 2, "scenario": 6, "category": 18})
    assert weights["overall"] == pytest.approx(LEVEL_SHARES["overall"] / 2)
    assert weights["scenario"] == pytest.approx(0.25 / 6)
    assert weights["category"] == pytest.approx(0.25 / 18)
    assert 2 * weights["overall"] + 6 * weights["scenario"] + 18 * weights["category"] == (
        pytest.approx(1.0)
    )
    # A level that is not configured gives its share to the others.
    only = level_weights({"overall": 2, "category": 18})
    assert 2 * only["overall"] + 18 * only["category"] == pytest.approx(1.0)
    assert only["overall"] == pytest.approx(0.5 / 0.75 / 2)


def test_benjamini_hochberg_q_values() -> None:
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([]) == []


@given(st.integers(0, 10_000))
def test_weighted_holm_never_rejects_more_than_bonferroni_shares_allow_under_the_null(
    seed: int,
) -> None:
    """Under the complete null the smallest adjusted p is at least min(p_i / w_i) * sum(w)."""
    rng = random.Random(seed)
    p = [rng.random() for _ in range(8)]
    w = [rng.uniform(0.1, 1.0) for _ in range(8)]
    adjusted = weighted_holm(p, w)
    assert min(adjusted) == pytest.approx(
        min(1.0, min(pi / wi for pi, wi in zip(p, w, strict=True)) * sum(w))
    )
    assert all(a >= pi - 1e-12 for a, pi in zip(adjusted, p, strict=True))


def test_family_wise_error_of_weighted_holm_is_at_most_alpha() -> None:
    rng = random.Random(1)
    weights = [0.25, 0.25] + [0.25 / 6] * 6 + [0.25 / 18] * 18
    reps = 4000
    false = sum(
        min(weighted_holm([rng.random() for _ in weights], weights)) <= 0.05 for _ in range(reps)
    )
    assert false / reps <= 0.05 + 2 * (0.05 * 0.95 / reps) ** 0.5
