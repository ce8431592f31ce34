"""Agreement beyond one judge against one reference: Fleiss' kappa of a panel of raters, and
the kappa a judge that flips labels at random would reach (pure standard library).

Conventions as in :mod:`pytest_bsa.agreement`: an undefined statistic is ``None``, a missing
rating is ``None`` (:func:`fleiss_kappa` handles missing ratings as its docstring defines),
kappa values come from exact integer counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from random import Random
from typing import Any

from pytest_bsa.agreement import Label, kappa_from, label_order

# --------------------------------------------------------------------------- many raters


@dataclass(frozen=True)
class FleissKappa:
    """Fleiss' kappa of a panel, with the parts it is made of."""

    kappa: float | None
    labels: tuple[Label, ...]
    items: int  # items that entered (at least two ratings)
    dropped: int  # items left out with fewer than two ratings
    ratings: int  # ratings on the items that entered
    observed: float | None  # P-bar: mean pairwise agreement within an item
    expected: float | None  # P-e: sum of squared pooled label shares
    proportions: tuple[float, ...]  # pooled share of each label, in ``labels`` order

    def as_dict(self) -> dict[str, Any]:
        return {
            "kappa": self.kappa,
            "items": self.items,
            "dropped": self.dropped,
            "ratings": self.ratings,
            "observed": self.observed,
            "expected": self.expected,
            "proportions": {str(k): v for k, v in zip(self.labels, self.proportions, strict=True)},
        }


def fleiss_table(
    ratings: Sequence[Sequence[Label | None]], labels: Sequence[Label] | None = None
) -> tuple[tuple[Label, ...], list[list[int]]]:
    """``(labels, table)`` with ``table[i][j]`` = raters who gave item i label j (None skipped)."""
    order = label_order([v for item in ratings for v in item], labels)
    position = {label: j for j, label in enumerate(order)}
    table = []
    for item in ratings:
        row = [0] * len(order)
        for value in item:
            if value is not None:
                row[position[value]] += 1
        table.append(row)
    return order, table


def fleiss_kappa_from_table(
    table: Sequence[Sequence[int]], labels: Sequence[Label] | None = None
) -> FleissKappa:
    """Fleiss' kappa from an items x labels table of rating counts.

    Missing ratings: item i enters with its own number of ratings ``n_i``; an item with fewer
    than two ratings has no pair to agree or disagree and is dropped (counted in ``dropped``).
    ``P_i = sum_j n_ij (n_ij - 1) / (n_i (n_i - 1))``, ``P-bar`` is the unweighted mean of
    ``P_i`` over the items that entered, ``p_j = sum_i n_ij / sum_i n_i`` over those items and
    ``P-e = sum_j p_j**2``; ``kappa = (P-bar - P-e) / (1 - P-e)``. With every ``n_i`` equal this
    is Fleiss (1971) exactly; with two raters rating every item it is Scott's pi.
    """
    width = len(table[0]) if table else len(labels or ())
    order = tuple(labels) if labels is not None else tuple(range(width))
    if len(order) != width or any(len(row) != width for row in table):
        raise ValueError(f"every row of the table needs {len(order)} counts (one per label)")
    if any(count < 0 for row in table for count in row):
        raise ValueError("rating counts cannot be negative")
    kept = [row for row in table if sum(row) >= 2]
    ratings = sum(map(sum, kept))
    if not kept:
        return FleissKappa(None, order, 0, len(table), 0, None, None, (0.0,) * width)
    per_item = [Fraction(sum(c * (c - 1) for c in row), sum(row) * (sum(row) - 1)) for row in kept]
    observed = sum(per_item, Fraction(0)) / len(kept)
    shares = [Fraction(sum(row[j] for row in kept), ratings) for j in range(width)]
    expected = sum(share**2 for share in shares)
    return FleissKappa(
        kappa=kappa_from(observed, expected),
        labels=order,
        items=len(kept),
        dropped=len(table) - len(kept),
        ratings=ratings,
        observed=float(observed),
        expected=float(expected),
        proportions=tuple(map(float, shares)),
    )


def fleiss_kappa(
    ratings: Sequence[Sequence[Label | None]], labels: Sequence[Label] | None = None
) -> FleissKappa:
    """Fleiss' kappa of a panel: one sequence of raters' labels per item, ``None`` = missing.

    Items may have different numbers of ratings; see :func:`fleiss_kappa_from_table` for how
    missing ratings are handled.
    """
    order, table = fleiss_table(ratings, labels)
    return fleiss_kappa_from_table(table, order)


# --------------------------------------------------------------------------- a noisy judge


def _shares(
    reference: Sequence[Label] | Mapping[Label, float], labels: Sequence[Label] | None
) -> dict[Label, float]:
    if isinstance(reference, Mapping):
        total = sum(reference.values())
        if total <= 0 or any(v < 0 for v in reference.values()):
            raise ValueError("label shares must be non-negative and not all zero")
        shares = {label: value / total for label, value in reference.items()}
    else:
        if not reference:
            raise ValueError("no reference labels")
        shares = {}
        for value in reference:
            shares[value] = shares.get(value, 0.0) + 1 / len(reference)
    order = label_order(list(shares), labels)
    return {label: shares.get(label, 0.0) for label in order}


def expected_kappa_with_flips(
    reference: Sequence[Label] | Mapping[Label, float],
    share: float,
    labels: Sequence[Label] | None = None,
) -> float | None:
    """Cohen's kappa expected between true labels and a judge that changes ``share`` of them.

    The judge replaces a share ``p`` of the labels with a different label drawn uniformly
    from the other ``m - 1`` labels (for binary labels: it flips them). With true label shares
    ``pi_j`` (from ``reference``: a sequence of labels, or a mapping label -> share):
    ``Po = 1 - p``, the judge's label shares are ``q_j = pi_j (1 - p) + (1 - pi_j) p / (m - 1)``,
    ``Pe = sum_j pi_j q_j`` and ``kappa = (Po - Pe) / (1 - Pe)``. For balanced binary labels
    this is ``1 - 2p``. ``labels`` (default: those in ``reference``) fixes ``m``.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    shares = _shares(reference, labels)
    m = len(shares)
    if m < 2:
        raise ValueError("a judge can only change labels with at least two labels to choose")
    observed = 1 - share
    expected = sum(pi * (pi * (1 - share) + (1 - pi) * share / (m - 1)) for pi in shares.values())
    return None if expected >= 1 else (observed - expected) / (1 - expected)


def flip_labels(
    reference: Sequence[Label], share: float, labels: Sequence[Label], *, seed: int = 0
) -> list[Label]:
    """``reference`` with exactly ``round(share * n)`` labels changed, as a noisy judge would.

    The positions are drawn without replacement and each changed label becomes another label
    drawn uniformly, both from ``Random(seed)``. An exact share (rather than an independent
    coin per label) keeps the observed agreement at exactly ``1 - share``.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    order = label_order(list(reference), labels)
    if len(order) < 2:
        raise ValueError("a judge can only change labels with at least two labels to choose")
    rng = Random(seed)
    out = list(reference)
    for index in rng.sample(range(len(out)), round(share * len(out))):
        out[index] = rng.choice([label for label in order if label != out[index]])
    return out
