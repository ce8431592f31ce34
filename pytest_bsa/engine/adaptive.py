"""Adaptive limits for one endpoint: additive increase, multiplicative decrease (AIMD).

An endpoint starts unpaced at the ceiling concurrency (``--bsa-concurrency``), so a run that meets
no rate limit and no slowdown behaves exactly like a fixed one. Two signals lower its limits:

- **a 429** says the endpoint is over its request *rate*. All calls to the endpoint pause for the
  server's Retry-After. The first 429 sets a pace (requests per second) at the rate of calls sent
  over the last second that were not refused (an over-estimate at first, since calls in flight
  count as accepted; the cuts correct it within a few dozen calls); each later 429 episode
  multiplies the pace by ``rate_backoff``, and successes raise it again by ``rate_step`` times the
  pace before the last cut per second (a cut is made up in about a second). Every call, a retry
  too, waits for its turn under the pace, so refusals stay rare. Cutting concurrency instead
  would not do: a judge that answers in milliseconds sends hundreds of calls a second at any
  concurrency, and the refusals it causes would squeeze the slow model calls sharing the
  endpoint down to a handful (measured: benchmarks/ratelimit.py).
- **latency growth** says the endpoint is queueing our calls: when a role's recent latency per
  output token is ``latency_factor`` times its best, on calls that take ``latency_floor_s`` or
  more (fast local servers never trip it), concurrency is multiplied by ``latency_backoff``,
  never below a quarter of the ceiling. Every success adds ``1 / limit`` back (one slot per
  round trip at full use). The best latency drifts slowly upward, so a provider that stays slower
  becomes the new normal instead of squeezing the run.

One cut per congestion episode: a failure of a call sent before the last cut says nothing new.
Pure logic with an injectable clock; ``ready`` is the only coroutine.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_PAUSE_S = 300.0  # the longest Retry-After honoured (as in retry.py)
MIN_RATE = 0.1  # requests per second: the pace never stops a run entirely


@dataclass(frozen=True)
class Decision:
    """One change of a limit, for tests and diagnostics."""

    at: float
    reason: str  # "rate_limit" (the pace) | "latency" (the concurrency)
    before: float
    after: float
    pause_s: float = 0.0


def _keep_last_second(times: deque[float], now: float) -> None:
    while times and times[0] < now - 1.0:
        times.popleft()


class _LatencyWatch:
    """Whether one role's latency per output token has grown well past its best."""

    def __init__(self, factor: float, floor_s: float, smoothing: float, drift: float, warmup: int):
        self.factor, self.floor_s, self.smoothing = factor, floor_s, smoothing
        self.drift, self.warmup = drift, warmup
        self.seen = 0
        self.per_token: float | None = None  # smoothed seconds per output token
        self.per_call: float | None = None  # smoothed seconds per call
        self.best: float | None = None

    def grown(self, latency_s: float, output_tokens: int) -> bool:
        per_token = latency_s / max(1, output_tokens)
        if self.per_token is None or self.per_call is None:
            self.per_token, self.per_call = per_token, latency_s
        else:
            self.per_token += self.smoothing * (per_token - self.per_token)
            self.per_call += self.smoothing * (latency_s - self.per_call)
        self.seen += 1
        if self.seen < self.warmup:
            return False
        self.best = (
            self.per_token
            if self.best is None
            else min(self.per_token, self.best * (1 + self.drift))
        )
        return self.per_token > self.factor * self.best and self.per_call >= self.floor_s


