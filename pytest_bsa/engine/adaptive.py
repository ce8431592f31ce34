"""Adaptive concurrency for one endpoint role: additive increase, multiplicative decrease.

The limit starts at the ceiling (``--bsa-concurrency``), so a run that meets no rate limit and no
slowdown behaves exactly like a fixed one. Signals that lower it:

- a 429 (rate limit): the limit is multiplied by ``backoff`` and new calls pause for the
  server's Retry-After;
- latency growth: when the recent latency per output token is ``latency_factor`` times the
  best seen, on calls that take ``latency_floor_s`` or more (fast local servers never trip it),
  the limit is multiplied by ``latency_backoff``, never below a quarter of the ceiling.

Only one cut per congestion episode: a failure of a call sent before the last cut says nothing
new. Every success adds ``1 / limit`` (one slot per round trip at full use), up to the ceiling.
The best latency slowly drifts upward, so a provider that stays slower is accepted as the new
normal instead of squeezing the run. Pure logic with an injectable clock (no I/O).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_PAUSE_S = 300.0  # the longest Retry-After honoured (as in retry.py)


@dataclass(frozen=True)
class Decision:
    """One change of the limit, for tests and diagnostics."""

    at: float
    reason: str  # "rate_limit" | "latency"
    before: int
    after: int
    pause_s: float = 0.0


class AdaptiveConcurrency:
    """The current concurrency limit of one endpoint role, between 1 and ``ceiling``."""

    def __init__(
        self,
        ceiling: int,
        *,
        backoff: float = 0.75,
        latency_backoff: float = 0.9,
        latency_factor: float = 2.0,
        latency_floor_s: float = 0.5,
        smoothing: float = 0.1,
        drift: float = 0.002,
        warmup: int = 20,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        if ceiling < 1:
            raise ValueError(f"ceiling must be at least 1, got {ceiling}")
        if not (0 < backoff < 1 and 0 < latency_backoff < 1):
            raise ValueError("backoff factors must be between 0 and 1")
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.backoff = backoff
        self.latency_backoff = latency_backoff
        self.latency_factor = latency_factor
        self.latency_floor_s = latency_floor_s
        self.smoothing = smoothing
        self.drift = drift
        self.warmup = warmup
        self._clock = clock
        self._on_change = on_change
        self._last_cut = -math.inf
        self._paused_until = -math.inf
        self._observed = 0
        self._recent: float | None = None  # smoothed seconds per output token
        self._recent_call: float | None = None  # smoothed seconds per call
        self._best: float | None = None
        self.decisions: deque[Decision] = deque(maxlen=1000)
        self.cuts = 0

    @property
    def current(self) -> int:
        """The whole number of calls allowed in flight now."""
        return max(1, min(self.ceiling, int(self.limit)))

    def pause_left(self) -> float:
        """Seconds until new calls may go out (after a Retry-After); 0 when they may now."""
        return max(0.0, self._paused_until - self._clock())

    async def ready(self, sleep: Callable[[float], object] = asyncio.sleep) -> None:
        """Wait out a Retry-After pause, if one is running."""
        while (left := self.pause_left()) > 0:
            await sleep(left)  # type: ignore[misc]

    def on_success(self, started: float, latency_s: float, output_tokens: int = 0) -> None:
        """A call sent at ``started`` (clock time) answered after ``latency_s`` seconds."""
        if self.limit < self.ceiling:
            self._set(min(float(self.ceiling), self.limit + 1.0 / self.limit))
        self._observe(started, latency_s, output_tokens)

    def on_rate_limit(self, started: float, retry_after: float | None) -> None:
        """A call sent at ``started`` was answered 429, optionally with a Retry-After."""
        now = self._clock()
        pause = min(retry_after, MAX_PAUSE_S) if retry_after and retry_after > 0 else 0.0
        if pause:
            self._paused_until = max(self._paused_until, now + pause)
        if started < self._last_cut:
            return  # sent under the old limit: the same episode
        self._cut(self.backoff, "rate_limit", now, pause, floor=1.0)

    def _observe(self, started: float, latency_s: float, output_tokens: int) -> None:
        per_token = latency_s / max(1, output_tokens)
        a = self.smoothing
        if self._recent is None or self._recent_call is None:
            self._recent, self._recent_call = per_token, latency_s
        else:
            self._recent += a * (per_token - self._recent)
            self._recent_call += a * (latency_s - self._recent_call)
        self._observed += 1
        if self._observed < self.warmup:
            return
        best = self._best
        self._best = self._recent if best is None else min(self._recent, best * (1 + self.drift))
        grown = self._recent > self.latency_factor * self._best
        if grown and self._recent_call >= self.latency_floor_s and started >= self._last_cut:
            self._cut(self.latency_backoff, "latency", self._clock(), 0.0, floor=self.ceiling / 4)

    def _cut(self, factor: float, reason: str, now: float, pause: float, *, floor: float) -> None:
        before = self.current
        target = max(1.0, floor, self.limit * factor) if self.limit > floor else self.limit
        if target >= self.limit:
            return
        self._last_cut = now
        self.cuts += 1
        self._set(target)
        self.decisions.append(Decision(now, reason, before, self.current, pause))

    def _set(self, limit: float) -> None:
        before = self.current
        self.limit = limit
        if self._on_change is not None and self.current != before:
            self._on_change(self.current)
