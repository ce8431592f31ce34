"""Client-side requests/minute and tokens/minute limits: callers queue, never fail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class _Bucket:
    """A token bucket refilled continuously at ``per_minute / 60`` per second.

    Its level may go negative (a large request borrows against the future), so a request larger
    than the bucket still gets through, and the long-run rate stays exact.
    """

    def __init__(self, per_minute: float, burst_seconds: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.level = min(self.capacity, self.level + elapsed * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` may be taken (0 when it may be taken now)."""
        needed = min(amount, self.capacity)  # a level of ``capacity`` admits anything
        wait = (needed - self.level) / self.rate
        # Within a microsecond counts as now: float rounding must not leave a wait too short
        # to move the clock, which would spin forever.
        return wait if wait > 1e-6 else 0.0


class RateLimiter:
    """Admit calls so that at most ``rpm`` requests and ``tpm`` tokens go out per minute.

    Waiters are served first come, first served. ``burst_seconds`` sets how much unused
    allowance may accumulate (one second's worth by default, at least one request).
    """

    def __init__(
        self,
        rpm: float | None,
        tpm: float | None,
        *,
        burst_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or unset, got {value}")
        if burst_seconds <= 0:
            raise ValueError(f"burst_seconds must be positive, got {burst_seconds}")
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._requests = _Bucket(rpm, burst_seconds, now) if rpm else None
        self._tokens = _Bucket(tpm, burst_seconds, now) if tpm else None
        self._lock: asyncio.Lock | None = None

    @property
    def limited(self) -> bool:
        return self._requests is not None or self._tokens is not None

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of ``tokens`` tokens may be sent, then account for it."""
        if not self.limited:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()  # FIFO: the head of the queue waits, the rest queue
        async with self._lock:
            while True:
                now = self._clock()
                wait = 0.0
                if self._requests is not None:
                    self._requests.refill(now)
                    wait = max(wait, self._requests.wait_for(1.0))
                if self._tokens is not None and tokens > 0:
                    self._tokens.refill(now)
                    wait = max(wait, self._tokens.wait_for(float(tokens)))
                if wait <= 0:
                    break
                await self._sleep(wait)
            if self._requests is not None:
                self._requests.level -= 1.0
            if self._tokens is not None and tokens > 0:
                self._tokens.level -= float(tokens)
