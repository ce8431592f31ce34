"""Pure tests of the agreement statistics: hand computations, invariants and a noisy judge."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from fractions import Fraction
from statistics import mean, pstdev

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_bsa.agreement import agreement, bootstrap_kappa, cohen_kappa, confusion_matrix
from pytest_bsa.raters import (
    expected_kappa_with_flips,
    fleiss_kappa,
    fleiss_kappa_from_table,
    flip_labels,
)

LABELS = ("a", "b", "c")
labels = st.sampled_from(LABELS)


@st.composite
def pairs(draw, min_size: int = 1, max_size: int = 60):
    n = draw(st.integers(min_size, max_size))
    return draw(st.lists(labels, min_size=n, max_size=n)), draw(
        st.lists(labels, min_size=n, max_size=n)
    )


# --------------------------------------------------------------------------- hand computations


def test_two_by_two_by_hand() -> None:
    # 50 pairs: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no.
    reference = ["yes"] * 25 + ["no"] * 25
    predicted = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    matrix = confusion_matrix(reference, predicted, ["yes", "no"])
    assert matrix.counts == ((20, 5), (10, 15))
    # Po = 35/50 = 0.7; reference shares .5/.5, predicted .6/.4; Pe = .5*.6 + .5*.4 = 0.5.
    assert matrix.percent_agreement == pytest.approx(0.7)
    assert matrix.kappa == pytest.approx((0.7 - 0.5) / (1 - 0.5))
    # Scott's pi: pooled shares (25+30)/100 = .55 and .45; Pe = .55**2 + .45**2 = 0.505.
    assert matrix.scott_pi == pytest.approx((0.7 - 0.505) / (1 - 0.505))
    yes, no = matrix.label_scores
    assert (yes.support, yes.predicted, yes.true_positives) == (25, 30, 20)
    assert yes.precision == pytest.approx(20 / 30)
    assert yes.recall == pytest.approx(20 / 25)
    assert yes.f1 == pytest.approx(2 * 20 / (25 + 30))
    assert no.precision == pytest.approx(15 / 20)
    assert no.recall == pytest.approx(15 / 25)


def test_fleiss_textbook_example_by_hand() -> None:
    """Fleiss (1971)-style example: 10 items, 14 raters each, 5 categories (the table used on
    Wikipedia's Fleiss' kappa page), computed step by step with exact fractions."""
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    n, items = 14, 10
    # Column totals 20, 28, 39, 21, 32 out of 140 ratings.
    p = [Fraction(t, n * items) for t in (20, 28, 39, 21, 32)]
    # P_i = (sum_j n_ij^2 - n) / (n (n - 1)); e.g. item 2: (4+36+16+4 - 14) / 182 = 46/182.
    squares = [196, 60, 70, 94, 74, 98, 58, 46, 66, 66]
    per_item = [Fraction(s - n, n * (n - 1)) for s in squares]
    assert per_item[1] == Fraction(46, 182)
    p_bar = sum(per_item) / items  # = 688 / 1820
    assert p_bar == Fraction(688, 1820)
    p_e = sum(x * x for x in p)  # = 4170 / 19600
    assert p_e == Fraction(4170, 19600)
    expected = (p_bar - p_e) / (1 - p_e)
    result = fleiss_kappa_from_table(table)
    assert result.kappa == pytest.approx(float(expected), abs=1e-12)
    assert round(result.kappa, 3) == 0.210
    assert result.observed == pytest.approx(float(p_bar))
    assert result.expected == pytest.approx(float(p_e))
    assert (result.items, result.dropped, result.ratings) == (10, 0, 140)


def test_fleiss_with_missing_ratings_by_hand() -> None:
    ratings = [
        ["s", "s", "u"],  # 3 ratings: P = (2*1 + 0) / (3*2) = 1/3
        ["s", None, "s"],  # 2 ratings: P = 2 / 2 = 1
        ["u", "u", "u"],  # 3 ratings: P = 6 / 6 = 1
        ["u", None, None],  # 1 rating: dropped
        [None, None, None],  # none: dropped
    ]
    # Kept ratings: s = 2 + 2 = 4, u = 1 + 3 = 4 of 8 -> Pe = 1/2; P-bar = (1/3 + 1 + 1) / 3.
    p_bar = (Fraction(1, 3) + 1 + 1) / 3
    expected = (p_bar - Fraction(1, 2)) / (1 - Fraction(1, 2))
    result = fleiss_kappa(ratings, ["s", "u"])
    assert result.kappa == pytest.approx(float(expected))
    assert (result.items, result.dropped, result.ratings) == (3, 2, 8)


def test_undefined_statistics_are_none() -> None:
    same = confusion_matrix(["a", "a"], ["a", "a"])
    assert same.kappa is None and same.percent_agreement == 1.0
    empty = confusion_matrix([], [], ["a", "b"])
    assert empty.kappa is None and empty.percent_agreement is None
    never = confusion_matrix(["a", "b"], ["a", "a"], ["a", "b"]).label_scores[1]
    assert never.precision is None and never.recall == 0.0
    assert fleiss_kappa([["a", None]]).kappa is None
    assert bootstrap_kappa(["a"], ["a"]) is None


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="2 reference labels but 1"):
        confusion_matrix(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="'z' is not one of"):
        confusion_matrix(["a"], ["z"], ["a", "b"])
    with pytest.raises(ValueError, match="missing"):
        confusion_matrix(["a"], [None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="reps"):
        bootstrap_kappa(["a", "b"], ["a", "b"], reps=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_kappa(["a", "b"], ["a", "b"], level=1.0)
    with pytest.raises(ValueError, match="at least two labels"):
        expected_kappa_with_flips(["a", "a"], 0.2)
    with pytest.raises(ValueError, match="share"):
        flip_labels(["a", "b"], 1.5, ["a", "b"])
    with pytest.raises(ValueError, match="counts"):
        fleiss_kappa_from_table([[1, 2], [1]])


# --------------------------------------------------------------------------- invariants


@given(st.lists(labels, min_size=2, max_size=60).filter(lambda xs: len(set(xs)) > 1))
def test_kappa_is_one_on_identical_labels(xs) -> None:
    assert cohen_kappa(xs, xs) == 1.0
    assert confusion_matrix(xs, xs).scott_pi == pytest.approx(1.0)
    assert fleiss_kappa([[x, x, x] for x in xs]).kappa == pytest.approx(1.0)


@given(pairs())
def test_cohen_is_symmetric_and_bounded(pair) -> None:
    a, b = pair
    k = cohen_kappa(a, b, LABELS)
    assert k == cohen_kappa(b, a, LABELS)
    if k is not None:
        assert -1.0 <= k <= 1.0
    m = confusion_matrix(a, b, LABELS)
    assert 0.0 <= m.percent_agreement <= 1.0
    # Recall weighted by support is the percent agreement; supports and predictions sum to n.
    scores = m.label_scores
    assert sum(s.support for s in scores) == sum(s.predicted for s in scores) == m.n
    assert sum(s.true_positives for s in scores) / m.n == pytest.approx(m.percent_agreement)


@given(pairs(), st.permutations(LABELS))
def test_kappa_does_not_depend_on_label_order(pair, order) -> None:
    a, b = pair
    assert cohen_kappa(a, b, order) == cohen_kappa(a, b, LABELS)


@given(pairs(min_size=2))
def test_fleiss_with_two_raters_is_scott_pi_and_never_above_cohen(pair) -> None:
    a, b = pair
    matrix = confusion_matrix(a, b, LABELS)
    fleiss = fleiss_kappa(list(zip(a, b, strict=True)), LABELS).kappa
    assert fleiss == matrix.scott_pi  # exactly: both come from the same fractions
    if fleiss is not None and matrix.kappa is not None:
        assert fleiss <= matrix.kappa + 1e-12


@given(st.lists(labels, min_size=2, max_size=60), st.randoms(use_true_random=False))
def test_fleiss_with_two_raters_equals_cohen_when_marginals_match(xs, rng) -> None:
    ys = list(xs)
    rng.shuffle(ys)  # same label counts, so both raters have the same marginal shares
    cohen = cohen_kappa(xs, ys, LABELS)
    fleiss = fleiss_kappa(list(zip(xs, ys, strict=True)), LABELS).kappa
    if cohen is None:
        assert fleiss is None
    else:
        assert fleiss == pytest.approx(cohen, abs=1e-12)


@given(
    st.lists(st.lists(st.one_of(st.none(), labels), min_size=3, max_size=3), min_size=1),
    st.randoms(use_true_random=False),
)
def test_fleiss_ignores_rater_and_item_order_and_lone_ratings(items, rng) -> None:
    base = fleiss_kappa(items, LABELS)
    shuffled = [rng.sample(item, len(item)) for item in items]
    rng.shuffle(shuffled)
    again = fleiss_kappa([*shuffled, ["a", None, None]], LABELS)
    assert again.kappa == base.kappa
    assert again.dropped == base.dropped + 1
    if base.kappa is not None:
        assert -1.0 <= base.kappa <= 1.0


@settings(max_examples=30)
@given(pairs(min_size=5, max_size=40), st.integers(0, 10_000))
def test_bootstrap_is_seeded_and_contains_the_estimate(pair, seed) -> None:
    a, b = pair
    first = bootstrap_kappa(a, b, LABELS, reps=200, seed=seed)
    assert first == bootstrap_kappa(a, b, LABELS, reps=200, seed=seed)
    point = cohen_kappa(a, b, LABELS)
    if point is None:
        assert first is None
    else:
        assert first is not None
        assert first.low <= point <= first.high
        assert 0 < first.used <= 200


def test_bootstrap_of_perfect_agreement_is_a_point() -> None:
    xs = ["a", "b"] * 30
    interval = bootstrap_kappa(xs, xs, reps=300)
    assert (interval.low, interval.high) == (1.0, 1.0)


def test_cluster_bootstrap_draws_whole_clusters() -> None:
    # Two clusters that each agree perfectly but disagree with each other's labels: any replicate
    # drawing one cluster twice has a single label on both sides (undefined kappa) and is left out.
    reference = ["a"] * 5 + ["b"] * 5
    predicted = ["a"] * 5 + ["b"] * 5
    clusters = ["x"] * 5 + ["y"] * 5
    interval = bootstrap_kappa(reference, predicted, reps=400, seed=3, clusters=clusters)
    assert interval.used < 400  # about half the replicates draw one cluster twice
    assert (interval.low, interval.high) == (1.0, 1.0)
    with pytest.raises(ValueError, match="cluster keys"):
        bootstrap_kappa(reference, predicted, clusters=["x"])


# --------------------------------------------------------------------------- missing and bundle


def test_agreement_counts_missing_predictions_apart() -> None:
    reference = ["Safe", "Safe", "Unsafe", "Unsafe", "Unsafe", "Safe"]
    predicted = ["Safe", None, "Unsafe", "Safe", None, "Safe"]
    result = agreement(reference, predicted, ["Safe", "Unsafe"], reps=100)
    assert (result.n, result.missing, result.total) == (4, 2, 6)
    assert result.missing_rate == pytest.approx(2 / 6)
    assert result.percent_agreement == pytest.approx(3 / 4)
    assert result.worst_case_agreement == pytest.approx(3 / 6)
    assert result.matrix.counts == ((2, 0), (1, 1))
    data = json.loads(json.dumps(result.as_dict()))
    assert data["confusion"]["labels"] == ["Safe", "Unsafe"]
    assert data["kappa_interval"]["reps"] == 100
    assert [row["label"] for row in data["labels"]] == ["Safe", "Unsafe"]
    with pytest.raises(ValueError, match="reference label is missing"):
        agreement([None], ["Safe"])  # type: ignore[list-item]


def test_agreement_with_no_rated_pair() -> None:
    result = agreement(["Safe", "Unsafe"], [None, None], ["Safe", "Unsafe"])
    assert result.n == 0 and result.kappa is None and result.interval is None
    assert result.missing_rate == 1.0 and result.worst_case_agreement == 0.0


# --------------------------------------------------------------------------- a noisy judge


def test_expected_kappa_formula() -> None:
    assert expected_kappa_with_flips(["s", "u"], 0.2) == pytest.approx(0.6)  # 1 - 2p
    assert expected_kappa_with_flips({"s": 3, "u": 1}, 0.0) == pytest.approx(1.0)
    # Unbalanced binary by hand: pi = .75, p = .2: q = .75*.8 + .25*.2 = .65,
    # Pe = .75*.65 + .25*.35 = .575, kappa = (.8 - .575) / .425.
    assert expected_kappa_with_flips({"s": 3, "u": 1}, 0.2) == pytest.approx(0.225 / 0.425)
    # Three labels, uniform: q_j = 1/3, Pe = 1/3, kappa = (1 - p - 1/3) / (2/3).
    assert expected_kappa_with_flips(["a", "b", "c"], 0.3) == pytest.approx(0.55)
    # A label set wider than the labels seen changes m.
    assert expected_kappa_with_flips(["a", "b"], 0.3, ["a", "b", "c"]) != pytest.approx(
        expected_kappa_with_flips(["a", "b"], 0.3)
    )


def test_flip_labels_changes_an_exact_share() -> None:
    reference = ["a", "b", "c"] * 40
    flipped = flip_labels(reference, 0.2, LABELS, seed=5)
    changed = sum(x != y for x, y in zip(reference, flipped, strict=True))
    assert changed == 24
    assert flipped == flip_labels(reference, 0.2, LABELS, seed=5)
    assert flipped != flip_labels(reference, 0.2, LABELS, seed=6)


@pytest.mark.parametrize(
    ("prevalence", "label_set"),
    [(0.5, ("Safe", "Unsafe")), (0.35, ("Safe", "Unsafe")), (None, LABELS)],
)
def test_a_judge_flipping_20_percent_measures_the_expected_kappa(prevalence, label_set) -> None:
    """The acceptance check of #12 on the statistics alone: a judge changing exactly 20% of 126
    labels measures Cohen's kappa within 0.05 of the expected value, for every one of 200 seeds."""
    rng = random.Random(1)
    if prevalence is None:
        reference = [rng.choice(label_set) for _ in range(126)]
    else:
        reference = ["Safe" if rng.random() < prevalence else "Unsafe" for _ in range(126)]
    expected = expected_kappa_with_flips(reference, 0.2, label_set)
    measured = [
        cohen_kappa(reference, flip_labels(reference, 0.2, label_set, seed=s), label_set)
        for s in range(200)
    ]
    assert max(abs(k - expected) for k in measured) < 0.05
    assert mean(measured) == pytest.approx(expected, abs=0.01)


def test_independent_coin_flips_are_noisier_than_an_exact_share() -> None:
    """Why a scripted flipping judge should flip an exact share: with an independent 20% coin per
    label the measured kappa on 126 cases spreads several times wider."""
    rng = random.Random(2)
    reference = [rng.choice(("Safe", "Unsafe")) for _ in range(126)]
    exact = [
        cohen_kappa(reference, flip_labels(reference, 0.2, ("Safe", "Unsafe"), seed=s))
        for s in range(300)
    ]
    coins = []
    for s in range(300):
        r = random.Random(s)
        flipped = [
            ({"Safe": "Unsafe", "Unsafe": "Safe"}[x] if r.random() < 0.2 else x) for x in reference
        ]
        coins.append(cohen_kappa(reference, flipped))
    assert pstdev(coins) > 3 * pstdev(exact)


def test_the_module_needs_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import pytest_bsa.agreement; "
        "print(sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] in {'pytest', 'pydantic', 'litellm', 'aiohttp', 'httpx'} "
        "or (m.startswith('pytest_bsa.') and m != 'pytest_bsa.agreement')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
