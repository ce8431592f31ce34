"""The per-run engine: samples every instance k times and judges each sample.

It owns one asyncio loop in a background thread. The plugin submits every selected instance in
test order at the start of the run, then each test blocks on its own instance's result, so the
run is bounded by the endpoints and the concurrency limit, not by pytest's test order.

A result is final for the run, endpoint errors included. The engine stops the whole run (every
call not yet made fails at once with :class:`RunStopped`) when ``--bsa-max-cost`` is reached or
when ``breaker`` calls in a row to one endpoint failed after all their retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from pytest_bsa.engine.cache import AnswerScope
from pytest_bsa.engine.health import EndpointHealth
from pytest_bsa.engine.ratelimit import RateLimiter
from pytest_bsa.engine.retry import RetryPolicy, call_with_retries
from pytest_bsa.engine.scheduler import PrioritySlots
from pytest_bsa.engine.types import ChatRequest, Transport, TransportError
from pytest_bsa.judge import Judge, JudgeKind, judge_replicate
from pytest_bsa.models import Completion, Instance, InstanceResult, SampleResult
from pytest_bsa.reasoning import split_template_opened
from pytest_bsa.rubrics import Rubric
from pytest_bsa.rubrics.bsa import BSA_RUBRIC

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("bsa_priority", default=0)
_sample: contextvars.ContextVar[tuple[str, int]] = contextvars.ContextVar(
    "bsa_sample", default=("", 0)
)


@dataclass
class CallCounters:
    """Totals for one role (model or judge) in this process."""

    calls: int = 0
    cached: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    completed: int = 0
    in_flight: int = 0

    @property
    def mean_cost(self) -> float:
        return self.cost_usd / self.completed if self.completed else 0.0

    @property
    def typical_completion(self) -> int:
        """Mean completion tokens so far (512 before the first answer), for --bsa-tpm."""
        return self.completion_tokens // self.completed if self.completed else 512

    def add(self, completion: Completion) -> None:
        self.completed += 1
        usage = completion.usage
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        if usage.cost_usd is None:
            self.cost_known = False
        else:
            self.cost_usd += usage.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class EngineStats:
    model: CallCounters = field(default_factory=CallCounters)
    judge: CallCounters = field(default_factory=CallCounters)
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class RequestSpec:
    """How to reach one role's endpoint."""

    model: str
    api_base: str | None
    params: dict[str, Any]
    cache_base: str | None = None  # the endpoint's identity in cache keys (default: api_base)
    price: tuple[float, float] | None = None  # USD per million input, output tokens
    rpm: float | None = None
    tpm: float | None = None


class RunStopped(TransportError):
    """The run was stopped (cost limit or circuit breaker): the call was not made."""

    def __init__(self, reason: str) -> None:
        super().__init__("client", f"not run: {reason}")
        self.reason = reason


# Final failures that say the endpoint itself is in trouble (not one request's problem).
BREAKER_KINDS: frozenset[str] = frozenset(
    {"server", "connection", "timeout", "bad_response", "rate_limit", "auth"}
)


def served_identity(completion: Completion) -> tuple[str | None, str | None]:
    """What the endpoint said it served: its ``model`` and ``system_fingerprint``."""
    return completion.served_model, completion.system_fingerprint


_SECRETISH = re.compile(r"(?i)(bearer\s+|sk-|api[_-]?key[=:]\s*)[^\s'\",}]+")


def _redact(message: str) -> str:
    """An unexpected library error, one line, with anything key-like masked."""
    return _SECRETISH.sub(r"\1***", " ".join(message.split()))[:300]


_STRUCTURED_WORDS = ("response_format", "json_schema", "structured output", "response format")


def refuses_structured_output(error: TransportError) -> bool:
    """A 4xx that says the provider does not support the JSON-schema ``response_format``."""
    text = str(error).lower()
    return error.kind == "client" and any(word in text for word in _STRUCTURED_WORDS)


