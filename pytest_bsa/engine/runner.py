"""The per-run engine: samples every instance k times and judges each sample.

It owns one asyncio loop in a background thread. The plugin submits every selected instance in
test order at the start of the run, then each test blocks on its own instance's result, so the
run is bounded by the endpoints and the concurrency limit, not by pytest's test order.

A result is final for the run, endpoint errors included. The engine stops the whole run (every
call not yet made fails at once with :class:`RunStopped`) when ``--bsa-max-cost`` is reached or
when ``breaker`` calls in a row to one endpoint failed after all their retries; each call's
path (health, rate limit, slots, adaptive pace, batching, cost) is in ``calls.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from pytest_bsa.engine import judges
from pytest_bsa.engine.adaptive import AdaptiveEndpoint
from pytest_bsa.engine.answers import ModelAnswers
from pytest_bsa.engine.calls import EndpointCalls
from pytest_bsa.engine.counters import EngineStats
from pytest_bsa.engine.retry import RetryPolicy
from pytest_bsa.engine.scope import AnswerScope
from pytest_bsa.engine.types import (
    ChatRequest,
    RequestSpec,
    RunStopped,
    Transport,
    TransportError,
    refuses_structured_output,
)
from pytest_bsa.judge import JudgeKind
from pytest_bsa.models import Completion, Instance, InstanceResult, SampleResult
from pytest_bsa.rubrics import Rubric
from pytest_bsa.rubrics.bsa import BSA_RUBRIC

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("bsa_priority", default=0)
_sample: contextvars.ContextVar[tuple[str, int]] = contextvars.ContextVar(
    "bsa_sample", default=("", 0)
)


class Engine:
    """Runs instances through model and judge; thread-safe ``submit`` and ``result``."""

    def __init__(
        self,
        *,
        model: RequestSpec,
        judge_spec: RequestSpec,
        model_transport: Transport,
        judge_transport: Transport,
        samples: int,
        system_prompt: str | None,
        concurrency: int,
        timeout: float,
        retry: RetryPolicy,
        cache: Any = None,
        judge_max_reasks: int = 2,
        max_cost: float | None = None,
        rubric: Rubric = BSA_RUBRIC,
        breaker: int | None = None,
        scope: AnswerScope | None = None,
        fingerprint: str = "",
        panel: Sequence[tuple[RequestSpec, Transport]] = (),
        judge_samples: int = 1,
        adaptive: bool = False,
        template_opens_think: bool = False,
    ) -> None:
        self.model = model
        self.judge_spec = judge_spec
        self._model_transport = model_transport
        self._judge_transport = judge_transport
        self.samples = samples
        self.system_prompt = system_prompt
        self.timeout = timeout
        self.retry = retry
        self.cache = cache
        self.max_cost = max_cost
        self.breaker = breaker
        self.answers = ModelAnswers(
            cache,
            scope,
            fingerprint=fingerprint,
            identity=model.cache_base,
            call=self._call_model,
            wait_for=self._wait_for,
            template_opens_think=template_opens_think,
        )
        self.cut: set[str] = set()  # instances with samples the stop cut (never completed)
        self.stats = EngineStats()
        self.calls = EndpointCalls(
            model=model,
            judge_spec=judge_spec,
            concurrency=concurrency,
            timeout=timeout,
            retry=retry,
            stats=self.stats,
            max_cost=max_cost,
            breaker=breaker,
            adaptive=adaptive,
        )
        # The judge, or the first member of a panel; more members (--bsa-judge repeated) and
        # repeated asks (--bsa-judge-samples) make the engine's judge a Panel of them.
        self._members: list[tuple[RequestSpec, Transport]] = [(judge_spec, judge_transport)]
        self._members += list(panel)
        self._member_judges = judges.member_judges(
            self._members,
            self._judge_call,
            rubric=rubric,
            cache=cache,
            max_reasks=judge_max_reasks,
            on_cache_hit=self._count_cached_verdict,
        )
        self.judge: Any = judges.engine_judge(self._member_judges, judge_samples)
        self._futures: dict[str, Future[InstanceResult]] = {}
        self._next_priority = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="bsa-engine", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait()

    def _count_cached_verdict(self) -> None:
        self.stats.judge.cached += 1

    @property
    def stopped(self) -> str | None:
        """Why the run stopped (cost limit or circuit breaker), or None."""
        return self.calls.stopped

    @property
    def adaptive(self) -> dict[str, AdaptiveEndpoint]:
        """Per role, in adaptive mode: its endpoint's pace and concurrency limit."""
        return self.calls.adaptive

    @property
    def scope(self) -> AnswerScope | None:
        """The stored model answers this run may use (a refused resume starts a new scope)."""
        return self.answers.scope

    @property
    def resume_refused(self) -> str | None:
        """Why an interrupted run was not resumed, if it was not."""
        return self.answers.resume_refused

    # -- thread plumbing -------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.calls.start(self._loop)
        self.answers.start()
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    def submit(self, instances: Sequence[Instance]) -> None:
        """Queue instances (in the order their tests will run); already queued ones are kept."""
        with self._lock:
            for instance in instances:
                if instance.id in self._futures:
                    continue
                priority = self._next_priority
                self._next_priority += 1
                coro = self._run_instance(instance, priority)
                self._futures[instance.id] = asyncio.run_coroutine_threadsafe(coro, self._loop)

    def future(self, instance: Instance) -> Future[InstanceResult]:
        """The pending or final result of ``instance`` (submitting it if needed).

        A result is final for the run, endpoint errors included: the samples already had all
        their retries, and a test rerun (pytest-rerunfailures) must not pay for them again.
        """
        self.submit([instance])
        return self._futures[instance.id]

    def result(self, instance: Instance, timeout: float | None = None) -> InstanceResult:
        """Block until ``instance`` is sampled and judged."""
        return self.future(instance).result(timeout)

    def batch_lines(self) -> list[str]:
        """Progress lines of the batches the run waits for (none without batch mode)."""
        transports = [
            t
            for t in (self._model_transport, *(t for _, t in self._members))
            if hasattr(t, "status_lines")
        ]
        if not transports or not self._thread.is_alive():
            return []

        async def collect() -> list[str]:  # on the loop: the batch state lives there
            return [
                line for t in {id(t): t for t in transports}.values() for line in t.status_lines()
            ]

        try:
            return asyncio.run_coroutine_threadsafe(collect(), self._loop).result(timeout=5)
        except Exception:  # progress output must never stop the run
            return []

    def close(self) -> None:
        """Cancel what is in flight, close the transports, stop the loop."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            transports = (self._model_transport, *(t for _, t in self._members))
            for transport in {id(t): t for t in transports}.values():
                await transport.aclose()

        # Closing must never hide the run's own outcome.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()  # release its selector and self-pipe (no ResourceWarning)

    # -- the pipeline ----------------------------------------------------------------------

    async def _run_instance(self, instance: Instance, priority: int) -> InstanceResult:
        _priority.set(priority)
        samples = await asyncio.gather(
            *(self._run_sample(instance, index) for index in range(self.samples))
        )
        return InstanceResult(instance=instance, samples=tuple(samples))

    def judge_output(
        self, instance: Instance, completion: Completion, index: int = 0
    ) -> Future[SampleResult]:
        """Judge a model output that is already known (no model call): the judge-check on
        labelled cases and the re-judging of a saved run. Thread-safe; errors as in a run."""
        with self._lock:
            priority = self._next_priority
            self._next_priority += 1
        coro = self._judge_only(instance, completion, index, priority)
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _judge_only(
        self, instance: Instance, completion: Completion, index: int, priority: int
    ) -> SampleResult:
        _priority.set(priority)
        _sample.set((instance.id, index))
        return await judges.judge_known_output(self.judge, instance, completion, index)

    def model_request(self, instance: Instance, index: int) -> ChatRequest:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": instance.query})
        return ChatRequest(
            model=self.model.model,
            messages=tuple(messages),
            api_base=self.model.api_base,
            params=self.model.params,
            headers={"X-BSA-Instance": instance.id, "X-BSA-Sample": str(index)},
        )

    async def _run_sample(self, instance: Instance, index: int) -> SampleResult:
        _sample.set((instance.id, index))
        request = self.model_request(instance, index)
        completion: Completion | None = None
        try:
            completion = await self._complete_model(request, index)
            judgement = await self.judge.judge(instance, completion)
        except RunStopped as exc:
            self.cut.add(instance.id)
            return SampleResult(index=index, completion=completion, error=str(exc))
        except TransportError as exc:
            return SampleResult(index=index, completion=completion, error=str(exc))
        except Exception as exc:  # a client library's own failure: keep the run going, say what
            return SampleResult(
                index=index, completion=completion, error=judges.client_failure(exc)
            )
        return SampleResult(index=index, completion=completion, judgement=judgement)

    async def _complete_model(self, request: ChatRequest, index: int) -> Completion:
        return await self.answers.complete(request, index, self._count_cached_answer)

    def _count_cached_answer(self) -> None:
        self.stats.model.cached += 1

    async def _call_model(self, request: ChatRequest, scope: str | None) -> Completion:
        return await self._call("model", self._model_transport, request, scope=scope)

    async def _wait_for(self, event: asyncio.Event) -> None:
        """Wait for ``event``, or for the run to stop (then raise :class:`RunStopped`)."""
        await self.calls.wait_for(event)

    def stop(self, reason: str) -> None:
        """Stop the run: calls not yet made fail at once, retries stop waiting (thread-safe)."""
        self.calls.stop(reason)

    async def _judge_call(
        self,
        messages: tuple[dict[str, Any], ...],
        response_format: dict[str, Any] | None,
        kind: JudgeKind,
        *,
        member: int = 0,
    ) -> Completion:
        spec, transport = self._members[member]
        request = judges.judge_request(spec, messages, response_format, kind, _sample.get())
        try:
            return await self._call("judge", transport, request, spec)
        except TransportError as exc:
            if response_format is None or not refuses_structured_output(exc):
                raise
            # The provider refuses structured output: ask for JSON in text for the rest of the run.
            self._member_judges[member].structured = False
            plain = request.model_copy(update={"response_format": None})
            return await self._call("judge", transport, plain, spec)

    async def _call(
        self,
        role: str,
        transport: Transport,
        request: ChatRequest,
        spec: RequestSpec | None = None,
        *,
        scope: str | None = None,
    ) -> Completion:
        """One call with its retries, the judge's after the model's of the same instance."""
        priority = (_priority.get(), 1 if role == "judge" else 0)
        return await self.calls.call(role, transport, request, spec, priority=priority, scope=scope)
