"""The simulator's rate-limited mode: a token bucket in front of the model and judge routes.

Beyond ``requests_per_second`` (with ``burst`` requests of slack) a request is answered 429 at
once with the exact wait in ``Retry-After`` and ``retry-after-ms``, as providers do. Requests a
batch makes to its own server (header ``X-BSA-Batch-Internal``) are not limited.
"""

from __future__ import annotations

import json
import math
import time

from aiohttp import web

from pytest_bsa.simulate.state import SimulatorState

LIMITED_PATHS = frozenset({"/v1/chat/completions", "/chat/completions", "/v1/messages"})
INTERNAL_HEADER = "X-BSA-Batch-Internal"


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; one token per request."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.updated = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available."""
        self.level = min(self.burst, self.level + max(0.0, now - self.updated) * self.rate)
        self.updated = now
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        return (1.0 - self.level) / self.rate


def _refusal(path: str, wait: float) -> web.Response:
    headers = {
        "Retry-After": str(max(1, math.ceil(wait))) if path == "/v1/messages" else f"{wait:.3f}",
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
    }
    message = f"simulated rate limit: try again in {wait:.3f}s"
    if path == "/v1/messages":
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    else:
        body = {"error": {"message": message, "type": "rate_limit_error", "code": 429}}
    return web.Response(
        status=429, body=json.dumps(body), content_type="application/json", headers=headers
    )


def middleware(state: SimulatorState, bucket: TokenBucket):  # type: ignore[no-untyped-def]
    """An aiohttp middleware that refuses what ``bucket`` does not admit (counted in ``state``)."""

    @web.middleware
    async def limit(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.path not in LIMITED_PATHS or request.headers.get(INTERNAL_HEADER):
            return await handler(request)
        wait = bucket.take(time.monotonic())
        if wait > 0:
            state.count_throttled()
            return _refusal(request.path, wait)
        return await handler(request)

    return limit
