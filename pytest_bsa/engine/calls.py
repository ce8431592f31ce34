"""The engine's calls to its endpoints: one call with its retries, under the run's stop.

Per role (``"model"``, ``"judge"``: the judge's panel members share the judge's) a call passes
the endpoint's health check (circuit breaker, probes), its client-side rate limit, a
concurrency slot and, in adaptive mode, the endpoint's pace and Retry-After pause; then the cost
limit is checked and the transport asked. A batching transport (``--bsa-batch``) skips the rate
limit, the slots and the pace: the provider schedules its batch. The run stops (every call not
yet made fails at once with :class:`RunStopped`) at ``--bsa-max-cost`` or when ``breaker``
calls in a row to one endpoint failed after all their retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from pytest_bsa.engine.adaptive import AdaptiveEndpoint
from pytest_bsa.engine.counters import EngineStats, estimate_tokens, priced
from pytest_bsa.engine.health import EndpointHealth
from pytest_bsa.engine.ratelimit import RateLimiter
from pytest_bsa.engine.retry import RetryPolicy, call_with_retries
from pytest_bsa.engine.scheduler import PrioritySlots
from pytest_bsa.engine.types import (
    BREAKER_KINDS,
    ChatRequest,
    RequestSpec,
    RunStopped,
    Transport,
    TransportError,
)
from pytest_bsa.models import Completion

ROLES = ("model", "judge")


class EndpointCalls:
    """The run's calls to the model and judge endpoints (see the module docstring)."""

    def __init__(
        self,
        *,
        model: RequestSpec,
        judge_spec: RequestSpec,
        concurrency: int,
        timeout: float,
        retry: RetryPolicy,
        stats: EngineStats,
        max_cost: float | None = None,
        breaker: int | None = None,
        adaptive: bool = False,
    ) -> None:
        self._specs = {"model": model, "judge": judge_spec}
        self.timeout = timeout
        self.retry = retry
        self.stats = stats
        self.max_cost = max_cost
        self.breaker = breaker
        self.stopped: str | None = None  # why the run stopped (cost limit or circuit breaker)
        self._consecutive = {role: 0 for role in ROLES}
        self._health = {role: EndpointHealth(concurrency) for role in ROLES}
        self._limiters = {role: RateLimiter(s.rpm, s.tpm) for role, s in self._specs.items()}
        self._concurrency = concurrency
        self._adaptive_mode = adaptive
        # Per role, when adaptive: its endpoint's pace and limit (shared by roles that use the
        # same endpoint; the roles' slots follow its limit). Set up on the loop.
        self.adaptive: dict[str, AdaptiveEndpoint] = {}
        self.slots: dict[str, PrioritySlots] = {}
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the engine's ``loop``: one pool of slots per endpoint role (judge calls never hold
        back the model's, and vice versa), the stop event, the adaptive controllers."""
        self._loop = loop
        self.slots = {role: PrioritySlots(self._concurrency) for role in ROLES}
        self._stop_event = asyncio.Event()
        if self._adaptive_mode:
            endpoints: dict[str, AdaptiveEndpoint] = {}
            for role, spec in self._specs.items():
                where = spec.api_base or spec.cache_base or spec.model.split("/", 1)[0]
                control = endpoints.setdefault(where, AdaptiveEndpoint(self._concurrency))
                control.follow(self.slots[role].resize)
                self.adaptive[role] = control

    # -- the run's stop --------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop the run: calls not yet made fail at once, retries stop waiting (thread-safe)."""
        if self.stopped is None:
            self.stopped = reason
            if self._stop_event is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self._stop_event.set)

    async def wait_for(self, event: asyncio.Event) -> None:
        """Wait for ``event``, or for the run to stop (then raise :class:`RunStopped`)."""
        assert self._stop_event is not None
        if not event.is_set():
            waits = {
                asyncio.ensure_future(event.wait()),
                asyncio.ensure_future(self._stop_event.wait()),
            }
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        if self.stopped is not None and not event.is_set():
            raise RunStopped(self.stopped)

    async def _sleep(self, seconds: float) -> None:
        """A retry's backoff, cut short when the run stops."""
        assert self._stop_event is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    async def _paced_sleep(self, seconds: float) -> None:
        """A wait for the adaptive pace or a Retry-After pause; raises once the run stops."""
        await self._sleep(seconds)
        if self.stopped is not None:
            raise RunStopped(self.stopped)

    def _committed_cost(self) -> float:
        """Spent so far plus the expected cost of the calls in flight."""
        return sum(
            c.cost_usd + c.in_flight * c.mean_cost for c in (self.stats.model, self.stats.judge)
        )

    # -- one call --------------------------------------------------------------------------

    async def call(
        self,
        role: str,
        transport: Transport,
        request: ChatRequest,
        spec: RequestSpec | None = None,
        *,
        priority: tuple[int, int] = (0, 0),
        scope: str | None = None,
    ) -> Completion:
        """One call with its retries. ``priority``: the slot queue's order (lower first).
        ``scope``: the answer scope a batching transport keys its stored batch requests by
        (None for the judge: verdicts are shared by every run)."""
        counters = self.stats.model if role == "model" else self.stats.judge
        spec = spec or self._specs[role]
        limiter = self._limiters[role]
        # A batching transport gathers every request into one provider batch: no slots, no
        # client-side rate limit, no adaptive limit (the provider schedules the batch).
        batched = bool(getattr(transport, "batched", False))
        slots = self.slots[role]
        control = None if batched else self.adaptive.get(role)
        health = self._health[role]
        troubled = False  # this call failed once (or probes a failing endpoint): counted

        async def attempt() -> Completion:
            nonlocal troubled
            while True:
                if self.stopped is not None:
                    raise RunStopped(self.stopped)
                if not troubled:
                    troubled = await health.admit(self._stop_event)
                if limiter.limited and not batched:
                    await limiter.acquire(estimate_tokens(request, counters.typical_completion))
                async with contextlib.nullcontext() if batched else slots.slot(priority):
                    if self.stopped is not None:
                        raise RunStopped(self.stopped)
                    if not troubled and health.holding:
                        continue  # the endpoint started failing while this call queued
                    sent_at = 0.0
                    if control is not None:  # the endpoint's pace and any Retry-After pause
                        sent_at = await control.ready(self._paced_sleep)
                    # Checked once a slot is held: counting what calls in flight will likely
                    # cost, so the limit holds to within one call's cost per concurrent call.
                    if self.max_cost is not None and self._committed_cost() >= self.max_cost:
                        self.stop(
                            f"the run reached its cost limit of ${self.max_cost:g} (--bsa-max-cost)"
                        )
                        raise RunStopped(str(self.stopped))
                    counters.calls += 1
                    counters.in_flight += 1
                    started = time.monotonic()
                    try:
                        if batched:  # the run's answer scope picks which stored batch rows apply
                            completion = await transport.complete(  # type: ignore[call-arg]
                                request, timeout=self.timeout, scope=scope
                            )
                        else:
                            completion = await transport.complete(request, timeout=self.timeout)
                    except TransportError as exc:
                        if control is not None and exc.kind == "rate_limit":
                            control.on_rate_limit(sent_at, exc.retry_after)
                        if exc.kind in BREAKER_KINDS:
                            health.failed()
                            if not troubled:
                                troubled = health.enter()
                        raise
                    finally:
                        counters.in_flight -= 1
                    if control is not None:
                        control.on_success(
                            started, completion.latency_s, completion.usage.completion_tokens, role
                        )
                health.succeeded()
                return priced(completion, spec.price, getattr(transport, "price_factor", 1.0))

        def on_retry(error: TransportError, attempt_no: int, delay: float) -> None:
            counters.retries += 1

        try:
            completion = await call_with_retries(
                attempt, self.retry, on_retry=on_retry, sleep=self._sleep
            )
        except RunStopped:
            raise
        except TransportError as exc:
            counters.failures += 1
            if exc.kind in BREAKER_KINDS:
                self._count_failure(role, spec, exc)
            raise
        finally:
            if troubled:
                health.leave()
        self._consecutive[role] = 0
        counters.add(completion)
        return completion

    def _count_failure(self, role: str, spec: RequestSpec, exc: TransportError) -> None:
        self._consecutive[role] += 1
        if self.breaker is not None and self._consecutive[role] >= self.breaker:
            where = exc.endpoint or spec.api_base or spec.model
            self.stop(
                f"the {role} endpoint {where} failed {self._consecutive[role]} calls in a row "
                f"after all retries (circuit breaker, --bsa-breaker {self.breaker}); last "
                f"error: {exc}"
            )
