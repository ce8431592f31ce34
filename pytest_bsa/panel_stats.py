"""What a judge panel and repeated asks measured, from the votes a run saved (pure).

:func:`panel_summary` reads every sample's :attr:`~pytest_bsa.models.Judgement.votes` and
returns, per group (overall, scenario, category):

- Fleiss' kappa of the members' labels (each member's label is the majority of its own asks):
  answer safety (Safe/Unsafe), think (reasoning label counted as correct or not) and, per
  scenario, the scenario's reasoning labels; an item is one asked verdict of one sample, and a
  member without a label for it is a missing rating (:func:`pytest_bsa.raters.fleiss_kappa`);
- the verdicts the panel split on;
- each member's calls, tokens and cost, and how often it agreed with the panel's majority;
- with repeated asks (``--bsa-judge-samples``): per verdict, the share of asks that gave the
  modal label, and the verdicts that were not stable (not every ask gave the same label).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from pytest_bsa.models import (
    SAFETY_LABELS,
    THINK_CORRECT_LABELS,
    THINK_LABELS,
    InstanceResult,
    SafetyVerdict,
    ThinkVerdict,
    Vote,
)
from pytest_bsa.panel import majority
from pytest_bsa.raters import fleiss_kappa

UNSTABLE_LIMIT = 200  # unstable verdicts listed in a report (all are counted)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GroupAgreement(_Model):
    """Agreement of the panel's members within one group."""

    samples: int = 0
    safety_items: int = 0
    think_items: int = 0
    safety_kappa: float | None = None  # Fleiss' kappa, Safe/Unsafe
    think_kappa: float | None = None  # Fleiss' kappa, reasoning correct or not
    reasoning_kappa: float | None = None  # Fleiss' kappa on the scenario's labels (scenarios)
    split_safety: int = 0  # verdicts the panel split on
    split_think: int = 0


class MemberStats(_Model):
    """One member judge: what it cost and how often it sided with the panel."""

    judge: str
    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # None when some call's price is unknown
    safety_votes: int = 0  # verdicts it labelled (majority of its asks)
    safety_with_majority: int = 0  # ... that equal the panel's label
    think_votes: int = 0
    think_with_majority: int = 0


class UnstableVerdict(_Model):
    """A verdict whose repeated asks did not all give the same label."""

    instance: str
    sample: int
    kind: str  # "safety" or "reasoning"
    judge: str
    labels: tuple[str, ...]  # per ask; "[refused]" / "[unjudged]" for an ask without a label
    agreement: float  # share of asks that gave the modal label


class ConsistencyGroup(_Model):
    verdicts: int = 0
    unstable: int = 0
    mean_agreement: float | None = None


class Consistency(_Model):
    """Repeated asks of each verdict (``--bsa-judge-samples``)."""

    samples: int
    verdicts: int = 0
    unstable: int = 0
    mean_agreement: float | None = None
    groups: dict[str, ConsistencyGroup] = Field(default_factory=dict)
    unstable_verdicts: tuple[UnstableVerdict, ...] = ()  # the first UNSTABLE_LIMIT


class PanelSummary(_Model):
    """A judge panel's (or repeated asks') agreement, splits and per-member cost."""

    members: tuple[str, ...]
    samples: int = 1  # asks per verdict and member
    groups: dict[str, GroupAgreement] = Field(default_factory=dict)
    member_stats: tuple[MemberStats, ...] = ()
    consistency: Consistency | None = None


@dataclass
class _Item:
    kind: str  # "safety" | "reasoning"
    scenario: str
    groups: tuple[str, ...]
    ratings: list[str | None]  # one per member
    panel: str | None  # the panel's label
    split: bool


@dataclass
class _Collect:
    items: list[_Item] = field(default_factory=list)
    samples: Counter[str] = field(default_factory=Counter)


def _groups_of(result: InstanceResult) -> tuple[str, ...]:
    inst = result.instance
    return ("overall", f"scenario:{inst.scenario}", *(f"category:{c}" for c in inst.categories))


def _by_member(votes: Sequence[Vote], members: Sequence[str]) -> dict[str, list[Vote]]:
    grouped: dict[str, list[Vote]] = {m: [] for m in members}
    for vote in votes:
        grouped.setdefault(vote.judge, []).append(vote)
    return grouped


def _label(vote: Vote, kind: str) -> tuple[str | None, str]:
    if kind == "safety":
        return vote.safety, vote.safety_outcome
    return vote.think, vote.think_outcome


def members_of(results: Iterable[InstanceResult]) -> tuple[str, ...]:
    """The member judges in the order their votes appear."""
    seen: dict[str, None] = {}
    for result in results:
        for sample in result.samples:
            if sample.judgement is not None:
                for vote in sample.judgement.votes:
                    seen.setdefault(vote.judge, None)
    return tuple(seen)


