"""Counts from saved samples: calls, cache hits, tokens and cost; every outcome; the models
served. Works the same for one process, pytest-xdist workers and merged shards (pure)."""

from __future__ import annotations

from collections import Counter

from pytest_bsa.models import InstanceResult, Judgement
from pytest_bsa.report import OutcomeCounts, RoleTotals, Totals


def totals_from_results(results: list[InstanceResult] | tuple[InstanceResult, ...]) -> Totals:
    """Calls, cache hits, tokens and cost, counted from the saved samples themselves.

    Works the same for one process, pytest-xdist workers and merged shards. Retries are not
    visible in results; the engine's counters add them where it ran in this process.
    """
    model = {"calls": 0, "cached": 0, "prompt": 0, "completion": 0, "reasoning": 0}
    judge = dict(model)
    cost = {"model": 0.0, "judge": 0.0}
    known = {"model": True, "judge": True}
    for result in results:
        for sample in result.samples:
            for role, part in (("model", sample.completion), ("judge", sample.judgement)):
                if part is None:
                    continue
                counts = model if role == "model" else judge
                if isinstance(part, Judgement):  # up to two verdicts, each a call or a hit
                    counts["calls"] += part.attempts
                    counts["cached"] += part.cached_verdicts
                else:
                    counts["cached" if part.cached else "calls"] += 1
                usage = part.usage
                counts["prompt"] += usage.prompt_tokens
                counts["completion"] += usage.completion_tokens
                counts["reasoning"] += usage.reasoning_tokens
                if part.cached:
                    continue
                if usage.cost_usd is None:
                    known[role] = False
                else:
                    cost[role] += usage.cost_usd

    def role_totals(role: str, counts: dict[str, int]) -> RoleTotals:
        return RoleTotals(
            calls=counts["calls"],
            cached=counts["cached"],
            prompt_tokens=counts["prompt"],
            completion_tokens=counts["completion"],
            reasoning_tokens=counts["reasoning"],
            cost_usd=cost[role] if known[role] else None,
        )

    return Totals(model=role_totals("model", model), judge=role_totals("judge", judge))


def outcome_counts(results: list[InstanceResult] | tuple[InstanceResult, ...]) -> OutcomeCounts:
    """Every outcome of every sample, and the responses by how their reasoning was found."""
    safety: Counter[str] = Counter()
    think: Counter[str] = Counter()
    split: Counter[str] = Counter()
    reasoning: Counter[str] = Counter()
    finish: Counter[str] = Counter()
    samples = 0
    for result in results:
        for sample in result.samples:
            samples += 1
            judgement = sample.judgement
            if sample.error or judgement is None:
                safety["error" if sample.error else "unjudged"] += 1
                think["error" if sample.error else "unjudged"] += 1
            else:
                safety[judgement.safety.value] += 1
                think[judgement.think.value] += 1
            completion = sample.completion
            if completion is not None:
                split[completion.split] += 1
                reasoning[completion.reasoning_state.value] += 1
                finish[completion.finish_reason or "unknown"] += 1
    return OutcomeCounts(
        samples=samples,
        safety=dict(sorted(safety.items())),
        think=dict(sorted(think.items())),
        split=dict(sorted(split.items())),
        reasoning=dict(sorted(reasoning.items())),
        finish_reasons=dict(sorted(finish.items())),
    )


def served_models(
    results: list[InstanceResult] | tuple[InstanceResult, ...],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The distinct ``model`` fields the model under test and the judge answered with."""
    model: set[str] = set()
    judge: set[str] = set()
    for result in results:
        for sample in result.samples:
            if sample.completion is not None and sample.completion.served_model:
                model.add(sample.completion.served_model)
            if sample.judgement is not None and sample.judgement.served_model:
                judge.add(sample.judgement.served_model)
    return tuple(sorted(model)), tuple(sorted(judge))
