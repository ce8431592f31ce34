"""The direct Anthropic Messages transport: request shape, reply mapping, errors, keys, and the
same completions and verdicts as litellm's Anthropic provider against the simulated endpoint."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp import web
from conftest import SIX, SIX_PLAN, expected_groups, read_json, requests, run_bsa, script_for
from conftest import write_rows as write_rows_csv

from pytest_bsa.engine.anthropic_transport import (
    AnthropicTransport,
    body_for,
    completion_from_anthropic,
    key_for,
    messages_url,
    retry_after_from_anthropic,
)
from pytest_bsa.engine.transports import make_transport
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.judge import build_messages, response_format
from pytest_bsa.models import Instance, Label, ReasoningState
from pytest_bsa.simulate import Behaviour, BehaviourOverride, Fault, FaultMatch, Script

KEY = "sk-ant-NOT-A-REAL-KEY-91c2"
MODES = ("field", "reasoning_field", "tags", "tags_newline", "bare_close", "truncated", "hidden")


def chat(base: str | None, *, judge: str | None = None, **params) -> ChatRequest:
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"})
    return ChatRequest(
        model="anthropic/claude-test",
        messages=messages,
        api_base=base,
        params={"temperature": 0.5, **params},
        response_format=response_format(judge, "Risk Omission") if judge else None,
        headers={"X-BSA-Instance": "inst-1", "X-BSA-Sample": "2"},
    )


# -- request shape ----------------------------------------------------------------------------


def test_body_moves_system_out_and_maps_openai_params() -> None:
    body = body_for(chat(None, stop="END", max_completion_tokens=300))
    assert body["model"] == "claude-test"
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": "Hi there"}]
    assert (body["max_tokens"], body["stop_sequences"], body["temperature"]) == (300, ["END"], 0.5)
    assert "stop" not in body and "tools" not in body
    assert body_for(chat(None))["max_tokens"] == 4096  # required by the API


def test_structured_verdict_is_a_forced_tool_unless_thinking_is_on() -> None:
    body = body_for(chat(None, judge="safety"))
    (tool,) = body["tools"]
    assert tool["name"] == "bsa_safety_verdict"
    assert tool["input_schema"]["properties"]["label"]["enum"] == ["Safe", "Unsafe"]
    assert body["tool_choice"] == {"type": "tool", "name": "bsa_safety_verdict"}
    thinking = body_for(chat(None, judge="safety", reasoning_effort="low"))
    assert thinking["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert thinking["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (None, "https://api.anthropic.com/v1/messages"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9/v1/messages"),
        ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/messages"),
        ("https://gw.example/anthropic", "https://gw.example/anthropic/v1/messages"),
    ],
)
def test_messages_url(base: str | None, url: str) -> None:
    assert messages_url(base) == url


def test_keys_go_only_where_they_belong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-NOT-REAL")
    assert key_for(None, None, None) == KEY
    assert key_for(None, None, "https://api.anthropic.com") == KEY
    assert key_for(None, None, "http://127.0.0.1:8000") is None  # never to another host
    assert key_for("sk-openai-NOT-REAL", None, "http://127.0.0.1:8000") is None
    assert key_for("named", "MY_GATEWAY_KEY", "http://127.0.0.1:8000") == "named"
    transport = make_transport("anthropic/claude-test", "http://127.0.0.1:8000", "sk-openai")
    assert type(transport).__name__ == "AnthropicTransport"
    assert transport._api_key is None


def test_choosing_the_anthropic_transport_imports_no_litellm() -> None:
    code = (
        "import sys\n"
        "from pytest_bsa.engine.transports import make_transport\n"
        "t = make_transport('anthropic/claude-x', None, None)\n"
        "assert type(t).__name__ == 'AnthropicTransport', t\n"
        "assert 'litellm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- reply mapping ----------------------------------------------------------------------------


def message(content: list, stop: str = "end_turn", **usage: int) -> dict:
    return {
        "type": "message",
        "content": content,
        "stop_reason": stop,
        "usage": {"input_tokens": 9, "output_tokens": 21, **usage},
    }


def test_thinking_blocks_are_the_reasoning_and_usage_is_counted() -> None:
    reply = message(
        [
            {"type": "thinking", "thinking": "First thought.", "signature": "s"},
            {"type": "thinking", "thinking": "Second thought.", "signature": "s"},
            {"type": "text", "text": "The answer."},
        ],
        cache_read_input_tokens=4,
    )
    completion = completion_from_anthropic(reply, latency_s=0.1)
    assert completion.answer == "The answer."
    assert completion.reasoning == "First thought.\n\nSecond thought."
    assert completion.reasoning_state is ReasoningState.PRESENT
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (13, 21)
    assert completion.finish_reason == "stop"


def test_redacted_thinking_is_hidden_reasoning_and_max_tokens_is_length() -> None:
    hidden = completion_from_anthropic(
        message([{"type": "redacted_thinking", "data": "xx"}, {"type": "text", "text": "A."}]),
        latency_s=0.0,
    )
    assert (hidden.answer, hidden.reasoning) == ("A.", None)
    assert hidden.reasoning_state is ReasoningState.UNAVAILABLE
    cut = completion_from_anthropic(
        message([{"type": "thinking", "thinking": "Half"}], stop="max_tokens"), latency_s=0.0
    )
    assert (cut.answer, cut.finish_reason) == ("", "length")


def test_a_tool_use_block_becomes_the_json_answer() -> None:
    reply = message(
        [{"type": "tool_use", "name": "bsa_safety_verdict", "input": {"label": "Safe"}}], "tool_use"
    )
    assert completion_from_anthropic(reply, latency_s=0.0).answer == '{"label": "Safe"}'


@pytest.mark.parametrize("body", [None, [], {"type": "error"}, {"type": "message"}])
def test_what_is_not_a_message_is_refused(body: object) -> None:
    with pytest.raises(ValueError):
        completion_from_anthropic(body, latency_s=0.0)


def test_retry_after_from_rate_limit_headers() -> None:
    assert retry_after_from_anthropic({"retry-after": "7"}) == 7.0
    soon = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
    later = (datetime.now(timezone.utc) + timedelta(seconds=90)).isoformat()
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": soon,
        "anthropic-ratelimit-tokens-remaining": "5000",
        "anthropic-ratelimit-tokens-reset": later,  # not exhausted: not a reason to wait
    }
    wait = retry_after_from_anthropic(headers)
    assert wait is not None and 25 < wait <= 30
    assert retry_after_from_anthropic({"anthropic-ratelimit-requests-remaining": "3"}) is None


# -- against a local server -------------------------------------------------------------------


@asynccontextmanager
async def serve(status: int, body: bytes, headers: dict[str, str]) -> AsyncIterator[list]:
    seen: list = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.copy(), await request.json()))
        return web.Response(status=status, body=body, headers=headers)

    app = web.Application()
    app.router.add_post("/v1/messages", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield [f"http://127.0.0.1:{port}", seen]
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "retry_after"),
    [
        (429, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}',
         {"retry-after": "3"}, "rate_limit", 3.0),
        (529, b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}', {},
         "server", None),
        (401, b'{"type":"error","error":{"type":"authentication_error","message":"bad key"}}',
         {}, "auth", None),
        (400, b'{"type":"error","error":{"type":"invalid_request_error","message":"nope"}}',
         {}, "client", None),
        (200, b"<html>not json</html>", {}, "bad_response", None),
    ],
)  # fmt: skip
def test_errors_are_classified_and_never_show_the_key(
    status: int, body: bytes, headers: dict, kind: str, retry_after: float | None
) -> None:
    async def scenario() -> tuple[TransportError, list]:
        async with serve(status, body, headers) as (base, seen):
            transport = AnthropicTransport(KEY, api_key_env="MY_ANTHROPIC_KEY")
            with pytest.raises(TransportError) as info:
                await transport.complete(chat(base), timeout=5)
            await transport.aclose()
            return info.value, seen

    error, seen = asyncio.run(scenario())
    assert (error.kind, error.retry_after) == (kind, retry_after)
    assert KEY not in str(error)
    if kind == "auth":
        assert "check MY_ANTHROPIC_KEY" in str(error)
    path, sent_headers, sent_body = seen[0]
    assert path == "/v1/messages"
    assert sent_headers["x-api-key"] == KEY
    assert sent_headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent_headers
    assert sent_headers["X-BSA-Sample"] == "2"
    assert sent_body["system"] == "Be brief."


def test_a_refused_connection_is_a_connection_error() -> None:
    async def scenario() -> TransportError:
        transport = AnthropicTransport()
        with pytest.raises(TransportError) as info:
            await transport.complete(chat("http://127.0.0.1:1"), timeout=5)
        await transport.aclose()
        return info.value

    assert asyncio.run(scenario()).kind == "connection"


# -- against the simulated Messages endpoint, and litellm on the same endpoint ---------------

INSTANCE = Instance(
    id="inst-1",
    query="A user asks an everyday question about a neutral topic.",
    risk_summary="A risk described in neutral words.",
    scenario="Cognitive Shortcut",
    labels=(Label(category="Rumors", subcategory="A"), Label(category="Rumors", subcategory="B")),
)


async def _completions_and_verdicts(transport, base: str) -> list[tuple]:
    out = []
    for sample in range(len(MODES)):
        request = chat(base).model_copy(
            update={"headers": {"X-BSA-Instance": f"mode-{sample}", "X-BSA-Sample": "0"}}
        )
        completion = await transport.complete(request, timeout=10)
        verdicts = []
        for kind, text in (("safety", completion.answer), ("reasoning", completion.reasoning)):
            judge = ChatRequest(
                model="anthropic/claude-judge",
                messages=build_messages(kind, INSTANCE, text or "(empty)"),
                api_base=base,
                params={"temperature": 0.0, "max_tokens": 512},
                response_format=response_format(kind, INSTANCE.scenario),
            )
            verdicts.append((await transport.complete(judge, timeout=10)).answer)
        # Anthropic reports no reasoning-token count; litellm estimates one with a tokenizer.
        shown = completion.model_dump(exclude={"latency_s": True, "usage": {"reasoning_tokens"}})
        out.append((shown, verdicts))
    await transport.aclose()
    return out


def test_same_completions_and_verdicts_as_litellm(simulator) -> None:
    from pytest_bsa.engine.litellm_transport import LiteLLMTransport

    script = Script(
        default=Behaviour(safe=0.5, covered=0.5),
        instances={f"mode-{i}": BehaviourOverride(reasoning=m) for i, m in enumerate(MODES)},
    )
    sim = simulator(script)
    base = sim.base_url.removesuffix("/v1")  # litellm appends v1/messages itself
    direct = asyncio.run(_completions_and_verdicts(AnthropicTransport(), base))
    through_litellm = asyncio.run(_completions_and_verdicts(LiteLLMTransport("sk-dummy"), base))
    assert direct == through_litellm
    states = {c["reasoning_state"] for c, _ in direct}
    assert states == {ReasoningState.PRESENT, ReasoningState.UNAVAILABLE}
    assert all('"label"' in v for _, verdicts in direct for v in verdicts)


def test_end_to_end_through_the_messages_api(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    flaky = Fault(match=FaultMatch(role="*"), kind="rate_limit", rate=0.2, retry_after=0.01)
    sim = simulator(script_for(SIX_PLAN, faults=[flaky]))
    root = sim.base_url.removesuffix("/v1")
    dataset = write_rows_csv(pytester, SIX)
    result = run_bsa(
        pytester,
        "--bsa-model=anthropic/claude-under-test",
        f"--bsa-api-base={root}",
        "--bsa-judge=anthropic/claude-judge",
        f"--bsa-judge-api-base={root}",
        f"--bsa-dataset={dataset}",
        "--bsa-samples=3",
        "--bsa-report=r.json",
        cache_dir=cache_dir,
    )
    assert result.ret in (0, 1), result.stdout.str()
    report = read_json(pytester.path / "r.json")
    for key, want in expected_groups(SIX, SIX_PLAN).items():
        for metric in ("safe_at_1", "think_at_1", "safe_at_k", "think_at_k"):
            got = report["groups"][key][metric]
            assert got == (None if want[metric] is None else pytest.approx(want[metric])), key
    model_calls, judge_calls = requests(sim)
    assert model_calls >= 18 and judge_calls > 0
    assert sim.stats()["roles"]["model"]["faults_by_kind"].get("rate_limit", 0) > 0
    assert report["totals"]["model"]["retries"] > 0
    assert all(not s.get("error") for r in report["instances"] for s in r["samples"])
