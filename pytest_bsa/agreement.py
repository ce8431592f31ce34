"""Agreement between raters: confusion matrix, precision and recall, Cohen's and Fleiss' kappa.

Pure standard library (no pytest, no project imports), like ``stats.py``. Conventions:

- Two raters: ``reference`` holds the expected (human) labels and gives the rows of a
  :class:`ConfusionMatrix`; ``predicted`` holds the rater under test (the judge), the columns.
- A statistic that is undefined is ``None``, never a made-up number: kappa when the chance
  agreement is 1 (both raters used one and the same label throughout, or no pair at all),
  precision of a label never predicted, recall of a label never expected.
- A missing rating is ``None``. :func:`agreement` counts pairs whose predicted label is missing
  (a judge that refused or never gave a valid label) apart and computes everything else on the
  rated pairs.

Many raters (Fleiss' kappa of a panel) and a noisy judge's expected kappa are in
:mod:`pytest_bsa.raters`.
- Kappa values are computed from integer counts (exact fractions), so identical labels give
  exactly 1.0 and equal tables give equal floats.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from random import Random
from typing import Any

Label = Hashable


# --------------------------------------------------------------------------- two raters


@dataclass(frozen=True)
class LabelScore:
    """One label's precision and recall, treating the reference as the truth."""

    label: Label
    support: int  # pairs whose reference label is this label
    predicted: int  # pairs whose predicted label is this label
    true_positives: int

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.support if self.support else None

    @property
    def f1(self) -> float | None:
        total = self.support + self.predicted
        return 2 * self.true_positives / total if total else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": str(self.label),
            "support": self.support,
            "predicted": self.predicted,
            "true_positives": self.true_positives,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True)
class ConfusionMatrix:
    """``counts[i][j]``: pairs with reference ``labels[i]`` and predicted ``labels[j]``."""

    labels: tuple[Label, ...]
    counts: tuple[tuple[int, ...], ...]

    @property
    def n(self) -> int:
        return sum(map(sum, self.counts))

    @property
    def agreed(self) -> int:
        return sum(self.counts[i][i] for i in range(len(self.labels)))

    @property
    def row_totals(self) -> tuple[int, ...]:
        return tuple(map(sum, self.counts))

    @property
    def column_totals(self) -> tuple[int, ...]:
        return tuple(map(sum, zip(*self.counts, strict=True))) if self.counts else ()

    def count(self, reference: Label, predicted: Label) -> int:
        return self.counts[self.labels.index(reference)][self.labels.index(predicted)]

    @property
    def percent_agreement(self) -> float | None:
        """Share of pairs with the same label (observed agreement)."""
        return self.agreed / self.n if self.n else None

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa: (Po - Pe) / (1 - Pe), Pe from each rater's own label shares."""
        return _cohen(self.n, self.agreed, self.row_totals, self.column_totals)

    @property
    def scott_pi(self) -> float | None:
        """Scott's pi: like Cohen's kappa, with Pe from the two raters' pooled label shares.

        It equals Fleiss' kappa for two raters and never exceeds Cohen's kappa.
        """
        n = self.n
        if not n:
            return None
        pooled = [r + c for r, c in zip(self.row_totals, self.column_totals, strict=True)]
        observed = Fraction(self.agreed, n)
        expected = sum(Fraction(t, 2 * n) ** 2 for t in pooled)
        return kappa_from(observed, expected)

    @property
    def label_scores(self) -> tuple[LabelScore, ...]:
        rows, columns = self.row_totals, self.column_totals
        return tuple(
            LabelScore(label, rows[i], columns[i], self.counts[i][i])
            for i, label in enumerate(self.labels)
        )

    def as_dict(self) -> dict[str, Any]:
        """Rows are reference labels, columns predicted labels, in ``labels`` order."""
        return {
            "labels": [str(label) for label in self.labels],
            "counts": [list(row) for row in self.counts],
            "n": self.n,
        }


