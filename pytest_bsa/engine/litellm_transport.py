"""A transport for every provider litellm knows (Anthropic, Gemini, Bedrock, ...).

litellm is imported on first use only (it takes seconds and ~200 MB). Its own retries are off:
retries, backoff and caching are ours (DESIGN.md section 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from pytest_bsa.engine.http_errors import (
    auth_hint,
    endpoint_of,
    kind_for_status,
    retry_after_from_headers,
    scrub,
    shorten,
)
from pytest_bsa.engine.types import ChatRequest, ErrorKind, TransportError
from pytest_bsa.models import Completion
from pytest_bsa.reasoning import completion_from_openai

_litellm: Any = None
# "litellm.RateLimitError: RateLimitError: OpenAIException - slow down" -> "slow down"
_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")


def load_litellm() -> Any:
    """Import and configure litellm once (no network at import, no retries, no debug noise)."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.drop_params = True
        litellm.suppress_debug_info = True
        _litellm = litellm
    return _litellm


def _kind_of(litellm: Any, exc: Exception, status: int | None) -> ErrorKind:
    """The ``TransportError`` kind for a litellm exception (order matters: subclasses first)."""
    table: tuple[tuple[tuple[str, ...], ErrorKind], ...] = (
        (("Timeout",), "timeout"),
        (("RateLimitError",), "rate_limit"),
        (("AuthenticationError", "PermissionDeniedError"), "auth"),
        (("APIResponseValidationError",), "bad_response"),
        (("APIConnectionError",), "connection"),
        (("ServiceUnavailableError", "BadGatewayError", "InternalServerError"), "server"),
        (("BadRequestError", "NotFoundError", "UnprocessableEntityError"), "client"),
    )
    for names, kind in table:
        classes = tuple(c for c in (getattr(litellm, n, None) for n in names) if c is not None)
        if classes and isinstance(exc, classes):
            return kind
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if status is not None and status >= 400:
        return kind_for_status(status)
    return "client"  # an unexpected failure inside litellm: retrying would not help


def _headers_of(exc: Exception) -> Mapping[str, str] | None:
    response = getattr(exc, "response", None)
    for headers in (
        getattr(response, "headers", None),
        getattr(exc, "headers", None),
        getattr(exc, "litellm_response_headers", None),
    ):
        if headers:
            return headers
    return None


class LiteLLMTransport:
    """Sends requests through ``litellm.acompletion``; same contract as the direct transport."""

    def __init__(self, api_key: str | None = None, *, api_key_env: str | None = None) -> None:
        self._api_key = api_key
        self._api_key_env = api_key_env

    def kwargs_for(self, request: ChatRequest, timeout: float) -> dict[str, Any]:
        """The keyword arguments passed to ``litellm.acompletion``."""
        kwargs: dict[str, Any] = dict(request.params)
        kwargs.update(
            model=request.model,
            messages=[dict(m) for m in request.messages],
            timeout=timeout,
            num_retries=0,
        )
        if request.api_base:
            kwargs["api_base"] = request.api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        if request.response_format is not None:
            kwargs["response_format"] = request.response_format
        if request.headers:
            kwargs["extra_headers"] = dict(request.headers)
        return kwargs

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        litellm = load_litellm()
        provider = request.model.split("/", 1)[0] if "/" in request.model else ""
        endpoint = endpoint_of(request.api_base) or provider
        started = time.perf_counter()
        try:
            # litellm enforces ``timeout`` itself; wait_for is a backstop for a stuck provider.
            response = await asyncio.wait_for(
                litellm.acompletion(**self.kwargs_for(request, timeout)), timeout + 5.0
            )
        except Exception as exc:
            raise self._error(litellm, exc, endpoint, provider, timeout) from None
        latency = time.perf_counter() - started
        try:
            cost = float(litellm.completion_cost(completion_response=response))
        except Exception:  # unknown model or provider: the cost is unknown, not zero
            cost = None
        try:
            body = response.model_dump() if hasattr(response, "model_dump") else dict(response)
            return completion_from_openai(body, latency_s=latency, cost_usd=cost)
        except (TypeError, ValueError) as exc:
            raise TransportError(
                "bad_response", f"not a chat completion ({exc})", endpoint=endpoint
            ) from None

    def _error(
        self, litellm: Any, exc: Exception, endpoint: str, provider: str, timeout: float
    ) -> TransportError:
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) else None
        kind = _kind_of(litellm, exc, status)
        text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        cleaned = shorten(scrub(_PREFIX.sub("", str(text), count=1), self._api_key))
        message = cleaned or type(exc).__name__
        retry_after = None
        if kind == "timeout":
            message = f"no complete answer within {timeout:g} s ({message})"
            status = None if status == 408 else status
        elif kind == "auth":
            hint = auth_hint(self._api_key, self._api_key_env, provider)
            message = f"{message}; {hint}"
        elif kind in ("rate_limit", "server"):
            retry_after = retry_after_from_headers(_headers_of(exc))
        if kind == "connection":
            status = None  # litellm reports 500 for connection failures; nothing answered
        return TransportError(
            kind, message, endpoint=endpoint, status=status, retry_after=retry_after
        )

    async def aclose(self) -> None:
        """Close the HTTP clients litellm cached (they are rebuilt on the next call)."""
        if _litellm is None:
            return
        close = getattr(_litellm, "close_litellm_async_clients", None)
        if close is not None:
            with contextlib.suppress(Exception):  # closing must never hide the run's outcome
                await close()
