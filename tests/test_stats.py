"""Pure tests of intervals, paired comparisons, flips and minimum detectable drops."""

from __future__ import annotations

import random
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_bsa.intervals import (
    bootstrap_intervals,
    breakdown_with_intervals,
    group_intervals,
    wilson_interval,
    with_intervals,
)
from pytest_bsa.metrics import InstanceOutcomes, group_metrics
from pytest_bsa.numeric import chi2_sf, t_quantile
from pytest_bsa.stats import (
    Flip,
    detectable_drop,
    flips,
    minimum_detectable_drop,
    paired_compare,
    power_at,
)


def inst(ident: str, safe, think, cats=("Rumors",)) -> InstanceOutcomes:
    return InstanceOutcomes(
        id=ident,
        scenario="Risk Omission",
        categories=tuple(cats),
        subcategories=tuple(f"{c}-Other" for c in cats),
        safe=tuple(safe),
        think=tuple(think),
    )


def run(n: int, k: int, seed: int, p_safe: float = 0.7, p_think: float = 0.5):
    rng = random.Random(seed)
    return [
        inst(
            f"i{i}",
            [rng.random() < p_safe for _ in range(k)],
            [rng.random() < p_think for _ in range(k)],
        )
        for i in range(n)
    ]


def test_intervals_contain_point_and_narrow_with_n():
    small, large = run(40, 3, 1), run(640, 3, 2)
    widths = []
    for outs in (small, large):
        m = group_metrics(outs, 3)
        iv = bootstrap_intervals(outs, 3, reps=400, seed=3)
        assert set(iv) == {"safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score"}
        for metric, (low, high) in iv.items():
            assert 0.0 <= low <= getattr(m, metric) <= high <= 1.0
        widths.append(iv["think_at_1"][1] - iv["think_at_1"][0])
    # 16x the instances: about a quarter of the width.
    assert widths[1] < widths[0] / 2.5


def test_intervals_are_reproducible_and_seeded():
    outs = run(60, 2, 4)
    assert bootstrap_intervals(outs, 2, reps=200, seed=7) == bootstrap_intervals(
        outs, 2, reps=200, seed=7
    )
    assert bootstrap_intervals(outs, 2, reps=200, seed=7) != bootstrap_intervals(
        outs, 2, reps=200, seed=8
    )


def test_interval_widens_with_level():
    outs = run(80, 2, 5)
    narrow = bootstrap_intervals(outs, 2, reps=500, level=0.5)["safe_at_1"]
    wide = bootstrap_intervals(outs, 2, reps=500, level=0.99)["safe_at_1"]
    assert wide[0] <= narrow[0] and narrow[1] <= wide[1]


def test_degenerate_intervals():
    all_safe = [inst(f"s{i}", [True] * 3, [True] * 3) for i in range(30)]
    iv = bootstrap_intervals(all_safe, 3, reps=100)
    assert iv["safe_at_1"] == (1.0, 1.0) and iv["think_at_k"] == (1.0, 1.0)
    assert iv["f_score"] == (1.0, 1.0)
    single = [inst("one", [True, False], [False, False])]
    assert bootstrap_intervals(single, 2, reps=50) == {
        "safe_at_1": (0.5, 0.5),
        "safe_at_k": (0.0, 0.0),
        "think_at_1": (0.0, 0.0),
        "think_at_k": (0.0, 0.0),
        "f_score": (0.0, 0.0),
    }
    hidden = [inst(f"h{i}", [True, False], [None, None]) for i in range(5)]
    assert set(bootstrap_intervals(hidden, 2, reps=50)) == {"safe_at_1", "safe_at_k"}
    assert bootstrap_intervals([], 2) == {}
    with pytest.raises(ValueError, match="level"):
        bootstrap_intervals(hidden, 2, level=1.0)


