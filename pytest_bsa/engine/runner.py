"""The per-run engine: samples every instance k times and judges each sample.

It owns one asyncio loop in a background thread. The plugin submits every selected instance in
test order at the start of the run, then each test blocks on its own instance's result, so the
run is bounded by the endpoints and the concurrency limit, not by pytest's test order.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from pytest_bsa.engine.ratelimit import RateLimiter
from pytest_bsa.engine.retry import RetryPolicy, call_with_retries
from pytest_bsa.engine.scheduler import PrioritySlots
from pytest_bsa.engine.types import ChatRequest, Transport, TransportError
from pytest_bsa.judge import Judge, JudgeKind
from pytest_bsa.models import Completion, Instance, InstanceResult, SampleResult
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


class CostLimitReached(TransportError):
    """``--bsa-max-cost`` was reached: the call was not made."""

    def __init__(self, limit: float) -> None:
        super().__init__(
            "client", f"not run: the run reached its cost limit of ${limit:g} (--bsa-max-cost)"
        )


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
        self._limiters = {
            "model": RateLimiter(model.rpm, model.tpm),
            "judge": RateLimiter(judge_spec.rpm, judge_spec.tpm),
        }
        self._concurrency = concurrency
        self.stats = EngineStats()
        self.judge = Judge(
            self._judge_call,
            judge_model=judge_spec.model,
            rubric=rubric,
            params=judge_spec.params,
            judge_endpoint=judge_spec.cache_base or judge_spec.api_base,
            cache=cache,
            max_reasks=judge_max_reasks,
            on_cache_hit=self._count_cached_verdict,
        )
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
        """The pending result of ``instance`` (submitting it if needed).

        A finished result with endpoint errors is dropped and run again, so a rerun of the test
        (pytest-rerunfailures) calls again for the failed samples (the cache serves the rest).
        """
        with self._lock:
            done = self._futures.get(instance.id)
            if (
                done is not None
                and done.done()
                and (done.exception() is not None or done.result().errors)
            ):
                del self._futures[instance.id]
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
            for transport in {
                id(t): t for t in (self._model_transport, self._judge_transport)
            }.values():
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
        except TransportError as exc:
            return SampleResult(index=index, completion=completion, error=str(exc))
        except Exception as exc:  # a client library's own failure: keep the run going, say what
            error = f"unexpected {type(exc).__name__} in the client: {_redact(str(exc))}"
            return SampleResult(index=index, completion=completion, error=error)
        return SampleResult(index=index, completion=completion, judgement=judgement)

    async def _complete_model(self, request: ChatRequest, index: int) -> Completion:
        key = None
        if self.cache is not None:
            from pytest_bsa.engine.cache import completion_key

            identity = self.model.cache_base or request.api_base
            key = completion_key(request.model_copy(update={"api_base": identity}), index)
            hit = self.cache.get_completion(key)
            if hit is not None:
                self.stats.model.cached += 1
                return hit
        completion = await self._call("model", self._model_transport, request)
        if key is not None:
            self.cache.put_completion(key, completion, model=request.model)
        return completion

    async def _judge_call(
        self,
        messages: tuple[dict[str, Any], ...],
        response_format: dict[str, Any] | None,
        kind: JudgeKind,
    ) -> Completion:
        instance_id, index = _sample.get()
        request = ChatRequest(
            model=self.judge_spec.model,
            messages=messages,
            api_base=self.judge_spec.api_base,
            params=self.judge_spec.params,
            response_format=response_format,
            headers={
                "X-BSA-Instance": instance_id,
                "X-BSA-Sample": str(index),
                "X-BSA-Judge": kind,
            },
        )
        try:
            return await self._call("judge", self._judge_transport, request)
        except TransportError as exc:
            if response_format is None or not refuses_structured_output(exc):
                raise
            # The provider refuses structured output: ask for JSON in text for the rest of the run.
            self.judge.structured = False
            plain = request.model_copy(update={"response_format": None})
            return await self._call("judge", self._judge_transport, plain)

    def _committed_cost(self) -> float:
        """Spent so far plus the expected cost of the calls in flight."""
        return sum(
            c.cost_usd + c.in_flight * c.mean_cost for c in (self.stats.model, self.stats.judge)
        )

    async def _call(self, role: str, transport: Transport, request: ChatRequest) -> Completion:
        counters = self.stats.model if role == "model" else self.stats.judge
        spec = self.model if role == "model" else self.judge_spec
        limiter = self._limiters[role]
        priority = (_priority.get(), 1 if role == "judge" else 0)
        slots = self._slots[role]

        async def attempt() -> Completion:
            if limiter.limited:
                await limiter.acquire(_estimate_tokens(request, counters.typical_completion))
            async with slots.slot(priority):
                # Checked once a slot is held: counting what calls in flight will likely cost,
                # so the limit holds to within one call's cost per concurrent call.
                if self.max_cost is not None and self._committed_cost() >= self.max_cost:
                    raise CostLimitReached(self.max_cost)
                counters.calls += 1
                counters.in_flight += 1
                try:
                    completion = await transport.complete(request, timeout=self.timeout)
                finally:
                    counters.in_flight -= 1
            return _priced(completion, spec.price)

        def on_retry(error: TransportError, attempt_no: int, delay: float) -> None:
            counters.retries += 1

        try:
            completion = await call_with_retries(attempt, self.retry, on_retry=on_retry)
        except TransportError:
            counters.failures += 1
            raise
        counters.add(completion)
        return completion
