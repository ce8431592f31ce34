"""The simulator's OpenAI-compatible chat route, and what its other routes share: the app's
keys, errors, the instance a request is about, scripted judge replies and faults.

Imported only when a server starts (it imports aiohttp).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Any

from aiohttp import web

from pytest_bsa.simulate.judges import temperature_of, truth_of
from pytest_bsa.simulate.replies import completion_body, model_reply, word_count
from pytest_bsa.simulate.script import JUDGE_ONLY_FAULTS, Fault, sample_behaviour
from pytest_bsa.simulate.state import SimulatorState
from pytest_bsa.simulate.verdicts import (
    OBEYED,
    REFUSAL_TEXT,
    JudgeRequest,
    decide,
    detect,
    malformed_content,
    message_text,
    reply_content,
    user_text,
)

STATE_KEY: web.AppKey[SimulatorState] = web.AppKey("state", SimulatorState)
SHUTDOWN_KEY: web.AppKey[asyncio.Event] = web.AppKey("shutdown", asyncio.Event)
DEFAULT_MODEL = "bsa-simulated"
HANG_LIMIT_S = 3600.0  # a hang ends on client disconnect, on shutdown, or after this long
_JSON = "application/json"


def dumps(obj: Any) -> bytes:
    # ASCII escapes: a scripted lone surrogate goes out as "\ud800", as real servers send it.
    return json.dumps(obj, separators=(",", ":")).encode()


def chat_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None):
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.Response(status=status, body=dumps(body), content_type=_JSON, headers=headers)


def last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m)
    return ""


def instance_key(request: web.Request, last_user: str) -> tuple[str, int]:
    """(instance id, sample) from the X-BSA headers, else from the last user message."""
    instance = request.headers.get("X-BSA-Instance")
    if not instance:
        instance = hashlib.sha256(last_user.encode()).hexdigest()
    try:
        sample = int(request.headers.get("X-BSA-Sample", "0"))
    except ValueError:
        sample = 0
    return instance, sample


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return chat_error(400, "the request body is not JSON", "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return chat_error(400, "the request needs a messages list", "invalid_request_error")
    if body.get("stream"):
        return chat_error(
            400, "the simulator does not stream; send stream=false", "invalid_request"
        )
    messages: list[Any] = body["messages"]
    text = user_text(messages)
    judge = detect(body, text)
    role = "judge" if judge else "model"
    last_user = last_user_text(messages)
    instance, sample = instance_key(request, last_user)
    attempt_key = f"judge:{judge.kind}" if judge else "model"
    attempt, fault = state.begin(role, attempt_key, instance, sample)
    model = str(body.get("model") or DEFAULT_MODEL)
    prompt_tokens = sum(word_count(message_text(m)) for m in messages if isinstance(m, dict))

    if fault is not None and fault.kind not in JUDGE_ONLY_FAULTS:
        return await fault_response(request, fault, model, prompt_tokens)
    if judge is None:
        system = system_prompt_of(messages)
        behaviour = sample_behaviour(state.script, instance, sample, system)
        if behaviour.latency > 0:
            await asyncio.sleep(behaviour.latency)
        served = state.script.served_model or model
        reply = model_reply(served, last_user, prompt_tokens, behaviour)
        if state.script.system_fingerprint is not None:
            reply["system_fingerprint"] = state.script.system_fingerprint
    else:
        refuses = sample_behaviour(state.script, instance, sample).judge_refuses
        extra: dict[str, Any] | None = None
        content: str | None
        if refuses or (fault is not None and fault.kind == "judge_refusal"):
            content, extra = None, {"refusal": REFUSAL_TEXT}
        elif fault is not None:  # malformed_verdict
            content = malformed_content(attempt)
        else:
            content, extra = scripted_reply(state, body, request, judge)
        reply = completion_body(
            model=model,
            content=content,
            prompt_tokens=prompt_tokens,
            completion_tokens=word_count(content or REFUSAL_TEXT),
            extra_message=extra,
        )
    if fault is None:
        state.completed(role)
    return web.Response(body=dumps(reply), content_type=_JSON)


def system_prompt_of(messages: list[Any]) -> str | None:
    """The text of a request's system messages, or None when it has none."""
    texts = [message_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "system"]
    return "\n".join(texts) if texts else None


def scripted_reply(
    state: SimulatorState,
    body: dict[str, Any],
    request: web.Request,
    judge: JudgeRequest,
) -> tuple[str | None, dict[str, Any] | None]:
    """(content, extra message fields) of a judge reply: the honest verdict, a gullible one,
    or that of a judge of known quality (``judges:``) starting from the request's truth."""
    gullible = state.script.judge == "gullible"
    label, explanation = decide(judge, gullible=gullible)
    obeyed = gullible and explanation == OBEYED
    truth = truth_of(judge, (label, explanation))
    if not obeyed and truth.label != label:
        label, explanation = truth.label, "The case's expected label (calibration set)."
    name = str(body.get("model") or "")
    if state.judges.quality(name) is None or obeyed:
        return reply_content(judge, label, explanation, truth.credit), None
    try:
        replicate = int(request.headers.get("X-BSA-Judge-Replicate", "0"))
    except ValueError:
        replicate = 0
    scripted, credit = state.judges.decide(
        name, judge, truth, replicate=replicate, temperature=temperature_of(body)
    )
    if scripted is None:
        return None, {"refusal": REFUSAL_TEXT}
    why = "Scripted judge quality." if scripted != truth.label else explanation
    return reply_content(judge, scripted, why, credit), None


async def fault_response(
    request: web.Request, fault: Fault, model: str, prompt_tokens: int
) -> web.StreamResponse:
    kind = fault.kind
    if kind == "rate_limit":
        after = fault.retry_after
        headers = {
            "Retry-After": str(int(after)) if after == int(after) else f"{after:g}",
            "retry-after-ms": str(round(after * 1000)),
        }
        return chat_error(429, "simulated rate limit", "rate_limit_error", headers)
    if kind == "server_error":
        return chat_error(fault.status, "simulated server error", "server_error")
    if kind == "garbage":
        page = b"<html><body>502 simulated upstream garbage, not JSON</body></html>"
        return web.Response(body=page, content_type="text/html")
    if kind == "truncated_json":
        full = dumps(
            completion_body(
                model=model, content="cut off", prompt_tokens=prompt_tokens, completion_tokens=2
            )
        )
        return web.Response(body=full[: len(full) // 2], content_type=_JSON)
    if kind == "drop":
        if request.transport is not None:
            request.transport.close()
        # The handler is cancelled once aiohttp sees the connection gone.
        await asyncio.sleep(HANG_LIMIT_S)
        raise ConnectionResetError("simulated drop")
    # hang: until the client gives up (the handler is cancelled), shutdown, or the limit.
    shutdown = request.app[SHUTDOWN_KEY]
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(shutdown.wait(), HANG_LIMIT_S)
    return chat_error(503, "simulated hang ended", "server_error")