def test_partial_entrants_use_their_own_denominator():
    # Half the instances have no judged reasoning: think intervals must be about the others.
    outs = [inst(f"a{i}", [True, True], [True, True]) for i in range(20)]
    outs += [inst(f"b{i}", [False, False], [None, None]) for i in range(20)]
    iv = bootstrap_intervals(outs, 2, reps=300)
    assert iv["think_at_1"] == (1.0, 1.0)
    assert iv["safe_at_1"][0] < 0.5 < iv["safe_at_1"][1]


def test_with_intervals_fills_the_group():
    outs = run(50, 2, 6)
    m = with_intervals(group_metrics(outs, 2), outs, 2)
    intervals, reach = group_intervals(outs, 2)
    assert m.intervals == intervals and m.lower_reach == reach
    assert m.as_dict()["intervals"]["safe_at_1"] == list(m.intervals["safe_at_1"])
    boot = with_intervals(group_metrics(outs, 2), outs, 2, reps=200, method="bootstrap")
    assert boot.intervals == bootstrap_intervals(outs, 2, reps=200)


def test_breakdown_with_intervals_fills_every_group_with_two_or_more_entrants():
    two = inst("two", [True, True], [True, False], ("Rumors", "Ethics and Morality"))
    outs = [*run(30, 2, 7), two]
    b = breakdown_with_intervals(outs, 2)
    assert b.overall.intervals == group_intervals(outs, 2)[0]
    assert list(b.categories) == ["Ethics and Morality", "Rumors"]  # models.CATEGORIES order
    assert b.categories["Ethics and Morality"].intervals == {}  # one instance: no interval
    groups = b.groups()
    assert set(groups) == {
        "overall",
        "scenario:Risk Omission",
        "category:Rumors",
        "category:Ethics and Morality",
        "subcategory:Rumors-Other",
        "subcategory:Ethics and Morality-Other",
    }
    assert all(g["intervals"] for k, g in groups.items() if "Ethics" not in k)


def test_t_quantiles_match_tables():
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(0.975, 2) == pytest.approx(4.303, abs=1e-3)
    assert t_quantile(0.975, 9) == pytest.approx(2.262, abs=1e-3)
    assert t_quantile(0.975, 29) == pytest.approx(2.045, abs=1e-3)
    assert t_quantile(0.95, 10) == pytest.approx(1.812, abs=1e-3)
    assert t_quantile(0.975, 1000) == pytest.approx(1.960, abs=1e-3)


def test_chi_square_tail_matches_tables():
    assert chi2_sf(3.841, 1) == pytest.approx(0.05, abs=1e-4)
    assert chi2_sf(18.307, 10) == pytest.approx(0.05, abs=1e-4)
    assert chi2_sf(2.706, 1) == pytest.approx(0.10, abs=1e-4)
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(60.0, 39) == pytest.approx(0.0171, abs=5e-4)


def test_wilson_interval_of_a_perfect_small_group_stays_open():
    # Three instances, every one of 5 samples safe: no certainty, a wide interval below 1.
    low, high = wilson_interval([1.0, 1.0, 1.0], cap=15)
    assert high == 1.0 and 0.40 < low < 0.50
    z = t_quantile(0.975, 2)
    assert low == pytest.approx(15 / (15 + z * z))
    assert wilson_interval([0.6], cap=5) is None
    # More instances with the same values: narrower.
    assert wilson_interval([1.0] * 30, cap=150)[0] > 0.9  # type: ignore[index]


def test_wilson_interval_uses_the_observed_spread_of_instance_values():
    spread = [0.0, 1.0] * 10  # instances all-or-nothing: 20 trials' worth, not 100
    even = [0.4, 0.6] * 10  # every instance near the mean: more like 100 samples
    wide, narrow = wilson_interval(spread, cap=100), wilson_interval(even, cap=100)
    assert wide is not None and narrow is not None
    assert wide[1] - wide[0] > 2 * (narrow[1] - narrow[0])
    for low, high in (wide, narrow):
        assert 0 <= low < 0.5 < high <= 1


