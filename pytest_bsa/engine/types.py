"""The contract between the run and the transports that reach a model."""

from __future__ import annotations

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
