"""Which instances a run evaluates: filters by scenario and category, a stratified subset of
``--bsa-limit`` instances, and deterministic shards (pure)."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from fractions import Fraction

from pytest_bsa.dataset import DatasetError, quote, suggest
from pytest_bsa.models import CATEGORIES, SCENARIOS, Instance

Stratum = tuple[str, str]  # (scenario, primary category)


def select(
    instances: Sequence[Instance],
    *,
    scenarios: Collection[str] = (),
    categories: Collection[str] = (),
    limit: int | None = None,
    seed: int = 0,
) -> list[Instance]:
    """Filter by scenario and category, then draw a stratified subset of at most ``limit``.

    An instance matches ``categories`` if any of its categories is listed. With ``limit``, the
    strata are scenario x primary category (a two-category instance belongs to both); every
    stratum keeps at least one instance when ``limit`` allows, the rest is allocated in
    proportion to stratum size (largest remainder), and the draw depends only on ``seed``.
    The result keeps the dataset order.
    """
    wanted_scenarios = _check_names(scenarios, SCENARIOS, "scenario")
    wanted_categories = _check_names(categories, CATEGORIES, "category")
    if limit is not None and limit <= 0:
        raise DatasetError(f"limit must be a positive number of instances, got {limit!r}")
    pool = [
        instance
        for instance in instances
        if (not wanted_scenarios or instance.scenario in wanted_scenarios)
        and (not wanted_categories or not wanted_categories.isdisjoint(instance.categories))
    ]
    if limit is None or limit >= len(pool):
        return pool
    chosen = _stratified_indices(pool, limit, random.Random(seed))
    return [pool[i] for i in sorted(chosen)]


def _check_names(names: Collection[str], valid: Sequence[str], kind: str) -> frozenset[str]:
    if isinstance(names, str):
        names = (names,)
    for name in names:
        if name not in valid:
            raise DatasetError(
                f"unknown {kind} {quote(name)}{suggest(name, valid)} "
                f"(expected one of: {', '.join(repr(v) for v in valid)})"
            )
    return frozenset(names)


def _stratified_indices(pool: Sequence[Instance], limit: int, rng: random.Random) -> set[int]:
    """Indices of exactly ``limit`` (< len(pool)) instances, stratified as :func:`select` says.

    A two-category instance counts as half an instance in each of its strata, so the stratum
    weights add up to the number of instances and the quotas to ``limit``.
    """
    members: dict[Stratum, list[int]] = {}
    share_of: list[dict[Stratum, Fraction]] = []
    for i, instance in enumerate(pool):
        part = Fraction(1, len(instance.categories))
        shares = {(instance.scenario, category): part for category in instance.categories}
        share_of.append(shares)
        for key in shares:
            members.setdefault(key, []).append(i)
    order = sorted(members)
    for key in order:
        rng.shuffle(members[key])
    weights = {key: sum(share_of[i][key] for i in members[key]) for key in order}
    caps = {key: len(members[key]) for key in order}
    quotas = _allocate(limit, order, weights, caps, floor=1 if limit >= len(order) else 0)

    chosen: set[int] = set()
    filled = dict.fromkeys(order, Fraction(0))  # chosen instance-equivalents per stratum
    left = dict(caps)  # members not chosen yet
    cursor = dict.fromkeys(order, 0)  # next position in each shuffled member list

    def take_next(key: Stratum) -> None:
        queue = members[key]
        while queue[cursor[key]] in chosen:
            cursor[key] += 1
        index = queue[cursor[key]]
        chosen.add(index)
        for other, part in share_of[index].items():
            filled[other] += part
            left[other] -= 1

    if limit >= len(order):  # one instance for every stratum, rarest first
        for key in sorted(order, key=lambda k: (caps[k], k)):
            if filled[key] == 0:
                take_next(key)
    while len(chosen) < limit:  # then always the stratum furthest below its quota
        candidates = [key for key in order if left[key] > 0]
        take_next(min(candidates, key=lambda k: (filled[k] - quotas[k], -weights[k], k)))
    return chosen


def _allocate(
    total: int,
    order: Sequence[Stratum],
    weights: dict[Stratum, Fraction],
    caps: dict[Stratum, int],
    floor: int,
) -> dict[Stratum, int]:
    """Largest-remainder allocation of ``total`` in proportion to ``weights``, capped by ``caps``.

    With ``floor`` 1, a stratum left at 0 takes one place from the stratum most above its exact
    share, so every stratum is represented while the rest stays proportional.
    """
    quotas = dict.fromkeys(order, 0)
    remaining = total
    while remaining > 0:
        open_keys = [key for key in order if quotas[key] < caps[key]]
        if not open_keys:
            break
        weight = sum(weights[key] for key in open_keys)
        exact = {key: weights[key] * remaining / weight for key in open_keys}
        give = {key: int(exact[key]) for key in open_keys}
        leftover = remaining - sum(give.values())
        by_remainder = sorted(open_keys, key=lambda k: (give[k] - exact[k], -weights[k], k))
        for key in by_remainder[:leftover]:
            give[key] += 1
        for key in open_keys:
            added = min(give[key], caps[key] - quotas[key])
            quotas[key] += added
            remaining -= added
    if floor:
        everyone = sum(weights.values())
        exact = {key: weights[key] * total / everyone for key in order}
        for key in sorted(order, key=lambda k: (-weights[k], k)):
            if quotas[key] == 0:
                donors = [k for k in order if quotas[k] > 1]
                donor = max(donors, key=lambda k: (quotas[k] - exact[k], weights[k], k))
                quotas[donor] -= 1
                quotas[key] = 1
    return quotas


def shard(instances: Sequence[Instance], index: int, total: int) -> list[Instance]:
    """Shard ``index`` (1-based) of ``total``: every ``total``-th instance of the selection.

    Deterministic for a selection, disjoint across shards, and together they cover it.
    """
    if not 1 <= index <= total:
        raise DatasetError(f"shard {index}/{total} is out of range (1 <= I <= N)")
    return list(instances[index - 1 :: total])
