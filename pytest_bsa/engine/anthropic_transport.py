"""A direct transport for the Anthropic Messages API (``POST {base}/v1/messages``, aiohttp).

Through litellm an Anthropic call costs ~25 ms of client CPU (DESIGN.md section 3); this costs
about what the OpenAI-compatible transport does. The reply is mapped onto the chat-completion
shape litellm produces (thinking blocks as reasoning, a forced tool's input as the JSON answer,
``max_tokens`` as finish reason ``length``, ``stop_reason: refusal`` as a refusal with finish
reason ``content_filter``, the reply's ``model`` as the served model), so both paths give the
same completions and the judge sees refusals and cut replies as it does on the other paths.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pytest_bsa.engine.http import HttpClient, http_error
from pytest_bsa.engine.http_errors import endpoint_of, retry_after_from_headers, shorten
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion
from pytest_bsa.reasoning import completion_from_openai

PREFIX = "anthropic/"
DEFAULT_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
KEY_ENV = "ANTHROPIC_API_KEY"
DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens; litellm sends 4096 as well
# reasoning_effort -> thinking budget, as litellm maps it.
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",  # the forced verdict tool: the answer is the tool's input
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


def is_anthropic(model: str) -> bool:
    return model.startswith(PREFIX)


def wire_model(model: str) -> str:
    return model[len(PREFIX) :] if model.startswith(PREFIX) else model


def messages_url(api_base: str | None, suffix: str = "") -> str:
    """``{base}/v1/messages{suffix}``; a base that already ends in ``/v1`` is not doubled.

    litellm appends ``v1/messages`` to its api_base, so the same base works for both.
    """
    parts = urlsplit(api_base or DEFAULT_BASE)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit(parts._replace(path=f"{path}/messages{suffix}"))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


def body_for(request: ChatRequest) -> dict[str, Any]:
    """The Messages API body for ``request`` (system messages become the ``system`` field)."""
    system = [_text(m.get("content")) for m in request.messages if m.get("role") == "system"]
    messages = [
        {"role": m.get("role"), "content": m.get("content")}
        for m in request.messages
        if m.get("role") != "system"
    ]
    body: dict[str, Any] = {"model": wire_model(request.model), "messages": messages}
    if any(system):
        body["system"] = "\n\n".join(s for s in system if s)
    params = dict(request.params)
    if "max_completion_tokens" in params:
        params.setdefault("max_tokens", params.pop("max_completion_tokens"))
    if "stop" in params:
        stop = params.pop("stop")
        params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop or ())
    effort = params.pop("reasoning_effort", None)
    if effort in THINKING_BUDGETS and "thinking" not in params:
        params["thinking"] = {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
    body.update(params)
    body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    schema = _json_schema(request.response_format)
    if schema is not None:
        name, input_schema = schema
        body["tools"] = [
            {"name": name, "description": "Record the verdict.", "input_schema": input_schema}
        ]
        thinking = body.get("thinking")
        thinking_on = isinstance(thinking, Mapping) and thinking.get("type") == "enabled"
        # Extended thinking allows only tool_choice "auto"; the prompt asks for the tool's JSON.
        body["tool_choice"] = {"type": "auto"} if thinking_on else {"type": "tool", "name": name}
    return body


def _json_schema(response_format: Mapping[str, Any] | None) -> tuple[str, dict] | None:
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
        return None
    return str(spec.get("name") or "json_answer"), dict(spec["schema"])


def completion_from_anthropic(body: Any, *, latency_s: float) -> Completion:
    """A ``Completion`` from a Messages API reply; raises ``ValueError`` when it is not one."""
    if not isinstance(body, Mapping):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    content = body.get("content")
    if body.get("type") != "message" or not isinstance(content, list):
        raise ValueError("not a message (no content blocks)")
    texts: list[str] = []
    thinking: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(dict(block))  # redacted thinking adds no text: reasoning hidden
        elif kind == "tool_use":
            texts.append(json.dumps(block.get("input"), ensure_ascii=False))
    usage = body.get("usage") if isinstance(body.get("usage"), Mapping) else {}
    prompt = sum(
        _count(usage.get(k))
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    stop = body.get("stop_reason")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts),
        "thinking_blocks": thinking,
    }
    if stop == "refusal":  # the provider's safety classifier stopped the reply: a refusal
        message["refusal"] = message["content"] or None
    as_openai = {
        "model": body.get("model"),  # what actually answered (the served model)
        "choices": [
            {
                "message": message,
                "finish_reason": FINISH_REASONS.get(stop, stop) if isinstance(stop, str) else None,
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": usage.get("output_tokens")},
    }
    return completion_from_openai(as_openai, latency_s=latency_s)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def retry_after_from_anthropic(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After``, else the reset time of an exhausted ``anthropic-ratelimit-*`` limit."""
    found = retry_after_from_headers(headers)
    if found is not None or not headers:
        return found
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    waits = []
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        if lowered.get(f"anthropic-ratelimit-{kind}-remaining") != "0":
            continue
        reset = lowered.get(f"anthropic-ratelimit-{kind}-reset")
        try:
            when = datetime.fromisoformat(reset.replace("Z", "+00:00")) if reset else None
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            waits.append(max(0.0, when.timestamp() - time.time()))
    return max(waits) if waits else None


def headers_for(api_key: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "anthropic-version": API_VERSION,
    }
    if api_key:
        headers["x-api-key"] = api_key
    return headers


def anthropic_error(
    reply: Any, endpoint: str, api_key: str | None, api_key_env: str | None
) -> TransportError:
    hint = None
    option = api_key_env if api_key_env and api_key_env.startswith("--") else None
    if api_key_env and option is None:
        hint = f"check {api_key_env}"
    elif api_key is None:
        hint = (
            f"no API key was sent: set {KEY_ENV} for api.anthropic.com; another base URL gets "
            f"a key only from a variable named for it ({option or '--bsa-api-key-env'})"
        )
    return http_error(
        reply,
        endpoint,
        api_key=api_key,
        api_key_env=api_key_env,
        provider="anthropic",
        retry_after=retry_after_from_anthropic(reply.headers),
        hint=hint,
    )


class AnthropicTransport:
    """POSTs to ``{api_base}/v1/messages`` (default ``https://api.anthropic.com``)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        max_connections: int = 256,
        api_key_env: str | None = None,
    ) -> None:
        self._api_key = api_key
        self._api_key_env = api_key_env
        self._http = HttpClient(headers_for(api_key), max_connections=max_connections)

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        url = messages_url(request.api_base)
        endpoint = endpoint_of(url)
        data = json.dumps(body_for(request)).encode()
        started = time.perf_counter()
        reply = await self._http.send(
            "POST", url, data=data, headers=request.headers or None, timeout=timeout
        )
        latency = time.perf_counter() - started
        if reply.status >= 400:
            raise self.error(reply, endpoint)
        parsed = reply.json()
        try:
            return completion_from_anthropic(parsed, latency_s=latency)
        except ValueError as exc:
            snippet = shorten(reply.body.decode("utf-8", "replace"), 80)
            raise TransportError(
                "bad_response",
                f"not a Messages API reply ({'not JSON' if parsed is None else exc}): {snippet!r}",
                endpoint=endpoint,
                status=reply.status,
            ) from None

    def error(self, reply: Any, endpoint: str) -> TransportError:
        """The ``TransportError`` for an HTTP error reply of the Messages API."""
        return anthropic_error(reply, endpoint, self._api_key, self._api_key_env)

    async def aclose(self) -> None:
        await self._http.aclose()