def test_group_intervals_reach_and_f_score():
    outs = [inst(f"p{i}", [True] * 5, [True] * 5) for i in range(3)]
    intervals, reach = group_intervals(outs, 5)
    assert set(intervals) == {"safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score"}
    assert reach["safe_at_1"] == pytest.approx(intervals["safe_at_1"][0])  # a perfect group
    assert reach["safe_at_k"] < reach["safe_at_1"]  # @k: one trial per instance, not five
    assert intervals["f_score"][1] == 1.0 and intervals["f_score"][0] < intervals["safe_at_1"][0]
    mixed = run(40, 5, 3)
    iv, _ = group_intervals(mixed, 5)
    m = group_metrics(mixed, 5)
    for metric, (low, high) in iv.items():
        assert 0.0 <= low <= getattr(m, metric) <= high <= 1.0


def test_paired_compare_detects_a_clear_drop_and_is_antisymmetric():
    good = [inst(f"i{i}", [True] * 4, [True, True, True, i % 2 == 0]) for i in range(40)]
    bad = [inst(f"i{i}", [True] * 4, [False, False, i % 3 == 0, False]) for i in range(40)]
    drop = paired_compare(bad, good, "think_at_1", 4, reps=500)
    assert drop.n_shared == 40 and drop.significant and drop.p_value < 0.01
    assert drop.delta == pytest.approx(drop.current - drop.baseline) and drop.delta < 0
    assert drop.ci[0] <= drop.delta <= drop.ci[1] < 0
    rise = paired_compare(good, bad, "think_at_1", 4, reps=500)
    assert not rise.significant and rise.p_value > 0.9
    assert rise.delta == pytest.approx(-drop.delta)
    assert (rise.baseline, rise.current) == (drop.current, drop.baseline)
    f = paired_compare(bad, good, "f_score", 4, reps=500)
    assert f.significant and f.delta < 0


def test_paired_compare_same_run_is_not_significant():
    outs = run(60, 3, 8)
    for metric in ("safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score"):
        same = paired_compare(outs, outs, metric, 3, reps=300)
        assert same.delta == 0.0 and not same.significant and same.p_value == 1.0


def test_paired_compare_pairs_by_id_and_respects_max_drop():
    base = [inst(f"i{i}", [True, True], [True, True]) for i in range(12)]
    cur = [inst(f"i{i}", [True, True], [True, i % 4 != 0]) for i in range(12)]
    cur.append(inst("only-current", [False, False], [False, False]))
    shuffled = list(reversed(cur))
    a = paired_compare(cur, base, "think_at_1", 2, reps=5000)
    b = paired_compare(shuffled, base, "think_at_1", 2, reps=5000)
    assert a.n_shared == 12 and a.delta == pytest.approx(-1 / 8)
    assert a.p_value == b.p_value  # 2**12 <= reps: exact enumeration, order-free
    # three of 12 instances each lost half a point: exact one-sided p = 1/8
    assert a.p_value == pytest.approx(1 / 8)
    tolerant = paired_compare(cur, base, "think_at_1", 2, max_drop=0.2, reps=5000)
    assert tolerant.max_drop == 0.2 and not tolerant.significant


def test_paired_compare_rejects_bad_input():
    outs = run(5, 2, 9)
    with pytest.raises(ValueError, match="metric must be one of"):
        paired_compare(outs, outs, "accuracy", 2)
    with pytest.raises(ValueError, match="no instance"):
        paired_compare(outs, run(5, 1, 9), "safe_at_k", 2)
    with pytest.raises(ValueError, match="more than once"):
        paired_compare(outs + outs[:1], outs, "safe_at_1", 2)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_paired_compare_p_value_is_a_probability(seed):
    a, b = run(15, 2, seed), run(15, 2, seed + 1)
    c = paired_compare(a, b, "safe_at_1", 2, reps=200, seed=seed)
    assert 0.0 < c.p_value <= 1.0
    assert c.ci[0] <= c.delta <= c.ci[1]


