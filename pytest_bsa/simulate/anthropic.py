"""The simulator's Anthropic Messages route: ``POST /v1/messages`` for model and judge.

The same script decides what happens as on ``/v1/chat/completions``; only the wire shape
differs: reasoning comes as a thinking block (``redacted_thinking`` when hidden, an empty one for
an empty trace), a truncated or cut sample stops with ``max_tokens``, the served model is the
reply's ``model``, and a judge request, recognised by its verdict tool (``bsa_safety_verdict`` /
``bsa_reasoning_verdict``, or litellm's generic JSON tool with a ``Judge task:`` line) or by the
official prompts' reply keys, gets its verdict as that tool's input or as text in the request's
format (judges of known quality, ``judges:``, as on the chat route). A refusing judge stops
with ``stop_reason: refusal``. A model request's system prompt selects ``system_prompt:`` rules.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from pytest_bsa.simulate.chat import (
    DEFAULT_MODEL,
    STATE_KEY,
    dumps,
    fault_response,
    instance_key,
    last_user_text,
    scripted_reply,
    system_prompt_of,
)
from pytest_bsa.simulate.replies import model_reply, word_count
from pytest_bsa.simulate.script import JUDGE_ONLY_FAULTS, sample_behaviour
from pytest_bsa.simulate.verdicts import (
    REFUSAL_TEXT,
    detect,
    malformed_content,
    message_text,
    user_text,
)

_JSON = "application/json"
_ids = itertools.count(1)
_ERROR_TYPES = {429: "rate_limit_error", 529: "overloaded_error"}


def anthropic_error(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.Response(status=status, body=dumps(body), content_type=_JSON, headers=headers)


def _chat_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request as chat messages with text content (system first)."""
    system = body.get("system")
    if isinstance(system, list):
        system = message_text({"content": system})
    chat: list[dict[str, Any]] = []
    if isinstance(system, str) and system:
        chat.append({"role": "system", "content": system})
    for m in body.get("messages") or ():
        if isinstance(m, dict):
            chat.append({"role": m.get("role"), "content": message_text(m)})
    return chat


def _verdict_tool(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, schema) of the tool the request forces, of its only tool, or its output format."""
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("name")]
    choice = body.get("tool_choice")
    chosen = None
    if isinstance(choice, dict) and choice.get("type") == "tool":
        chosen = next((t for t in tools if t["name"] == choice.get("name")), None)
    elif len(tools) == 1:
        chosen = tools[0]
    if chosen is not None:
        schema = chosen.get("input_schema")
        return str(chosen["name"]), schema if isinstance(schema, dict) else {}
    fmt = body.get("output_format")
    if isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict):
        return "", fmt["schema"]
    return None


def message_body(
    model: str,
    content: list[dict[str, Any]],
    stop_reason: str,
    input_tokens: int,
    output_tokens: int,
) -> dict[str, Any]:
    return {
        "id": f"msg_sim_{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def _model_content(reply: Mapping[str, Any], mode: str) -> tuple[list[dict[str, Any]], str]:
    """The chat-completion reply of the simulated model as Anthropic content blocks."""
    choice = reply["choices"][0]
    message = choice["message"]
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content")
    if reasoning is None:
        reasoning = message.get("reasoning")
    if mode == "truncated":  # cut off inside its thinking: no answer
        thought = content.removeprefix("<think>").strip()
        return [{"type": "thinking", "thinking": thought, "signature": "sim"}], "max_tokens"
    blocks: list[dict[str, Any]] = []
    if isinstance(reasoning, str):  # an empty string: the model's own empty trace
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": "sim"})
    elif mode == "hidden":
        blocks.append({"type": "redacted_thinking", "data": "c2ltdWxhdGVkIHJlZGFjdGVk"})
    blocks.append({"type": "text", "text": content})
    return blocks, "max_tokens" if choice.get("finish_reason") == "length" else "end_turn"


def _object_or_none(text: str) -> dict[str, Any] | None:
    """``text`` as a JSON object (a verdict a tool can carry), or None."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def messages(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return anthropic_error(400, "the request body is not JSON", "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return anthropic_error(400, "messages: field required", "invalid_request_error")
    if body.get("stream"):
        return anthropic_error(400, "the simulator does not stream", "invalid_request_error")
    if not isinstance(body.get("max_tokens"), int):
        return anthropic_error(400, "max_tokens: field required", "invalid_request_error")
    chat = _chat_messages(body)
    text = user_text(chat)
    tool = _verdict_tool(body)
    probe: dict[str, Any] = {}
    if tool is not None:
        probe = {"response_format": {"json_schema": {"name": tool[0], "schema": tool[1]}}}
    judge = detect(probe, text)
    role = "judge" if judge else "model"
    last_user = last_user_text(chat)
    instance, sample = instance_key(request, last_user)
    attempt, fault = state.begin(
        role, f"judge:{judge.kind}" if judge else "model", instance, sample
    )
    model = str(body.get("model") or DEFAULT_MODEL)
    prompt_tokens = sum(word_count(m["content"]) for m in chat)

    if fault is not None and fault.kind == "rate_limit":
        after = f"{fault.retry_after:g}"
        return anthropic_error(
            429, "simulated rate limit", "rate_limit_error", {"retry-after": after}
        )
    if fault is not None and fault.kind == "server_error":
        kind = _ERROR_TYPES.get(fault.status, "api_error")
        return anthropic_error(fault.status, "simulated server error", kind)
    if fault is not None and fault.kind not in JUDGE_ONLY_FAULTS:
        return await fault_response(request, fault, model, prompt_tokens)
    if judge is None:
        behaviour = sample_behaviour(state.script, instance, sample, system_prompt_of(chat))
        if behaviour.latency > 0:
            await asyncio.sleep(behaviour.latency)
        model = state.script.served_model or model
        reply = model_reply(model, last_user, prompt_tokens, behaviour)
        content, stop = _model_content(reply, behaviour.reasoning)
        output_tokens = int(reply["usage"]["completion_tokens"])
    else:
        refuses = sample_behaviour(state.script, instance, sample).judge_refuses
        written: str | None = None
        if fault is not None and fault.kind != "judge_refusal":  # malformed_verdict
            written = malformed_content(attempt)
        elif not refuses and fault is None:  # a judge of known quality may refuse too
            written, _ = scripted_reply(state, body, request, judge)
        if written is None:
            content, stop = [{"type": "text", "text": REFUSAL_TEXT}], "refusal"
            output_tokens = word_count(REFUSAL_TEXT)
        else:
            answer = _object_or_none(written)
            if tool is not None and tool[0] and answer is not None:
                content = [{"type": "tool_use", "id": f"toolu_sim_{next(_ids)}", "name": tool[0]}]
                content[0]["input"] = answer
                stop = "tool_use"
            else:
                content, stop = [{"type": "text", "text": written}], "end_turn"
            output_tokens = word_count(written)
    if fault is None:
        state.completed(role)
    reply_body = message_body(model, content, stop, prompt_tokens, output_tokens)
    return web.Response(body=dumps(reply_body), content_type=_JSON)
