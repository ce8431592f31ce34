"""The aiohttp application: its routes (chat in ``chat.py``, Anthropic messages in
``anthropic.py``, the batch APIs in ``batches.py``), the rate-limited mode, and the server.

Imported only when a server starts (it imports aiohttp).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from aiohttp import web

from pytest_bsa.simulate.anthropic import messages
from pytest_bsa.simulate.batches import add_routes as add_batch_routes
from pytest_bsa.simulate.chat import DEFAULT_MODEL, SHUTDOWN_KEY, STATE_KEY, chat_completions
from pytest_bsa.simulate.ratelimit import TokenBucket, middleware
from pytest_bsa.simulate.script import Script
from pytest_bsa.simulate.state import SimulatorState


async def models(request: web.Request) -> web.Response:
    data = [{"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "pytest-bsa"}]
    return web.json_response({"object": "list", "data": data})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].snapshot())


async def reset_stats(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"reset": True})


@web.middleware
async def record_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every request's method, path and headers, whatever the route (tests scan them)."""
    request.app[STATE_KEY].seen(request.method, request.path, dict(request.headers))
    return await handler(request)


def make_app(state: SimulatorState) -> web.Application:
    limit = state.script.rate_limit
    middlewares: list[Any] = [record_headers]  # first, so refused requests are seen too
    if limit is not None:  # the rate-limited mode
        bucket = TokenBucket(limit.requests_per_second, limit.burst, time.monotonic())
        middlewares.append(middleware(state, bucket))
    app = web.Application(client_max_size=256 * 1024 * 1024, middlewares=middlewares)
    app[STATE_KEY] = state
    app[SHUTDOWN_KEY] = asyncio.Event()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/messages", messages)
    add_batch_routes(app, state)
    app.router.add_get("/stats", stats)
    app.router.add_post("/stats/reset", reset_stats)
    return app


class Server:
    """One listening simulator inside the current event loop."""

    def __init__(self, script: Script, sock: socket.socket) -> None:
        self.state = SimulatorState(script)
        self.app = make_app(self.state)
        self._sock = sock
        self._runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )

    async def start(self) -> None:
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def close(self) -> None:
        """Release hanging requests, then stop listening and close connections."""
        self.app[SHUTDOWN_KEY].set()
        await self._runner.cleanup()


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket (port 0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