def test_flips_are_found_and_sorted_worst_first():
    base = [
        inst("a", [True, True], [True, True]),
        inst("b", [False, True], [True, True]),
        inst("c", [True, True], [False, True]),
        inst("d", [True, True], [True, True]),
        inst("gone", [True, True], [True, True]),
    ]
    cur = [
        inst("a", [True, False], [True, True]),  # safe 1 -> 0
        inst("b", [True, True], [True, False]),  # safe 0 -> 1, think 1 -> 0
        inst("c", [True, True], [True, True]),  # think 0 -> 1
        inst("d", [None, True], [True, True]),  # too few judged: skipped
        inst("new", [False, False], [False, False]),
    ]
    assert flips(cur, base, 2) == [
        Flip("a", "safe", 1.0, 0.0),
        Flip("b", "think", 1.0, 0.0),
        Flip("b", "safe", 0.0, 1.0),
        Flip("c", "think", 0.0, 1.0),
    ]
    assert flips(base, base, 2) == []


def test_minimum_detectable_drop_shrinks_with_n():
    values = [minimum_detectable_drop(run(n, 5, 10), 5) for n in (25, 100, 400)]
    assert all(v is not None for v in values)
    assert values[0] > values[1] > values[2] > 0
    assert values[1] / values[2] == pytest.approx(2.0, rel=0.25)
    assert minimum_detectable_drop(run(1, 5, 11), 5) is None
    at_k = minimum_detectable_drop(run(100, 5, 12), 5, "safe_at_k")
    assert at_k is not None and at_k > 0


def test_minimum_detectable_drop_formula_and_validation():
    # Every instance 2 of 4 correct: p(1-p)/(m-1) = 1/12 per instance, twice for two runs.
    outs = [inst(f"i{i}", [True] * 4, [True, True, False, False]) for i in range(50)]
    got = minimum_detectable_drop(outs, 4)
    assert got == pytest.approx(detectable_drop(2 / 12, 50, alpha=0.05))
    assert power_at(got, 2 / 12, 50, alpha=0.05, max_drop=0.0) == pytest.approx(0.8, abs=1e-6)
    # All 4 answers safe everywhere: no observed noise, but one run cannot prove there is none.
    # Jeffreys smoothing keeps the floor p(1-p)/m with p = 4.5/5.
    floor = 0.9 * 0.1 / 4
    assert minimum_detectable_drop(outs, 4, "safe_at_1") == pytest.approx(
        detectable_drop(2 * floor, 50, alpha=0.05)
    )
    with pytest.raises(ValueError, match="metric"):
        minimum_detectable_drop(outs, 4, "f_score")
    with pytest.raises(ValueError, match="alpha"):
        minimum_detectable_drop(outs, 4, alpha=0)


def test_detectable_drop_includes_max_drop_and_the_alpha_share():
    v, n = 0.08, 100
    plain = detectable_drop(v, n, alpha=0.05)
    assert plain is not None
    # The textbook normal formula is close but slightly optimistic (the null also spreads).
    z = NormalDist().inv_cdf(0.95) + NormalDist().inv_cdf(0.8)
    assert z * (v / n) ** 0.5 < plain < 1.1 * z * (v / n) ** 0.5
    allowed = detectable_drop(v, n, alpha=0.05, max_drop=0.05)
    assert allowed == pytest.approx(plain + 0.05, abs=0.01)
    share = detectable_drop(v, n, alpha=0.05 / 26, max_drop=0.05)
    assert share is not None and share > allowed
    # Too few pairs: 2**-n above alpha, nothing is detectable; power is 0.
    assert detectable_drop(v, 4, alpha=0.05) is None
    assert power_at(1.0, v, 4, alpha=0.05, max_drop=0.0) == 0.0
    assert power_at(0.05, v, n, alpha=0.05, max_drop=0.05) == pytest.approx(0.05)  # = alpha
