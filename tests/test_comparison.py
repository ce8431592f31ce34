"""The baseline gate as one family: allocation, measurability, Holm, BH, and what it reports."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_bsa.comparison import MIN_PAIRS, detectable_drops, plan_tests
from pytest_bsa.comparison_gates import baseline_gates
from pytest_bsa.config import BaselineConfig, ConfigError, parse_file_config
from pytest_bsa.metrics import InstanceOutcomes

K = 5


def outcome(iid: str, safe: list[bool], think: list[bool], category: str = "Rumors"):
    return InstanceOutcomes(
        id=iid,
        scenario="Risk Omission",
        categories=(category,),
        subcategories=(f"{category}-Other",),
        safe=tuple(safe),
        think=tuple(think),
    )


def run(
    sizes: dict[str, int],
    rng: random.Random,
    p: float = 0.75,
    lower: dict[str, float] | None = None,
) -> list[InstanceOutcomes]:
    """Instances per category (ids stable across calls), samples drawn with rate p - lower."""
    out = []
    for category, n in sizes.items():
        q = p - (lower or {}).get(category, 0.0)
        for i in range(n):
            out.append(
                outcome(
                    f"{category}-{i}",
                    [rng.random() < q for _ in range(K)],
                    [rng.random() < q for _ in range(K)],
                    category,
                )
            )
    return out


def by_name(gates):
    return {g.name: g for g in gates}


def test_groups_of_four_or_fewer_never_pass() -> None:
    rng = random.Random(1)
    sizes = {"Rumors": 300, "Pornography": 3, "Ethics and Morality": 4}
    base, cur = run(sizes, rng), run(sizes, rng)
    gates = by_name(baseline_gates(cur, base, BaselineConfig(), K, "base.json"))
    for name in ("category::pornography::safe_at_1", "category::ethics-and-morality::think_at_1"):
        gate = gates[f"baseline::{name}"]
        assert gate.status == "not_measurable" and gate.blocking is False
        assert "not measurable (n = " in gate.sentence
        assert "no drop of any size can be detected" in gate.sentence
        assert "advisory: it went from" in gate.sentence
    assert gates["baseline::category::pornography::safe_at_1"].sentence.count("n = 3") == 1
    assert gates["baseline::overall::safe_at_1"].status == "passed"


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, MIN_PAIRS - 1),
    alpha=st.floats(0.01, 0.5),
    power_drop=st.floats(0.3, 1.0),
    drop=st.sampled_from([0.0, 0.3, 0.7]),
    seed=st.integers(0, 1000),
)
def test_no_configuration_lets_a_tiny_group_pass(
    n: int, alpha: float, power_drop: float, drop: float, seed: int
) -> None:
    rng = random.Random(seed)
    cfg = BaselineConfig(alpha=alpha, power_drop=power_drop, max_drop=0.0, levels=("category",))
    base = run({"Rumors": n}, rng, p=0.9)
    cur = run({"Rumors": n}, rng, p=0.9, lower={"Rumors": drop})
    for gate in baseline_gates(cur, base, cfg, K, "b"):
        assert gate.status == "not_measurable"
        assert gate.sentence.startswith(f"{gate.metric} of category 'Rumors' is not measurable")


def test_a_drop_confined_to_one_large_category_fails_that_gate_only() -> None:
    rng = random.Random(2)
    sizes = {"Rumors": 400, "Offense and Prejudice": 400}
    base = run(sizes, rng)
    cur = run(sizes, rng, lower={"Rumors": 0.25})
    gates = by_name(baseline_gates(cur, base, BaselineConfig(), K, "base.json"))
    rumors = gates["baseline::category::rumors::think_at_1"]
    assert rumors.status == "failed" and rumors.blocking
    assert rumors.p_adjusted is not None and rumors.p_adjusted <= 0.05
    assert rumors.sentence.endswith("a significant drop larger than the allowed 0.050")
    assert "Holm-adjusted p=" in rumors.sentence
    assert gates["baseline::category::offense-and-prejudice::think_at_1"].status == "passed"


def test_reported_fields_allocation_and_adjusted_p_values() -> None:
    rng = random.Random(3)
    sizes = {"Rumors": 200, "Offense and Prejudice": 200, "Pornography": 2}
    base, cur = run(sizes, rng), run(sizes, rng)
    cfg = BaselineConfig()
    tests = plan_tests(cur, base, cfg, K)
    # 2 overall, 2 scenario and 6 category tests: shares 1/2, 1/4, 1/4 of alpha by level.
    shares = {t.level: t.alpha for t in tests}
    assert shares["overall"] == pytest.approx(0.05 * 0.5 / 2)
    assert shares["scenario"] == pytest.approx(0.05 * 0.25 / 2)
    assert shares["category"] == pytest.approx(0.05 * 0.25 / 6)
    blocking = [t for t in tests if t.blocking]
    assert {t.group for t in tests if not t.blocking} == {"Pornography"}
    for t in blocking:
        assert t.comparison is not None and t.p_adjusted is not None
        assert t.p_adjusted >= t.comparison.p_value
        assert t.power is not None and t.power >= cfg.power
        assert t.detectable is not None and cfg.max_drop < t.detectable <= cfg.power_drop
    entry = baseline_gates(cur, base, cfg, K, "b")[0].as_dict()
    for key in ("p_value", "p_adjusted", "q_value", "alpha_share", "power", "detectable_drop"):
        assert isinstance(entry[key], float), key
    assert entry["n_shared"] == 402 and entry["blocking"] is True and entry["flagged"] is False


def test_benjamini_hochberg_flags_an_advisory_drop() -> None:
    rng = random.Random(4)
    sizes = {"Rumors": 300, "Pornography": 14}
    base = run(sizes, rng, p=0.95)
    cur = run(sizes, rng, p=0.95, lower={"Pornography": 0.9})
    gates = by_name(baseline_gates(cur, base, BaselineConfig(), K, "b"))
    small = gates["baseline::category::pornography::safe_at_1"]
    assert small.status == "not_measurable" and small.flagged
    assert "flagged by Benjamini-Hochberg (q=" in small.sentence


def test_one_run_detectable_drops_shrink_with_size_and_include_max_drop() -> None:
    rng = random.Random(5)
    outs = run({"Rumors": 400, "Ethics and Morality": 40, "Pornography": 1}, rng)
    drops = detectable_drops(outs, BaselineConfig(), K)
    assert set(drops) == {
        "overall",
        "scenario:Risk Omission",
        "category:Ethics and Morality",
        "category:Rumors",
        "category:Pornography",
    }
    assert drops["category:Pornography"] is None
    big, small = drops["category:Rumors"], drops["category:Ethics and Morality"]
    assert big is not None and 0.05 < big < (small or 1.0)
    assert drops["overall"] is not None and drops["overall"] < big  # a larger share of alpha
    lenient = detectable_drops(outs, BaselineConfig(max_drop=0.0), K)
    assert lenient["category:Rumors"] < big  # type: ignore[operator]


def test_power_drop_must_exceed_max_drop() -> None:
    with pytest.raises(ConfigError, match=r"power_drop 0.2 must be larger than max_drop 0.25"):
        parse_file_config({"baseline": {"max_drop": 0.25}}, "bsa.yaml")
    with pytest.raises(ConfigError, match=r"baseline.power"):
        parse_file_config({"baseline": {"power": 1.0}}, "bsa.yaml")
    cfg = parse_file_config({"baseline": {"power_drop": 0.3, "power": 0.9}}, "bsa.yaml")
    assert (cfg.baseline.power_drop, cfg.baseline.power) == (0.3, 0.9)


def test_f_score_comparisons_use_random_swaps_and_a_linearised_power() -> None:
    rng = random.Random(6)
    sizes = {"Rumors": 120}
    base = run(sizes, rng)
    cur = run(sizes, rng, lower={"Rumors": 0.3})
    cfg = BaselineConfig(metrics=("f_score",), levels=("overall",))
    (test,) = plan_tests(cur, base, cfg, K, seed=1)
    assert test.comparison is not None and test.variance is not None and test.variance > 0
    assert test.blocking and test.p_adjusted is not None and test.p_adjusted <= 0.05
    assert test.comparison.p_value >= 1 / 5000  # Monte Carlo: (1 + hits) / (1 + reps)
    (same,) = plan_tests(run(sizes, rng), base, cfg, K, seed=1)
    assert same.p_adjusted is not None and same.p_adjusted > 0.05