def kappa_from(observed: Fraction, expected: Fraction) -> float | None:
    """Kappa from observed and chance agreement; None when chance agreement is 1."""
    return None if expected == 1 else float((observed - expected) / (1 - expected))


def _cohen(n: int, agreed: int, rows: Sequence[int], columns: Sequence[int]) -> float | None:
    """(n*agreed - sum(r*c)) / (n**2 - sum(r*c)): Cohen's kappa on integer counts."""
    chance = sum(r * c for r, c in zip(rows, columns, strict=True))
    denominator = n * n - chance
    return (n * agreed - chance) / denominator if denominator else None


def label_order(
    values: Sequence[Label | None], labels: Sequence[Label] | None
) -> tuple[Label, ...]:
    """The labels in ``labels``' order (checked: no repeats, every value one of them), else in
    order of first appearance."""
    if labels is None:
        return tuple(dict.fromkeys(v for v in values if v is not None))
    order = tuple(labels)
    if len(set(order)) != len(order):
        raise ValueError(f"labels repeat a label: {list(order)!r}")
    known = set(order)
    for value in values:
        if value is not None and value not in known:
            raise ValueError(f"label {value!r} is not one of {list(order)!r}")
    return order


def confusion_matrix(
    reference: Sequence[Label], predicted: Sequence[Label], labels: Sequence[Label] | None = None
) -> ConfusionMatrix:
    """Count label pairs; ``labels`` fixes the order (default: first appearance, reference
    first) and must hold every label that occurs. Neither sequence may hold ``None``."""
    if len(reference) != len(predicted):
        raise ValueError(f"{len(reference)} reference labels but {len(predicted)} predicted")
    if any(v is None for v in (*reference, *predicted)):
        raise ValueError("a missing (None) label cannot enter a confusion matrix")
    order = label_order([*reference, *predicted], labels)
    position = {label: i for i, label in enumerate(order)}
    counts = [[0] * len(order) for _ in order]
    for ref, pred in zip(reference, predicted, strict=True):
        counts[position[ref]][position[pred]] += 1
    return ConfusionMatrix(order, tuple(map(tuple, counts)))


def cohen_kappa(
    reference: Sequence[Label], predicted: Sequence[Label], labels: Sequence[Label] | None = None
) -> float | None:
    """Cohen's kappa of two raters' labels (``None`` when undefined)."""
    return confusion_matrix(reference, predicted, labels).kappa


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval; ``used`` counts the replicates where it was defined."""

    low: float
    high: float
    level: float
    reps: int
    used: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "reps": self.reps,
            "used": self.used,
            "seed": self.seed,
        }


def _percentiles(values: list[float], level: float) -> tuple[float, float]:
    """Two-sided percentile interval, linear interpolation between order statistics."""
    values = sorted(values)
    tail = (1 - level) / 2

    def at(q: float) -> float:
        pos = q * (len(values) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)

    return at(tail), at(1 - tail)


def bootstrap_kappa(
    reference: Sequence[Label],
    predicted: Sequence[Label],
    labels: Sequence[Label] | None = None,
    *,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    clusters: Sequence[Hashable] | None = None,
) -> Interval | None:
    """Seeded percentile bootstrap interval for Cohen's kappa, resampling cases.

    Each replicate draws as many cases as there are, with replacement, and recomputes kappa;
    replicates where kappa is undefined (every drawn pair one and the same label) are left out
    and ``used`` says how many remained. With ``clusters`` (one key per case, e.g. the prompt
    several cases share) whole clusters are drawn instead, as many as there are. The interval
    is widened to contain the point estimate. ``None`` when the point estimate is undefined.
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    matrix = confusion_matrix(reference, predicted, labels)
    point = matrix.kappa
    if point is None:
        return None
    m = len(matrix.labels)
    position = {label: i for i, label in enumerate(matrix.labels)}
    codes = [position[r] * m + position[p] for r, p in zip(reference, predicted, strict=True)]
    if clusters is None:
        units: list[list[int]] = [[code] for code in codes]
    else:
        if len(clusters) != len(codes):
            raise ValueError(f"{len(clusters)} cluster keys for {len(codes)} cases")
        grouped: dict[Hashable, list[int]] = {}
        for key, code in zip(clusters, codes, strict=True):
            grouped.setdefault(key, []).append(code)
        units = list(grouped.values())
    cells = [[0] * (m * m) for _ in units]
    for cell, unit in zip(cells, units, strict=True):
        for code in unit:
            cell[code] += 1
    rng = Random(seed)
    population = range(len(units))
    draws: list[float] = []
    for _ in range(reps):
        total = [0] * (m * m)
        for index in rng.choices(population, k=len(units)):
            for code, count in enumerate(cells[index]):
                total[code] += count
        n = sum(total)
        agreed = sum(total[i * m + i] for i in range(m))
        rows = [sum(total[i * m : (i + 1) * m]) for i in range(m)]
        columns = [sum(total[j::m]) for j in range(m)]
        value = _cohen(n, agreed, rows, columns)
        if value is not None:
            draws.append(value)
    low, high = _percentiles(draws, level) if draws else (point, point)
    return Interval(min(low, point), max(high, point), level, reps, len(draws), seed)