def _priced(completion: Completion, price: tuple[float, float] | None) -> Completion:
    if price is None:
        return completion
    usage = completion.usage
    cost = (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6
    return completion.model_copy(update={"usage": usage.model_copy(update={"cost_usd": cost})})


def _estimate_tokens(request: ChatRequest, typical_completion: int) -> int:
    """Tokens a call will use, for --bsa-tpm: ~4 characters per prompt token."""
    chars = sum(len(str(m.get("content", ""))) for m in request.messages)
    return chars // 4 + typical_completion


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
        template_opens_think: bool = False,
    ) -> None:
        self.model = model
        # --bsa-think-tags=template: the model's chat template opens <think> (answers are
        # stored as the transport split them and read this way when used).
        self.template_opens_think = template_opens_think
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
        self.scope = scope
        self.fingerprint = fingerprint  # the run's settings fingerprint (cache run records)
        self.stopped: str | None = None  # why the run stopped (cost limit or circuit breaker)
        self.resume_refused: str | None = None  # why an interrupted run was not resumed
        self.cut: set[str] = set()  # instances with samples the stop cut (never completed)
        self._consecutive = {"model": 0, "judge": 0}
        self._health = {role: EndpointHealth(concurrency) for role in ("model", "judge")}
        self._stop_event: asyncio.Event | None = None
        self._verified: asyncio.Event | None = None  # resume: the served model was checked
        self._probe_running = False
        self._identity_recorded = False
        self._limiters = {
            "model": RateLimiter(model.rpm, model.tpm),
            "judge": RateLimiter(judge_spec.rpm, judge_spec.tpm),
        }
        self._concurrency = concurrency
        self.stats = EngineStats()
        # The judge, or the first member of a panel; more members (--bsa-judge repeated) and
        # repeated asks (--bsa-judge-samples) make the engine's judge a Panel of them.
        self._members: list[tuple[RequestSpec, Transport]] = [(judge_spec, judge_transport)]
        self._members += list(panel)
        self._member_judges = [
            Judge(
                functools.partial(self._judge_call, member=i),
                judge_model=spec.model,
                rubric=rubric,
                params=spec.params,
                judge_endpoint=spec.cache_base or spec.api_base,
                cache=cache,
                max_reasks=judge_max_reasks,
                on_cache_hit=self._count_cached_verdict,
            )
            for i, (spec, _) in enumerate(self._members)
        ]
        self.judge: Any = self._member_judges[0]
        if len(self._member_judges) > 1 or judge_samples > 1:
            from pytest_bsa.panel import Panel

            self.judge = Panel(self._member_judges, samples=judge_samples)
        self._futures: dict[str, Future[InstanceResult]] = {}
        self._next_priority = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._slots: dict[str, PrioritySlots] = {}
        self._thread = threading.Thread(target=self._serve, name="bsa-engine", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait()

    def _count_cached_verdict(self) -> None:
        self.stats.judge.cached += 1

    # -- thread plumbing -------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        # One pool per endpoint role: judge calls never hold back the model's (and vice versa).
        self._slots = {role: PrioritySlots(self._concurrency) for role in ("model", "judge")}
        self._stop_event = asyncio.Event()
        if self.scope is not None and self.scope.resumed and self.scope.identity is not None:
            self._verified = asyncio.Event()
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
        try:
            judgement = await self.judge.judge(instance, completion)
        except TransportError as exc:
            return SampleResult(index=index, completion=completion, error=str(exc))
        except Exception as exc:  # a client library's own failure: say what, keep going
            error = f"unexpected {type(exc).__name__} in the client: {_redact(str(exc))}"
            return SampleResult(index=index, completion=completion, error=error)
        return SampleResult(index=index, completion=completion, judgement=judgement)

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
            if self.template_opens_think:
                completion = split_template_opened(completion)
            judgement = await self.judge.judge(instance, completion)
        except RunStopped as exc:
            self.cut.add(instance.id)
            return SampleResult(index=index, completion=completion, error=str(exc))
        except TransportError as exc:
            return SampleResult(index=index, completion=completion, error=str(exc))
        except Exception as exc:  # a client library's own failure: keep the run going, say what
            error = f"unexpected {type(exc).__name__} in the client: {_redact(str(exc))}"
            return SampleResult(index=index, completion=completion, error=error)
        return SampleResult(index=index, completion=completion, judgement=judgement)

    def _answer_key(self, request: ChatRequest, index: int, scoped: bool = True) -> str:
        """The answer's key in this run's scope (``scoped``), or in the scope every run shares
        (the latest answer to the request, read by ``--bsa-answers=reuse``)."""
        from pytest_bsa.engine.cache import completion_key

        identity = self.model.cache_base or request.api_base
        scope = self.scope.key_scope if self.scope is not None and scoped else None
        return completion_key(request.model_copy(update={"api_base": identity}), index, scope)

    async def _complete_model(self, request: ChatRequest, index: int) -> Completion:
        if self.cache is None:
            return await self._call("model", self._model_transport, request)
        if self._verified is not None and not self._verified.is_set():
            if not self._probe_running:
                return await self._probe(request, index)
            await self._wait_for(self._verified)
        key = self._answer_key(request, index)
        hit = self.cache.get_completion(key)
        if hit is not None:
            self.stats.model.cached += 1
            return hit
        completion = await self._call("model", self._model_transport, request)
        self._store_answer(request, index, completion)
        return completion

    def _store_answer(self, request: ChatRequest, index: int, completion: Completion) -> None:
        """Store under this run's key and as the latest answer to the request (for reuse)."""
        key = self._answer_key(request, index)
        self.cache.put_completion(key, completion, model=request.model)
        shared = self._answer_key(request, index, scoped=False)
        if shared != key:
            self.cache.put_completion(shared, completion, model=request.model)
        scope = self.scope
        if scope is not None and not scope.resumed and not self._identity_recorded:
            self._identity_recorded = True
            self.cache.set_run_identity(scope.run_id, *served_identity(completion))

    async def _probe(self, request: ChatRequest, index: int) -> Completion:
        """Resuming: sample once afresh and compare what the endpoint serves now with what the
        interrupted run saw. A different model or system fingerprint starts a new run instead
        (no stored answer of the old checkpoint is used); the other calls wait for the check."""
        assert self.scope is not None and self._verified is not None
        self._probe_running = True
        try:
            completion = await self._call("model", self._model_transport, request)
        except TransportError as exc:
            # Unchecked is not the same: do not resume (the other calls sample afresh).
            self._refuse_resume(f"the served model could not be checked ({exc})")
            raise
        seen, expected = served_identity(completion), self.scope.identity
        if expected is not None and (seen[0] or "", seen[1]) != (expected[0] or "", expected[1]):
            self._refuse_resume(
                f"the endpoint now serves {seen[0]!r} (system_fingerprint {seen[1]!r}), the "
                f"interrupted run saw {expected[0]!r} ({expected[1]!r})"
            )
        self._verified.set()
        self._store_answer(request, index, completion)
        return completion

    def _refuse_resume(self, why: str) -> None:
        assert self.scope is not None and self._verified is not None
        self.resume_refused = f"{why}: not resumed, every answer sampled afresh"
        self.scope = self.scope.fresh()
        self.cache.record_run(self.scope, self.fingerprint)
        self._verified.set()

    async def _wait_for(self, event: asyncio.Event) -> None:
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

    def stop(self, reason: str) -> None:
        """Stop the run: calls not yet made fail at once, retries stop waiting (thread-safe)."""
        if self.stopped is None:
            self.stopped = reason
            if self._stop_event is not None:
                self._loop.call_soon_threadsafe(self._stop_event.set)

    async def _sleep(self, seconds: float) -> None:
        """A retry's backoff, cut short when the run stops."""
        assert self._stop_event is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    async def _judge_call(
        self,
        messages: tuple[dict[str, Any], ...],
        response_format: dict[str, Any] | None,
        kind: JudgeKind,
        *,
        member: int = 0,
    ) -> Completion:
        instance_id, index = _sample.get()
        spec, transport = self._members[member]
        headers = {"X-BSA-Instance": instance_id, "X-BSA-Sample": str(index), "X-BSA-Judge": kind}
        replicate = judge_replicate.get()
        if replicate:
            headers["X-BSA-Judge-Replicate"] = str(replicate)
        request = ChatRequest(
            model=spec.model,
            messages=messages,
            api_base=spec.api_base,
            params=spec.params,
            response_format=response_format,
            headers=headers,
        )
        try:
            return await self._call("judge", transport, request, spec)
        except TransportError as exc:
            if response_format is None or not refuses_structured_output(exc):
                raise
            # The provider refuses structured output: ask for JSON in text for the rest of the run.
            self._member_judges[member].structured = False
            plain = request.model_copy(update={"response_format": None})
            return await self._call("judge", transport, plain, spec)

    def _committed_cost(self) -> float:
        """Spent so far plus the expected cost of the calls in flight."""
        return sum(
            c.cost_usd + c.in_flight * c.mean_cost for c in (self.stats.model, self.stats.judge)
        )

    async def _call(
        self,
        role: str,
        transport: Transport,
        request: ChatRequest,
        spec: RequestSpec | None = None,
    ) -> Completion:
        counters = self.stats.model if role == "model" else self.stats.judge
        if spec is None:
            spec = self.model if role == "model" else self.judge_spec
        limiter = self._limiters[role]
        priority = (_priority.get(), 1 if role == "judge" else 0)
        slots = self._slots[role]
        health = self._health[role]
        troubled = False  # this call failed once (or probes a failing endpoint): counted

        async def attempt() -> Completion:
            nonlocal troubled
            while True:
                if self.stopped is not None:
                    raise RunStopped(self.stopped)
                if not troubled:
                    troubled = await health.admit(self._stop_event)
                if limiter.limited:
                    await limiter.acquire(_estimate_tokens(request, counters.typical_completion))
                async with slots.slot(priority):
                    if self.stopped is not None:
                        raise RunStopped(self.stopped)
                    if not troubled and health.holding:
                        continue  # the endpoint started failing while this call queued
                    # Checked once a slot is held: counting what calls in flight will likely
                    # cost, so the limit holds to within one call's cost per concurrent call.
                    if self.max_cost is not None and self._committed_cost() >= self.max_cost:
                        self.stop(
                            f"the run reached its cost limit of ${self.max_cost:g} (--bsa-max-cost)"
                        )
                        raise RunStopped(str(self.stopped))
                    counters.calls += 1
                    counters.in_flight += 1
                    try:
                        completion = await transport.complete(request, timeout=self.timeout)
                    except TransportError as exc:
                        if exc.kind in BREAKER_KINDS:
                            health.failed()
                            if not troubled:
                                troubled = health.enter()
                        raise
                    finally:
                        counters.in_flight -= 1
                health.succeeded()
                return _priced(completion, spec.price)

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