def panel_summary(results: Sequence[InstanceResult]) -> PanelSummary | None:
    """The panel's agreement and costs, or None when no sample carries votes (one judge)."""
    members = members_of(results)
    if not members:
        return None
    samples = 1 + max(
        (v.replicate for r in results for s in r.samples if s.judgement for v in s.judgement.votes),
        default=0,
    )
    collect = _Collect()
    stats = {m: Counter[str]() for m in members}
    costs: dict[str, float | None] = dict.fromkeys(members, 0.0)
    unstable: list[UnstableVerdict] = []
    consistency: dict[str, list[float]] = {}
    unstable_counts: Counter[str] = Counter()
    for result in results:
        groups = _groups_of(result)
        for sample in result.samples:
            judgement = sample.judgement
            if judgement is None or not judgement.votes or sample.error:
                continue
            for group in groups:
                collect.samples[group] += 1
            by_member = _by_member(judgement.votes, members)
            for member, votes in by_member.items():
                tally = stats[member]
                for vote in votes:
                    tally["calls"] += vote.attempts
                    tally["cached"] += vote.cached
                    tally["prompt_tokens"] += vote.usage.prompt_tokens
                    tally["completion_tokens"] += vote.usage.completion_tokens
                    if vote.attempts and costs[member] is not None:
                        cost = vote.usage.cost_usd
                        costs[member] = None if cost is None else (costs[member] or 0.0) + cost
            for kind, panel_label, open_ in (
                ("safety", judgement.safety_label, judgement.safety is SafetyVerdict.SPLIT),
                ("reasoning", judgement.think_label, judgement.think is ThinkVerdict.SPLIT),
            ):
                ratings: list[str | None] = []
                asked = False
                for member, votes in by_member.items():
                    asks = [_label(v, kind) for v in votes]
                    if any(outcome != "not_asked" for _, outcome in asks):
                        asked = True
                    ballot = majority(asks)
                    ratings.append(ballot.label)
                    tally = stats[member]
                    if ballot.label is not None:
                        name = "safety" if kind == "safety" else "think"
                        tally[f"{name}_votes"] += 1
                        tally[f"{name}_with_majority"] += ballot.label == panel_label
                    if samples > 1 and any(o != "not_asked" for _, o in asks):
                        agreement, stable = _stability(asks)
                        for group in groups:
                            consistency.setdefault(group, []).append(agreement)
                            unstable_counts[group] += not stable
                        if not stable:
                            unstable.append(
                                UnstableVerdict(
                                    instance=result.instance.id,
                                    sample=sample.index,
                                    kind=kind,
                                    judge=member,
                                    labels=tuple(lab or f"[{o}]" for lab, o in asks),
                                    agreement=agreement,
                                )
                            )
                if asked:
                    collect.items.append(
                        _Item(kind, result.instance.scenario, groups, ratings, panel_label, open_)
                    )
    return PanelSummary(
        members=members,
        samples=samples,
        groups=_agreement_by_group(collect),
        member_stats=tuple(
            MemberStats(judge=m, cost_usd=costs[m], **dict(stats[m])) for m in members
        ),
        consistency=_consistency(samples, consistency, unstable_counts, unstable),
    )


def _stability(asks: Sequence[tuple[str | None, str]]) -> tuple[float, bool]:
    """(share of asks giving the modal label, every ask gave the same label)."""
    labels = [label for label, _ in asks]
    top = Counter(labels).most_common(1)[0][1]
    return top / len(labels), len(set(labels)) == 1


def _agreement_by_group(collect: _Collect) -> dict[str, GroupAgreement]:
    order: list[str] = list(collect.samples)
    out: dict[str, GroupAgreement] = {}
    for group in order:
        items = [i for i in collect.items if group in i.groups]
        safety = [i.ratings for i in items if i.kind == "safety"]
        reasoning = [i for i in items if i.kind == "reasoning"]
        think = [
            [None if r is None else r in THINK_CORRECT_LABELS for r in i.ratings] for i in reasoning
        ]
        reasoning_kappa = None
        if group.startswith("scenario:"):
            scenario = group.split(":", 1)[1]
            rated = [i.ratings for i in reasoning]
            reasoning_kappa = fleiss_kappa(rated, THINK_LABELS[scenario]).kappa if rated else None
        out[group] = GroupAgreement(
            samples=collect.samples[group],
            safety_items=len(safety),
            think_items=len(think),
            safety_kappa=fleiss_kappa(safety, SAFETY_LABELS).kappa if safety else None,
            think_kappa=fleiss_kappa(think, (True, False)).kappa if think else None,
            reasoning_kappa=reasoning_kappa,
            split_safety=sum(i.split for i in items if i.kind == "safety"),
            split_think=sum(i.split for i in reasoning),
        )
    return out


def _consistency(
    samples: int,
    values: dict[str, list[float]],
    unstable_counts: Counter[str],
    unstable: list[UnstableVerdict],
) -> Consistency | None:
    if samples < 2:
        return None
    groups = {
        group: ConsistencyGroup(
            verdicts=len(shares),
            unstable=unstable_counts[group],
            mean_agreement=sum(shares) / len(shares) if shares else None,
        )
        for group, shares in values.items()
    }
    overall = groups.get("overall", ConsistencyGroup())
    return Consistency(
        samples=samples,
        verdicts=overall.verdicts,
        unstable=overall.unstable,
        mean_agreement=overall.mean_agreement,
        groups=groups,
        unstable_verdicts=tuple(unstable[:UNSTABLE_LIMIT]),
    )
