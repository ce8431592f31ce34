"""Batch mode: a transport that gathers the engine's calls into provider batches.

The engine issues calls as usual; :class:`BatchingTransport` holds each one, submits what has
gathered as one batch (OpenAI-compatible ``/v1/files`` + ``/v1/batches`` or Anthropic message
batches, see ``batch_openai.py`` and ``batch_anthropic.py``), polls it, and answers every waiting
call with its own completion or error. Caching, the judge, retries and reports are unchanged: a
failed request raises the same ``TransportError`` a direct call would, and a retry goes into the
next batch.

Each request's batch id and custom id are stored in the cache the moment the batch is created, so
a rerun after Ctrl-C, a kill or a CI timeout finds the batch and polls it instead of paying again.
A model request is keyed in its run's answer scope (the engine passes ``scope``, see
``AnswerScope``): only a rerun that resumes that interrupted run, or a run with
``--bsa-answers=reuse``, picks its batch up; a new run samples afresh in batches of its own. Judge
requests are shared by every run, as verdicts are. Rows are dropped once their answers were
delivered (at a clean close) or failed, so a later run asks afresh. Importing this module does not
import aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pytest_bsa.engine.cache import completion_key
from pytest_bsa.engine.transports import endpoint_of
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion

Phase = Literal["running", "done", "failed", "expired", "cancelled"]
BATCH_DISCOUNT = 0.5
QUIET_S = 1.0  # submit once no new call arrived for this long...
MAX_WAIT_S = 60.0  # ...or once the oldest call has waited this long
MAX_POLL_FAILURES = 8
_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KIND_LETTER = {"safety": "s", "reasoning": "r"}


@dataclass(frozen=True)
class BatchState:
    """One look at a provider batch."""

    batch_id: str
    status: str  # the provider's own word: "in_progress", "ended", ...
    phase: Phase
    total: int = 0
    done: int = 0
    failed: int = 0
    detail: str = ""  # why a batch failed
    handle: dict[str, Any] = field(default_factory=dict)  # where its results are


class BatchClient(Protocol):
    """One provider's batch API."""

    provider: str  # e.g. "OpenAI batch API"
    endpoint: str  # its base URL
    max_requests: int

    async def submit(self, entries: Sequence[tuple[str, ChatRequest]]) -> str: ...

    async def poll(self, batch_id: str) -> BatchState: ...

    async def results(self, state: BatchState) -> dict[str, Completion | TransportError]: ...

    async def aclose(self) -> None: ...


class BatchStore(Protocol):
    def batch_request(self, key: str) -> tuple[str, str] | None: ...

    def put_batch(
        self,
        batch_id: str,
        *,
        endpoint: str,
        provider: str,
        entries: list[tuple[str, str, str | None]],
    ) -> None: ...

    def forget_batch_requests(self, keys: list[str]) -> None: ...


class BatchLost(TransportError):
    """The batch could not be polled: not retried (that would pay twice); a rerun resumes it."""

    @property
    def retryable(self) -> bool:
        return False


def request_key(request: ChatRequest, scope: str | None = None) -> str:
    """The cache key of one request in a batch: endpoint, model, messages, params, format,
    sample index (from the ``X-BSA-Sample`` routing hint) and answer scope (a run id; None:
    shared by every run)."""
    try:
        sample = int(request.headers.get("X-BSA-Sample", "0"))
    except ValueError:
        sample = 0
    return completion_key(request, sample, scope)


def custom_id_for(key: str, request: ChatRequest) -> str:
    """``<digest>_<sample>_<m|s|r>_<instance>``: unique per request, and it carries the routing
    hints a batch line cannot send as headers. Falls back to the digest alone when the instance
    id does not fit the providers' ``[A-Za-z0-9_-]{1,64}``."""
    hints = request.headers
    kind = _KIND_LETTER.get(hints.get("X-BSA-Judge", ""), "m")
    full = f"{key[:24]}_{hints.get('X-BSA-Sample', '0')}_{kind}_{hints.get('X-BSA-Instance', '')}"
    return full if _CUSTOM_ID.match(full) and hints.get("X-BSA-Instance") else key[:64]


