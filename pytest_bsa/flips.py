"""Instances whose all-k outcome changed between a baseline run and the current one (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pytest_bsa.metrics import InstanceOutcomes, rate_at_k


def by_id(outcomes: Sequence[InstanceOutcomes], which: str) -> dict[str, InstanceOutcomes]:
    """``outcomes`` by instance id; an id twice in the ``which`` run is an error."""
    table: dict[str, InstanceOutcomes] = {}
    for o in outcomes:
        if o.id in table:
            raise ValueError(f"{which} run has instance {o.id!r} more than once")
        table[o.id] = o
    return table


@dataclass(frozen=True)
class Flip:
    """One instance whose all-k outcome changed between baseline and current; ``category``
    names the category whose own Think@k this is when it differs from the instance's."""

    id: str
    dimension: Literal["safe", "think"]
    before: float
    after: float
    category: str | None = None


def flips(
    current: Sequence[InstanceOutcomes], baseline: Sequence[InstanceOutcomes], k: int
) -> list[Flip]:
    """Shared instances whose safe@k or think@k changed, biggest drop first.

    With exactly k judged samples these are 1 -> 0 (regression) and 0 -> 1 (fix) flips; with
    more than k judged the @k estimator can move by less. The instance's flip uses its single
    official label (as its scenario counts it); a two-label Cognitive Shortcut instance also
    gets a think flip per category whose own credit (as the category tables count it) changed
    otherwise. Order: ``after - before`` ascending, then safe before think, then id and
    category. Instances without a value in both runs are skipped.
    """
    base = by_id(baseline, "baseline")
    found = []
    for o in by_id(current, "current").values():
        b = base.get(o.id)
        if b is None:
            continue
        for dimension, now, then in (("safe", o.safe, b.safe), ("think", o.think, b.think)):
            after, before = rate_at_k(now, k), rate_at_k(then, k)
            if after is not None and before is not None and after != before:
                found.append(Flip(o.id, dimension, before, after))  # type: ignore[arg-type]
        single = (rate_at_k(b.think, k), rate_at_k(o.think, k))
        for category in o.categories:
            before = rate_at_k(b.for_group("category", category).think, k)
            after = rate_at_k(o.for_group("category", category).think, k)
            if None in (before, after) or before == after or (before, after) == single:
                continue
            found.append(Flip(o.id, "think", before, after, category))  # type: ignore[arg-type]
    order = {"safe": 0, "think": 1}
    return sorted(
        found, key=lambda f: (f.after - f.before, order[f.dimension], f.id, f.category or "")
    )