class AdaptiveEndpoint:
    """The pace and the concurrency limit of one endpoint (shared by the roles that use it)."""

    def __init__(
        self,
        ceiling: int,
        *,
        rate_backoff: float = 0.9,
        rate_step: float = 0.1,
        latency_backoff: float = 0.9,
        latency_factor: float = 2.0,
        latency_floor_s: float = 0.5,
        smoothing: float = 0.1,
        drift: float = 0.002,
        warmup: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ceiling < 1:
            raise ValueError(f"ceiling must be at least 1, got {ceiling}")
        if not (0 < rate_backoff < 1 and 0 < latency_backoff < 1):
            raise ValueError("backoff factors must be between 0 and 1")
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.rate: float | None = None  # requests per second; None: unpaced
        self.rate_backoff = rate_backoff
        self.rate_step = rate_step
        self._rate_ref = 0.0  # the pace before the last cut: the scale of the additive step
        self.latency_backoff = latency_backoff
        self._watch_args = (latency_factor, latency_floor_s, smoothing, drift, warmup)
        self._watches: dict[str, _LatencyWatch] = {}
        self._clock = clock
        self._listeners: list[Callable[[int], None]] = []
        self._last_rate_cut = -math.inf
        self._last_limit_cut = -math.inf
        self._paused_until = -math.inf
        self._last_send = -math.inf
        self._lock: asyncio.Lock | None = None
        self._sent: deque[float] = deque()  # send times within the last second
        self._refused: deque[float] = deque()  # 429 times within the last second
        self._first_call: float | None = None
        self.decisions: deque[Decision] = deque(maxlen=1000)
        self.rate_cuts = 0
        self.limit_cuts = 0

    def follow(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(current)`` whenever the concurrency limit changes."""
        self._listeners.append(listener)

    @property
    def current(self) -> int:
        """The whole number of calls allowed in flight now (per role)."""
        return max(1, min(self.ceiling, int(self.limit)))

    def pause_left(self) -> float:
        """Seconds until new calls may go out after a Retry-After; 0 when they may now."""
        return max(0.0, self._paused_until - self._clock())

    async def ready(self, sleep: Callable[[float], object] = asyncio.sleep) -> float:
        """Wait for this call's turn under the pace and any Retry-After pause; returns the
        clock time it went out (pass it to :meth:`on_rate_limit`).

        Unpaced and unpaused, this returns at once. Otherwise callers queue first come, first
        served; the head re-computes its wait under the current pace and pause, so a cut or a
        new Retry-After applies to the very next call.
        """
        now = self._clock()
        if self._first_call is None:
            self._first_call = now
        if self.rate is not None or self._paused_until > now:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                while (wait := self._wait(self._clock())) > 0:
                    await sleep(wait)  # type: ignore[misc]
                now = self._clock()
                self._last_send = now
        _keep_last_second(self._sent, now)
        self._sent.append(now)
        return now

    def _wait(self, now: float) -> float:
        wait = self._paused_until - now
        if self.rate is not None:
            wait = max(wait, self._last_send + 1.0 / self.rate - now)
        return wait

    def on_success(
        self, started: float, latency_s: float, output_tokens: int = 0, role: str = ""
    ) -> None:
        """A call of ``role`` sent at ``started`` (clock time) answered after ``latency_s``."""
        now = self._clock()
        if self.rate is not None:  # additive: about rate_step x the reference pace per second
            self.rate += self.rate_step * self._rate_ref / max(self.rate, MIN_RATE)
        if self.limit < self.ceiling:
            self._set_limit(min(float(self.ceiling), self.limit + 1.0 / self.limit))
        watch = self._watches.get(role)
        if watch is None:
            watch = self._watches[role] = _LatencyWatch(*self._watch_args)
        if watch.grown(latency_s, output_tokens) and started >= self._last_limit_cut:
            self._cut_limit(now)

    def on_rate_limit(self, sent_at: float, retry_after: float | None) -> None:
        """A call sent at ``sent_at`` (what :meth:`ready` returned) was answered 429, optionally
        with a Retry-After."""
        now = self._clock()
        _keep_last_second(self._refused, now)
        self._refused.append(now)
        pause = min(retry_after, MAX_PAUSE_S) if retry_after and retry_after > 0 else 0.0
        if pause:
            self._paused_until = max(self._paused_until, now + pause)
        if sent_at < self._last_rate_cut:
            return  # sent under the old pace: the same episode
        before = self.rate
        if before is None:  # pace at what the endpoint did not refuse over the last second
            _keep_last_second(self._sent, now)
            accepted = max(1, len(self._sent) - len(self._refused))
            window = min(1.0, max(now - (self._first_call or now), 0.01))
            after = max(1.0, accepted / window)
            self._rate_ref = after
        else:
            self._rate_ref = before
            after = max(MIN_RATE, before * self.rate_backoff)
        self.rate = after
        self._last_rate_cut = now
        self.rate_cuts += 1
        shown = math.inf if before is None else before
        self.decisions.append(Decision(now, "rate_limit", shown, after, pause))

    def _cut_limit(self, now: float) -> None:
        floor = max(1.0, self.ceiling / 4)
        target = max(floor, self.limit * self.latency_backoff)
        if target >= self.limit:
            return
        before = self.current
        self._last_limit_cut = now
        self.limit_cuts += 1
        self._set_limit(target)
        self.decisions.append(Decision(now, "latency", before, self.current))

    def _set_limit(self, limit: float) -> None:
        before = self.current
        self.limit = limit
        if self.current != before:
            for listener in self._listeners:
                listener(self.current)
