"""What the engine counts per role (calls, retries, tokens, cost), and one call's price and
expected tokens (for ``--bsa-tpm``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pytest_bsa.engine.types import ChatRequest
from pytest_bsa.models import Completion


@dataclass
class CallCounters:
    """Totals for one role (model or judge) in this process."""

    calls: int = 0
    cached: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    completed: int = 0
    in_flight: int = 0

    @property
    def mean_cost(self) -> float:
        return self.cost_usd / self.completed if self.completed else 0.0

    @property
    def typical_completion(self) -> int:
        """Mean completion tokens so far (512 before the first answer), for --bsa-tpm."""
        return self.completion_tokens // self.completed if self.completed else 512

    def add(self, completion: Completion) -> None:
        self.completed += 1
        usage = completion.usage
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        if usage.cost_usd is None:
            self.cost_known = False
        else:
            self.cost_usd += usage.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class EngineStats:
    model: CallCounters = field(default_factory=CallCounters)
    judge: CallCounters = field(default_factory=CallCounters)
    started: float = field(default_factory=time.monotonic)


def priced(
    completion: Completion, price: tuple[float, float] | None, factor: float = 1.0
) -> Completion:
    """``completion`` with its cost from ``price`` (USD per million input, output tokens) times
    ``factor`` (0.5 for a batch API's discount)."""
    if price is None:
        return completion
    usage = completion.usage
    cost = factor * (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6
    return completion.model_copy(update={"usage": usage.model_copy(update={"cost_usd": cost})})


def estimate_tokens(request: ChatRequest, typical_completion: int) -> int:
    """Tokens a call will use, for --bsa-tpm: ~4 characters per prompt token."""
    chars = sum(len(str(m.get("content", ""))) for m in request.messages)
    return chars // 4 + typical_completion