# --------------------------------------------------------------------------- the bundle


@dataclass(frozen=True)
class Agreement:
    """Everything judge-vs-reference agreement reports for one group of cases."""

    matrix: ConfusionMatrix
    missing: int  # pairs whose predicted label is None (refused, unjudged, failed)
    interval: Interval | None

    @property
    def n(self) -> int:
        """Pairs with both labels (the ones every statistic below is computed on)."""
        return self.matrix.n

    @property
    def total(self) -> int:
        return self.n + self.missing

    @property
    def missing_rate(self) -> float | None:
        return self.missing / self.total if self.total else None

    @property
    def kappa(self) -> float | None:
        return self.matrix.kappa

    @property
    def percent_agreement(self) -> float | None:
        return self.matrix.percent_agreement

    @property
    def worst_case_agreement(self) -> float | None:
        """Percent agreement counting every missing prediction as a disagreement."""
        return self.matrix.agreed / self.total if self.total else None

    @property
    def label_scores(self) -> tuple[LabelScore, ...]:
        return self.matrix.label_scores

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "missing": self.missing,
            "missing_rate": self.missing_rate,
            "kappa": self.kappa,
            "kappa_interval": self.interval.as_dict() if self.interval else None,
            "percent_agreement": self.percent_agreement,
            "worst_case_agreement": self.worst_case_agreement,
            "labels": [score.as_dict() for score in self.label_scores],
            "confusion": self.matrix.as_dict(),
        }


def agreement(
    reference: Sequence[Label],
    predicted: Sequence[Label | None],
    labels: Sequence[Label] | None = None,
    *,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    clusters: Sequence[Hashable] | None = None,
) -> Agreement:
    """Confusion matrix, per-label scores, Cohen's kappa and its bootstrap interval.

    Pairs whose predicted label is ``None`` are counted in ``missing`` and left out of every
    statistic (``worst_case_agreement`` counts them as disagreements). ``reps=0`` skips the
    bootstrap.
    """
    if len(reference) != len(predicted):
        raise ValueError(f"{len(reference)} reference labels but {len(predicted)} predicted")
    if any(v is None for v in reference):
        raise ValueError("a reference label is missing (None); leave such cases out")
    keep = [i for i, p in enumerate(predicted) if p is not None]
    ref = [reference[i] for i in keep]
    pred = [predicted[i] for i in keep]
    order = label_order([*reference, *predicted], labels)
    matrix = confusion_matrix(ref, pred, order)
    interval = None
    if reps and matrix.n:
        kept_clusters = None if clusters is None else [clusters[i] for i in keep]
        interval = bootstrap_kappa(
            ref, pred, order, reps=reps, level=level, seed=seed, clusters=kept_clusters
        )
    return Agreement(matrix, len(reference) - len(keep), interval)
