"""Both transports against a real aiohttp server on 127.0.0.1, and choosing between them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from pytest_bsa.engine.http_errors import endpoint_of, parse_retry_after, retry_after_from_body
from pytest_bsa.engine.openai_compat import OpenAICompatTransport, wire_model
from pytest_bsa.engine.transports import is_direct
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import ReasoningState

KEY = "sk-test-NOT-A-REAL-KEY-7f3a"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def completion_body(message: dict[str, Any], **usage: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "x",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 11, "total_tokens": 18, **usage},
    }


class Server:
    """Records each request and answers by the ``X-Mode`` header."""

    def __init__(self) -> None:
        self.seen: list[tuple[Mapping[str, str], dict[str, Any]]] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append((request.headers.copy(), body))  # case-insensitive
        mode = request.headers.get("X-Mode", "ok")
        if mode == "ok":
            message = {"content": "The answer.", "reasoning_content": "Field reasoning."}
            return web.json_response(
                completion_body(message, completion_tokens_details={"reasoning_tokens": 5})
            )
        if mode == "tags":
            return web.json_response(completion_body({"content": "\n<think>Tagged.</think>\nOK"}))
        if mode == "429":
            error = {"error": {"message": "Rate limit reached", "type": "requests"}}
            return web.json_response(error, status=429, headers={"Retry-After": "3"})
        if mode == "429-body":
            error = {"error": {"message": "Rate limit reached. Please try again in 1.5s."}}
            return web.json_response(error, status=429)
        if mode == "500":
            return web.json_response({"error": {"message": "engine overloaded"}}, status=500)
        if mode == "401":  # a careless server that echoes the key back
            error = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
            return web.json_response(error, status=401)
        if mode == "400":
            message = "response_format is not supported by this model " + "x" * 500
            return web.json_response({"error": {"message": message}}, status=400)
        if mode == "drop":
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.5)
            return web.Response()
        if mode == "hang":
            await self.release.wait()
            return web.Response()
        if mode == "garbage":
            return web.Response(text="<html>proxy login page</html>", content_type="text/html")
        if mode == "not-completion":
            return web.json_response({"object": "list", "data": []})
        raise AssertionError(mode)


@asynccontextmanager
async def serve() -> AsyncIterator[tuple[Server, str]]:
    server = Server()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield server, f"http://127.0.0.1:{port}/v1"
    finally:
        server.release.set()
        await runner.cleanup()


def request(api_base: str, mode: str, **extra: Any) -> ChatRequest:
    return ChatRequest(
        model="openai/x",
        messages=({"role": "user", "content": "Hello"},),
        api_base=api_base,
        params={"temperature": 0.6, "max_tokens": 64, "seed": 3, "top_p": 0.95},
        headers={"X-Mode": mode, "X-BSA-Instance": "inst-1"},
        **extra,
    )


def test_direct_transport_success_errors_and_key_hygiene() -> None:
    async def scenario() -> list[TransportError]:
        errors: list[TransportError] = []
        transport = OpenAICompatTransport(KEY, max_connections=8, api_key_env="MY_KEY_VAR")
        async with serve() as (server, base):

            async def fail(mode: str, timeout: float = 5.0) -> TransportError:
                with pytest.raises(TransportError) as info:
                    await transport.complete(request(base, mode), timeout=timeout)
                errors.append(info.value)
                return info.value

            ok = await transport.complete(
                request(base, "ok", response_format={"type": "json_object"}), timeout=5
            )
            assert (ok.answer, ok.reasoning) == ("The answer.", "Field reasoning.")
            assert ok.reasoning_state is ReasoningState.PRESENT
            assert ok.finish_reason == "stop"
            assert (ok.usage.prompt_tokens, ok.usage.completion_tokens) == (7, 11)
            assert ok.usage.reasoning_tokens == 5
            assert ok.latency_s > 0
            headers, body = server.seen[-1]
            assert headers["Authorization"] == f"Bearer {KEY}"
            assert headers["X-BSA-Instance"] == "inst-1"
            assert body["model"] == "x"  # litellm-style "openai/" prefix stripped
            assert body["messages"] == [{"role": "user", "content": "Hello"}]
            assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.6, 64, 3)
            assert body["top_p"] == 0.95
            assert body["response_format"] == {"type": "json_object"}

            tagged = await transport.complete(request(base, "tags"), timeout=5)
            assert (tagged.answer, tagged.reasoning) == ("OK", "Tagged.")
            assert "response_format" not in server.seen[-1][1]

            limited = await fail("429")
            assert (limited.kind, limited.status, limited.retry_after) == ("rate_limit", 429, 3.0)
            assert limited.retryable
            hinted = await fail("429-body")
            assert hinted.retry_after == pytest.approx(1.5)

            server_error = await fail("500")
            assert (server_error.kind, server_error.status) == ("server", 500)
            assert "engine overloaded" in server_error.message

            auth = await fail("401")
            assert (auth.kind, auth.status) == ("auth", 401)
            assert "check MY_KEY_VAR" in auth.message
            assert not auth.retryable

            client = await fail("400")
            assert client.kind == "client"
            assert "response_format is not supported" in str(client)
            assert len(client.message) <= 200

            dropped = await fail("drop")
            assert dropped.kind == "connection"
            assert "127.0.0.1" in dropped.message

            hung = await fail("hang", timeout=0.2)
            assert hung.kind == "timeout"
            assert "0.2 s" in hung.message

            garbage = await fail("garbage")
            assert garbage.kind == "bad_response"
            assert "<html>proxy login page</html>" in garbage.message
            wrong_shape = await fail("not-completion")
            assert wrong_shape.kind == "bad_response"
            assert "no choices" in wrong_shape.message

            port = base.split(":")[2].split("/")[0]
            assert all(e.endpoint == f"http://127.0.0.1:{port}" for e in errors)
        await transport.aclose()
        return errors

    errors = asyncio.run(scenario())
    assert len(errors) == 9
    for error in errors:
        assert KEY not in str(error)
        assert KEY not in repr(error.args)


def test_direct_transport_connection_refused_names_the_host() -> None:
    async def scenario() -> TransportError:
        async with serve() as (_, base):
            pass  # the server is gone: its port now refuses connections
        transport = OpenAICompatTransport(None)
        try:
            with pytest.raises(TransportError) as info:
                await transport.complete(request(base, "ok"), timeout=2)
        finally:
            await transport.aclose()
        return info.value

    error = asyncio.run(scenario())
    assert error.kind == "connection"
    assert error.message.startswith("cannot connect to 127.0.0.1:")
    assert "connection refused" in error.message


def test_direct_transport_without_key_sends_no_authorization() -> None:
    async def scenario() -> Mapping[str, str]:
        transport = OpenAICompatTransport()
        async with serve() as (server, base):
            await transport.complete(request(base, "ok"), timeout=5)
            with pytest.raises(TransportError, match="no API key was sent"):
                await transport.complete(request(base, "401"), timeout=5)
        await transport.aclose()
        return server.seen[0][0]

    assert "Authorization" not in asyncio.run(scenario())


def test_litellm_transport_against_local_server() -> None:
    from pytest_bsa.engine.litellm_transport import LiteLLMTransport

    async def scenario() -> None:
        transport = LiteLLMTransport(KEY)
        async with serve() as (server, base):
            ok = await transport.complete(request(base, "ok"), timeout=5)
            assert (ok.answer, ok.reasoning) == ("The answer.", "Field reasoning.")
            assert ok.reasoning_state is ReasoningState.PRESENT
            assert (ok.usage.prompt_tokens, ok.usage.reasoning_tokens) == (7, 5)
            assert ok.usage.cost_usd is None  # "x" has no known price
            headers, body = server.seen[-1]
            assert headers["X-BSA-Instance"] == "inst-1"
            assert headers["Authorization"] == f"Bearer {KEY}"
            assert body["model"] == "x"

            tagged = await transport.complete(request(base, "tags"), timeout=5)
            assert (tagged.answer, tagged.reasoning) == ("OK", "Tagged.")

            failures = {}
            for mode in ("429", "500", "401", "400"):
                with pytest.raises(TransportError) as info:
                    await transport.complete(request(base, mode), timeout=5)
                failures[mode] = info.value
            with pytest.raises(TransportError) as info:
                await transport.complete(request(base, "hang"), timeout=0.2)
            failures["hang"] = info.value
        await transport.aclose()

        assert failures["429"].kind == "rate_limit"
        assert failures["429"].retry_after == 3.0
        assert failures["500"].kind == "server"
        assert failures["401"].kind == "auth"
        assert "OPENAI_API_KEY" in failures["401"].message
        assert failures["400"].kind == "client"
        assert "response_format" in str(failures["400"])
        assert failures["hang"].kind == "timeout"
        for error in failures.values():
            assert KEY not in str(error)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("model", "api_base", "direct"),
    [
        ("openai/qwen3-8b", "http://127.0.0.1:8000/v1", True),
        ("qwen3-8b", "http://127.0.0.1:8000/v1", True),
        ("hosted_vllm/qwen3-8b", "http://127.0.0.1:8000/v1", True),
        ("openai/Qwen/Qwen3-8B", "http://127.0.0.1:8000/v1", True),
        ("anthropic/claude-sonnet-4", "http://127.0.0.1:8000/v1", False),
        ("openai/gpt-4o-mini", None, False),
        ("anthropic/claude-sonnet-4", None, False),
    ],
)
def test_transport_choice(model: str, api_base: str | None, direct: bool) -> None:
    assert is_direct(model, api_base) is direct


def test_wire_model_strips_routing_prefix_only() -> None:
    assert wire_model("openai/Qwen/Qwen3-8B") == "Qwen/Qwen3-8B"
    assert wire_model("qwen3-8b") == "qwen3-8b"


def test_choosing_a_transport_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from pytest_bsa.engine.transports import make_transport\n"
        "assert 'aiohttp' not in sys.modules and 'litellm' not in sys.modules\n"
        "t = make_transport('openai/x', 'http://127.0.0.1:1/v1', None)\n"
        "assert type(t).__name__ == 'OpenAICompatTransport', t\n"
        "assert 'litellm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_endpoint_never_includes_path_query_or_credentials() -> None:
    assert (
        endpoint_of("https://user:pw@api.example.com/v1?key=abc") == "https://api.example.com:443"
    )
    assert endpoint_of("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000"
    assert endpoint_of("not a url") == ""


def test_retry_after_forms() -> None:
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert retry_after_from_body({"error": {"retry_after": 4}}) == 4.0
    assert retry_after_from_body({"error": {"message": "try again in 250ms"}}) == 0.25
    assert retry_after_from_body(json.loads('{"detail": "busy"}')) is None
