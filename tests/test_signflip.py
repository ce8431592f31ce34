"""The sign-flip p-value: exact where affordable, saddlepoint beyond, always a probability."""

from __future__ import annotations

import random
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_bsa import signflip
from pytest_bsa.signflip import min_attainable_p, signflip_p_value


def brute_force(values: list[float]) -> float:
    """P(sum(s_i x_i) <= sum(x_i)) by enumerating every sign pattern."""
    observed = sum(values)
    hits = sum(
        sum(s * v for s, v in zip(signs, values, strict=True)) <= observed + 1e-9
        for signs in product((1, -1), repeat=len(values))
    )
    return hits / 2 ** len(values)


def differences(n: int, k: int, max_drop: float, rng: random.Random, drop: float = 0.0):
    """Shifted paired differences of two runs of n instances with k samples each."""
    out = []
    for _ in range(n):
        p = rng.uniform(0.3, 1.0)
        cur = sum(rng.random() < max(p - drop, 0) for _ in range(k)) / k
        base = sum(rng.random() < p for _ in range(k)) / k
        out.append(cur - base + max_drop)
    return out


@pytest.mark.parametrize("k,max_drop", [(1, 0.0), (3, 0.0), (5, 0.05), (4, 0.03)])
def test_exact_path_equals_enumeration(k: int, max_drop: float) -> None:
    rng = random.Random(k)
    for n in (1, 2, 5, 9, 14):
        values = differences(n, k, max_drop, rng, drop=0.1)
        assert signflip_p_value(values) == pytest.approx(brute_force(values), abs=1e-12)


def test_known_values_and_edges() -> None:
    # three of 12 instances each lost half a point: exactly 1/8 of the patterns are as low
    assert signflip_p_value([-0.5] * 3 + [0.0] * 9) == pytest.approx(1 / 8)
    assert signflip_p_value([]) == 1.0
    assert signflip_p_value([0.0, 0.0]) == 1.0  # nothing changed: zeros carry no sign
    assert signflip_p_value([0.2, 0.4, 0.05]) == 1.0  # everything rose
    assert signflip_p_value([-0.2] * 20) == pytest.approx(2**-20)  # everything fell
    assert signflip_p_value([-0.2] * 200) == pytest.approx(2**-200)
    assert min_attainable_p(3) == 0.125
    assert min_attainable_p(4) == 1 / 16


@pytest.mark.parametrize("k,max_drop", [(5, 0.05), (3, 0.0), (1, 0.05), (5, 0.0)])
def test_saddlepoint_agrees_with_the_exact_distribution(
    k: int, max_drop: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced onto the saddlepoint, p-values in the tail that matters stay within 5%."""
    rng = random.Random(10 + k)
    cases = [
        differences(n, k, max_drop, rng, drop=rng.choice([0.0, 0.05, 0.1]))
        for n in (60, 100, 200)
        for _ in range(8)
    ]
    exact = [signflip_p_value(v) for v in cases]  # below the cost cap: convolved exactly
    monkeypatch.setattr(signflip, "EXACT_COST", 0)
    approx = [signflip_p_value(v) for v in cases]
    checked = 0
    for e, a in zip(exact, approx, strict=True):
        if 1e-5 < e < 0.2:
            checked += 1
            assert a == pytest.approx(e, rel=0.05)
    assert checked >= 5


def test_values_without_a_common_lattice_use_the_plain_saddlepoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(3)
    values = [rng.random() - 0.6 for _ in range(18)]
    exact = brute_force(values)
    monkeypatch.setattr(signflip, "EXACT_COST", 0)
    assert signflip_p_value(values) == pytest.approx(exact, rel=0.03)


def test_large_groups_are_fast_and_deterministic() -> None:
    values = differences(2000, 5, 0.05, random.Random(4), drop=0.08)
    p = signflip_p_value(values)
    assert 0 < p < 0.01
    assert signflip_p_value(list(reversed(values))) == p


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([-1.0, -0.6, -0.2, 0.0, 0.2, 0.6, 1.0]), max_size=60))
def test_p_value_is_a_probability_and_monotone_in_the_observed_drop(values: list[float]) -> None:
    p = signflip_p_value(values)
    assert 0.0 < p <= 1.0
    lower = [v - 0.4 if i == 0 else v for i, v in enumerate(values)]
    if values and values[0] > -0.6:  # the first difference gets worse: p cannot rise
        assert signflip_p_value(lower) <= p + 1e-9
