"""The contract between the run and the transports that reach a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from pytest_bsa.models import Completion

ErrorKind = Literal[
    "rate_limit",  # 429
    "server",  # 5xx
    "timeout",  # no answer within the timeout
    "connection",  # refused, reset, dropped
    "auth",  # 401/403: wrong or missing key
    "client",  # other 4xx: the request itself is wrong
    "bad_response",  # 2xx with a body that is not a chat completion
    "pipeline",  # the team's own pytest_bsa_generate raised (retried like a 5xx)
]
RETRYABLE: frozenset[str] = frozenset(
    {"rate_limit", "server", "timeout", "connection", "bad_response", "pipeline"}
)


class ChatRequest(BaseModel):
    """One chat-completions call. Never holds an API key (keys live in the transport)."""

    model_config = ConfigDict(frozen=True)

    model: str  # litellm model string, e.g. "openai/qwen3-8b" or "anthropic/claude-sonnet-4"
    messages: tuple[dict[str, Any], ...]
    api_base: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)  # temperature, max_tokens, extra params
    response_format: dict[str, Any] | None = None
    # Non-secret routing hints; the simulated endpoint scripts behaviour from them.
    headers: dict[str, str] = Field(default_factory=dict)


class TransportError(Exception):
    """A call that failed; ``kind`` decides whether it is retried."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    def __str__(self) -> str:
        where = f" from {self.endpoint}" if self.endpoint else ""
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{self.kind}{status}{where}: {self.message}"


class Transport(Protocol):
    """Sends one request and returns the completion with reasoning already split off."""

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class RequestSpec:
    """How to reach one role's endpoint."""

    model: str
    api_base: str | None
    params: dict[str, Any]
    cache_base: str | None = None  # the endpoint's identity in cache keys (default: api_base)
    price: tuple[float, float] | None = None  # USD per million input, output tokens
    rpm: float | None = None
    tpm: float | None = None


class RunStopped(TransportError):
    """The run was stopped (cost limit or circuit breaker): the call was not made."""

    def __init__(self, reason: str) -> None:
        super().__init__("client", f"not run: {reason}")
        self.reason = reason


# Final failures that say the endpoint itself is in trouble (not one request's problem).
BREAKER_KINDS: frozenset[str] = frozenset(
    {"server", "connection", "timeout", "bad_response", "rate_limit", "auth"}
)


_STRUCTURED_WORDS = ("response_format", "json_schema", "structured output", "response format")


def refuses_structured_output(error: TransportError) -> bool:
    """A 4xx that says the provider does not support the JSON-schema ``response_format``."""
    text = str(error).lower()
    return error.kind == "client" and any(word in text for word in _STRUCTURED_WORDS)
