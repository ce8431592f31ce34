"""Backpressure for an endpoint that fails every call (used by the engine's event loop)."""

from __future__ import annotations

import asyncio


class EndpointHealth:
    """Backpressure for an endpoint that fails every call.

    Once ``window`` attempts in a row have failed (no success in between), calls that have not
    failed yet wait while some call is still working through its retries: a dead endpoint then
    sees at most ``2 * window - 1`` calls (those in flight, and those that took a freed slot
    before the streak was complete) with their retries instead of every sample of the run, and
    the circuit breaker decides on those. One call is let through as a probe whenever no call is in
    its retries; any success lets every waiting call go.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.failures = 0  # attempts failed in a row
        self.troubled = 0  # calls in their retries, or probing
        self._changed: asyncio.Event | None = None

    @property
    def holding(self) -> bool:
        return self.failures >= self.window and self.troubled > 0

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def admit(self, stop: asyncio.Event | None) -> bool:
        """Wait until a new call may go; True when it goes as the failing endpoint's probe."""
        while self.holding and not (stop is not None and stop.is_set()):
            if self._changed is None:
                self._changed = asyncio.Event()
            waits = [asyncio.ensure_future(self._changed.wait())]
            if stop is not None:
                waits.append(asyncio.ensure_future(stop.wait()))
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        if self.failures >= self.window:
            self.troubled += 1
            return True
        return False

    def failed(self) -> None:
        self.failures += 1

    def enter(self) -> bool:
        self.troubled += 1
        return True

    def leave(self) -> None:
        self.troubled -= 1
        self._notify()

    def succeeded(self) -> None:
        if self.failures:
            self.failures = 0
            self._notify()
