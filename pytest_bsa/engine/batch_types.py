"""What batch mode's parts share: one look at a provider batch, the protocols of a provider's
batch client and of the cache's batch rows, and the custom ids that carry a request's routing
hints through a batch file (pure: no aiohttp, no cache)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion

Phase = Literal["running", "done", "failed", "expired", "cancelled"]
_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KIND_LETTER = {"safety": "s", "reasoning": "r"}


@dataclass(frozen=True)
class BatchState:
    """One look at a provider batch."""

    batch_id: str
    status: str  # the provider's own word: "in_progress", "ended", ...
    phase: Phase
    total: int = 0
    done: int = 0
    failed: int = 0
    detail: str = ""  # why a batch failed
    handle: dict[str, Any] = field(default_factory=dict)  # where its results are


class BatchClient(Protocol):
    """One provider's batch API."""

    provider: str  # e.g. "OpenAI batch API"
    endpoint: str  # its base URL
    max_requests: int

    async def submit(self, entries: Sequence[tuple[str, ChatRequest]]) -> str: ...

    async def poll(self, batch_id: str) -> BatchState: ...

    async def results(self, state: BatchState) -> dict[str, Completion | TransportError]: ...

    async def aclose(self) -> None: ...


class BatchStore(Protocol):
    def batch_request(self, key: str) -> tuple[str, str] | None: ...

    def put_batch(
        self,
        batch_id: str,
        *,
        endpoint: str,
        provider: str,
        entries: list[tuple[str, str, str | None]],
    ) -> None: ...

    def forget_batch_requests(self, keys: list[str]) -> None: ...


class BatchLost(TransportError):
    """The batch could not be polled: not retried (that would pay twice); a rerun resumes it."""

    @property
    def retryable(self) -> bool:
        return False


def custom_id_for(key: str, request: ChatRequest) -> str:
    """``<digest>_<sample>_<m|s|r>[ask]_<instance>``: unique per request, and it carries the
    routing hints a batch line cannot send as headers (``ask``: a repeated judge verdict's
    ``X-BSA-Judge-Replicate``). Falls back to the digest alone when the instance id does not fit
    the providers' ``[A-Za-z0-9_-]{1,64}``."""
    hints = request.headers
    kind = _KIND_LETTER.get(hints.get("X-BSA-Judge", ""), "m")
    ask = hints.get("X-BSA-Judge-Replicate", "")
    if kind != "m" and ask.isdigit() and int(ask):
        kind += str(int(ask))
    full = f"{key[:24]}_{hints.get('X-BSA-Sample', '0')}_{kind}_{hints.get('X-BSA-Instance', '')}"
    return full if _CUSTOM_ID.match(full) and hints.get("X-BSA-Instance") else key[:64]


def routing_hints(custom_id: str) -> dict[str, str]:
    """The ``X-BSA-*`` hints a :func:`custom_id_for` id carries (empty for a bare digest)."""
    parts = custom_id.split("_", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return {}
    hints = {"X-BSA-Instance": parts[3], "X-BSA-Sample": parts[1]}
    letter, ask = parts[2][:1], parts[2][1:]
    judge = {"s": "safety", "r": "reasoning"}.get(letter)
    if judge:
        hints["X-BSA-Judge"] = judge
        if ask.isdigit():
            hints["X-BSA-Judge-Replicate"] = ask
    return hints
