"""Retries with exponential backoff and jitter, honouring the server's Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pytest_bsa.engine.types import TransportError

T = TypeVar("T")

MAX_RETRY_AFTER = 300.0  # the longest server-requested wait we honour


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retryable ``TransportError``."""

    max_retries: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0
    jitter: float = 0.5  # each backoff is stretched by a random factor in [1, 1 + jitter]

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based).

        Backoff doubles per retry up to ``max_delay``. A server's ``retry_after`` is a floor,
        honoured even above ``max_delay`` up to 300 s, plus a little jitter so that many
        callers told the same wait do not all come back at once.
        """
        exponent = min(retry - 1, 60)
        backoff = self.base_delay * (2.0**exponent) * (1.0 + self.jitter * rng.random())
        backoff = min(self.max_delay, backoff)
        if retry_after is None or retry_after <= 0:
            return backoff
        spread = self.jitter * self.base_delay * rng.random()
        return max(backoff, min(MAX_RETRY_AFTER, retry_after + spread))


_JITTER = random.Random()  # shared: creating one per call cost ~3% of the engine's time


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[TransportError, int, float], None] | None = None,
) -> T:
    """Await ``call()``, retrying retryable ``TransportError``s per ``policy``.

    ``on_retry(error, retry_number, delay)`` runs before each wait (``retry_number`` is 1-based).
    Non-retryable errors propagate unchanged at once; when retries run out, the last error is
    re-raised with the number of attempts added to its message.
    """
    retry = 0
    while True:
        try:
            return await call()
        except TransportError as error:
            if not error.retryable:
                raise
            if retry >= policy.max_retries:
                attempts = retry + 1
                plural = "attempt" if attempts == 1 else "attempts"
                raise TransportError(
                    error.kind,
                    f"{error.message} (gave up after {attempts} {plural})",
                    endpoint=error.endpoint,
                    status=error.status,
                    retry_after=error.retry_after,
                ) from error
            retry += 1
            wait = policy.delay(retry, error.retry_after, rng or _JITTER)
            if on_retry is not None:
                on_retry(error, retry, wait)
            await sleep(wait)
