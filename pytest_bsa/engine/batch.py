"""Batch mode: a transport that gathers the engine's calls into provider batches.

The engine issues calls as usual; :class:`BatchingTransport` holds each one, submits what has
gathered as one batch (OpenAI-compatible ``/v1/files`` + ``/v1/batches`` or Anthropic message
batches, see ``batch_openai.py`` and ``batch_anthropic.py``; ``batch_setup.py`` picks one),
polls it, and answers every waiting call with its own completion or error. Caching, the judge,
retries and reports are unchanged: a failed request raises the same ``TransportError`` a direct
call would, and a retry goes into the next batch.

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
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pytest_bsa.engine.batch_types import (
    BatchClient,
    BatchLost,
    BatchState,
    BatchStore,
    custom_id_for,
)
from pytest_bsa.engine.cache_keys import completion_key
from pytest_bsa.engine.http_errors import endpoint_of
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion

BATCH_DISCOUNT = 0.5
QUIET_S = 1.0  # submit once no new call arrived for this long...
MAX_WAIT_S = 60.0  # ...or once the oldest call has waited this long
MAX_POLL_FAILURES = 8


def request_key(request: ChatRequest, scope: str | None = None) -> str:
    """The cache key of one request in a batch: endpoint, model, messages, params, format,
    sample index (from the ``X-BSA-Sample`` routing hint), the ask of a repeated judge verdict
    (``X-BSA-Judge-Replicate``: each ask is a request of its own) and answer scope (a run id;
    None: shared by every run)."""
    hints = request.headers
    sample, ask = (_number(hints.get(h)) for h in ("X-BSA-Sample", "X-BSA-Judge-Replicate"))
    return completion_key(request, sample, scope, ask=ask)


def _number(text: str | None) -> int:
    try:
        return int(text or "0")
    except ValueError:
        return 0


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