def routing_hints(custom_id: str) -> dict[str, str]:
    """The ``X-BSA-*`` hints a :func:`custom_id_for` id carries (empty for a bare digest)."""
    parts = custom_id.split("_", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return {}
    hints = {"X-BSA-Instance": parts[3], "X-BSA-Sample": parts[1]}
    judge = {"s": "safety", "r": "reasoning"}.get(parts[2])
    if judge:
        hints["X-BSA-Judge"] = judge
    return hints


class BatchingTransport:
    """A ``Transport`` whose calls wait for a provider batch (see the module docstring)."""

    batched = True  # the engine skips its slots, rate limiter and adaptive pace for it
    price_factor = BATCH_DISCOUNT

    def __init__(
        self,
        client: BatchClient,
        store: BatchStore | None,
        *,
        role: str,
        poll_interval: float = 30.0,
        quiet: float = QUIET_S,
        max_wait: float = MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self._where = endpoint_of(client.endpoint)  # scheme://host:port, for error messages
        self.role = role
        self._store = store
        self.poll_interval = poll_interval
        self._quiet = quiet
        self._max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._pending: list[tuple[str, str, ChatRequest, str | None]] = []  # key, id, req, scope
        self._first_pending = 0.0
        self._last_pending = 0.0
        self._waiting: dict[str, asyncio.Future[Completion]] = {}
        self._members: dict[str, dict[str, str]] = {}  # batch id -> {key: custom id}
        self._tasks: set[asyncio.Task[None]] = set()
        self._flushing = False
        self._delivered: list[str] = []
        self.states: dict[str, BatchState] = {}  # the latest look at each batch
        self.submitted: list[str] = []  # batch ids created by this process
        self.resumed: set[str] = set()  # batch ids found in the cache and polled again

    # -- the Transport protocol ----------------------------------------------------------

    async def complete(
        self, request: ChatRequest, *, timeout: float, scope: str | None = None
    ) -> Completion:
        """Wait for ``request``'s answer from a batch (``timeout`` does not apply: a batch has
        its own completion window). ``scope``: the answer scope of the run asking (None: a
        request every run shares); a stored batch request of another scope is never joined."""
        key = request_key(request, scope)
        future = self._waiting.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[key] = future
            found = self._store.batch_request(key) if self._store is not None else None
            if found is not None:
                batch_id, custom_id = found
                self.resumed.add(batch_id)
                self._join(batch_id, key, custom_id)
            else:
                now = self._clock()
                if not self._pending:
                    self._first_pending = now
                self._last_pending = now
                self._pending.append((key, custom_id_for(key, request), request, scope))
                if not self._flushing:
                    self._flushing = True
                    self._spawn(self._flush())
        return await asyncio.shield(future)

    async def aclose(self) -> None:
        """Stop polling (the batches go on at the provider; a rerun resumes them), forget the
        requests whose answers were delivered, close the client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._store is not None and self._delivered:
            with contextlib.suppress(Exception):  # closing must never hide the run's outcome
                self._store.forget_batch_requests(self._delivered)
        self._delivered = []
        await self.client.aclose()

    # -- progress ------------------------------------------------------------------------

    def status_lines(self) -> list[str]:
        """One line per batch still waited on, for the progress output."""
        lines = []
        for batch_id, members in self._members.items():
            state = self.states.get(batch_id)
            seen = (
                f"{state.status}, {state.done:,}/{state.total:,} done"
                + (f", {state.failed:,} failed" if state.failed else "")
                if state
                else "submitted, not polled yet"
            )
            again = " (resumed)" if batch_id in self.resumed else ""
            lines.append(
                f"bsa: {self.role} batch {batch_id}{again} at {self.client.provider}: {seen}; "
                f"{len(members):,} requests waiting"
            )
        return lines

    # -- submitting ----------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        try:
            while self._pending:
                now = self._clock()
                due = min(self._last_pending + self._quiet, self._first_pending + self._max_wait)
                if len(self._pending) < self.client.max_requests and now < due:
                    await self._sleep(due - now)
                    continue
                chunk = self._pending[: self.client.max_requests]
                del self._pending[: len(chunk)]
                if self._pending:
                    self._first_pending = self._clock()
                await self._submit(chunk)
        finally:
            self._flushing = False

    async def _submit(self, chunk: list[tuple[str, str, ChatRequest, str | None]]) -> None:
        try:
            batch_id = await self.client.submit([(cid, request) for _, cid, request, _ in chunk])
        except TransportError as error:
            for key, _, _, _ in chunk:
                self._settle(key, error)
            return
        if self._store is not None:
            self._store.put_batch(
                batch_id,
                endpoint=self.client.endpoint,
                provider=self.client.provider,
                entries=[(key, cid, scope) for key, cid, _, scope in chunk],
            )
        self.submitted.append(batch_id)
        for key, cid, _, _ in chunk:
            self._join(batch_id, key, cid)

    def _join(self, batch_id: str, key: str, custom_id: str) -> None:
        members = self._members.get(batch_id)
        if members is None:
            members = self._members[batch_id] = {}
            self._spawn(self._follow(batch_id))
        members[key] = custom_id

    # -- polling -------------------------------------------------------------------------

    async def _follow(self, batch_id: str) -> None:
        """Poll ``batch_id`` until it ends, then answer its waiting calls."""
        failures = 0
        while True:
            try:
                state = await self.client.poll(batch_id)
                if state.phase == "running":
                    self.states[batch_id] = state
                    failures = 0
                    await self._sleep(self.poll_interval)
                    continue
                self.states[batch_id] = state
                if state.phase == "failed":
                    error = TransportError(
                        "client",
                        f"batch {batch_id} failed at {self.client.provider}: "
                        f"{state.detail or 'no reason given'}",
                        endpoint=self._where,
                    )
                    self._settle_batch(batch_id, {}, error)
                    return
                results = await self.client.results(state)
            except TransportError as error:
                if error.status == 404:  # expired, deleted, or another server: ask again
                    gone = TransportError(
                        "server",
                        f"batch {batch_id} is unknown to {self._where}; sending its requests again",
                        endpoint=self._where,
                    )
                    self._settle_batch(batch_id, {}, gone)
                    return
                failures += 1
                if not error.retryable or failures > MAX_POLL_FAILURES:
                    lost = BatchLost(
                        error.kind,
                        f"lost track of batch {batch_id} after {failures} failed polls "
                        f"({error.message}); rerun to pick it up without paying again",
                        endpoint=error.endpoint,
                        status=error.status,
                    )
                    self._settle_batch(batch_id, {}, lost, forget=False)
                    return
                await self._sleep(min(self.poll_interval, 2.0**failures))
                continue
            self._settle_batch(batch_id, results, None, state=state)
            return

    def _settle_batch(
        self,
        batch_id: str,
        results: dict[str, Completion | TransportError],
        error: TransportError | None,
        *,
        state: BatchState | None = None,
        forget: bool = True,
    ) -> None:
        members = self._members.pop(batch_id, {})
        forgotten = []
        for key, custom_id in members.items():
            outcome: Completion | TransportError | None = results.get(custom_id, error)
            if outcome is None:
                why = state.status if state else "unknown"
                outcome = TransportError(
                    "bad_response",
                    f"batch {batch_id} ended ({why}) without a result for this request",
                    endpoint=self._where,
                )
            if isinstance(outcome, Completion):
                self._delivered.append(key)
            elif forget:
                forgotten.append(key)
            self._settle(key, outcome)
        if self._store is not None and forgotten:
            self._store.forget_batch_requests(forgotten)

    def _settle(self, key: str, outcome: Completion | TransportError) -> None:
        future = self._waiting.pop(key, None)
        if future is None or future.done():
            return
        if isinstance(outcome, Completion):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)
            future.exception()  # retrieved: a waiter cancelled meanwhile must not log noise


def batch_provider(model: str, api_base: str | None) -> str | None:
    """Which batch API serves ``model`` at ``api_base``: ``"openai"`` (OpenAI or any
    OpenAI-compatible base URL), ``"anthropic"``, or None (litellm-only providers)."""
    from pytest_bsa.engine.transports import is_direct

    if model.startswith("anthropic/"):
        return "anthropic"
    if is_direct(model, api_base) or (model.startswith("openai/") and not api_base):
        return "openai"
    return None


def make_batch_client(
    model: str, api_base: str | None, api_key: str | None, *, api_key_env: str | None = None
) -> BatchClient:
    """The batch client for ``model`` (see :func:`batch_provider`); ``api_key`` is sent as it
    is (``engine/keys.py:choose_key`` decided it for this endpoint)."""
    provider = batch_provider(model, api_base)
    if provider == "anthropic":
        from pytest_bsa.engine.batch_anthropic import AnthropicBatchClient

        return AnthropicBatchClient(api_base, api_key, api_key_env=api_key_env)
    if provider == "openai":
        from pytest_bsa.engine.batch_openai import OpenAIBatchClient

        return OpenAIBatchClient(api_base, api_key, api_key_env=api_key_env)
    raise ValueError(f"no batch API for {model!r}")


def batch_roles(batch: str) -> frozenset[str]:
    """``--bsa-batch`` as the set of roles it batches."""
    return frozenset({"model", "judge"} if batch == "both" else {batch} - {"off"})


def batch_problem(settings: Any, *, xdist: bool) -> str | None:
    """Why ``--bsa-batch`` cannot work with these settings (a sentence naming the fix), or None."""
    roles = batch_roles(settings.batch)
    if not roles:
        return None
    if xdist:
        return (
            f"--bsa-batch {settings.batch} gathers the run into batches, but under pytest-xdist "
            "each worker sees one test at a time: run batch mode in one process (drop -n)"
        )
    if settings.cache in ("off", "read"):
        return (
            f"--bsa-batch {settings.batch} needs a writable cache to pick a batch up after an "
            f"interruption, not --bsa-cache={settings.cache}: use readwrite (the default) or write"
        )
    for role in sorted(roles):
        model = settings.model if role == "model" else settings.judge
        base = settings.api_base if role == "model" else settings.judge_api_base
        if role == "model" and model.startswith("pipeline:"):
            return (
                f"--bsa-batch {settings.batch}: the model {model!r} is your own pipeline "
                "(pytest_bsa_generate), which no batch API can run; use --bsa-batch judge"
            )
        if model != "simulated" and batch_provider(model, base) is None:
            return (
                f"--bsa-batch {settings.batch}: the {role} {model!r} goes through litellm, which "
                "has no batch path here; batch mode works for openai/... models (OpenAI or any "
                "OpenAI-compatible --bsa-api-base) and anthropic/... models"
            )
    return None
