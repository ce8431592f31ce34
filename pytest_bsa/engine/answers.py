"""The run's model answers in the cache: read and stored in the run's scope (and as the latest
answer to the request, for ``--bsa-answers=reuse``) and, when an interrupted run resumes, the
check that the endpoint still serves the model the interrupted run saw."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pytest_bsa.engine.scope import AnswerScope, new_run_id
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion
from pytest_bsa.reasoning import split_template_opened


def served_identity(completion: Completion) -> tuple[str | None, str | None]:
    """What the endpoint said it served: its ``model`` and ``system_fingerprint``."""
    return completion.served_model, completion.system_fingerprint


class ModelAnswers:
    """The engine's model answers: ``call`` samples one afresh, ``wait_for`` waits for an event
    or the run's stop; ``cache`` None samples every answer afresh. ``call`` gets the request
    and the answer scope a batching transport keys its stored batch requests by."""

    def __init__(
        self,
        cache: Any,
        scope: AnswerScope | None,
        *,
        fingerprint: str,
        identity: str | None,
        call: Callable[[ChatRequest, str | None], Awaitable[Completion]],
        wait_for: Callable[[asyncio.Event], Awaitable[None]],
        template_opens_think: bool = False,
    ) -> None:
        self.cache = cache
        self.scope = scope
        self.fingerprint = fingerprint  # the run's settings fingerprint (cache run records)
        self.identity = identity  # the endpoint's identity in cache keys (default: api_base)
        self.resume_refused: str | None = None  # why an interrupted run was not resumed
        # --bsa-think-tags=template: the model's chat template opens <think> (answers are
        # stored as the transport split them and read this way when used).
        self.template_opens_think = template_opens_think
        self._call = call
        self._wait_for = wait_for
        self._verified: asyncio.Event | None = None  # resume: the served model was checked
        self._probe_running = False
        self._identity_recorded = False

    def start(self) -> None:
        """On the engine's loop: a resumed run checks the served model before any reuse."""
        if self.scope is not None and self.scope.resumed and self.scope.identity is not None:
            self._verified = asyncio.Event()

    def key(self, request: ChatRequest, index: int, scoped: bool = True) -> str:
        """The answer's key in this run's scope (``scoped``), or in the scope every run shares
        (the latest answer to the request, read by ``--bsa-answers=reuse``)."""
        from pytest_bsa.engine.cache_keys import completion_key

        identity = self.identity or request.api_base
        scope = self.scope.key_scope if self.scope is not None and scoped else None
        return completion_key(request.model_copy(update={"api_base": identity}), index, scope)

    async def complete(
        self, request: ChatRequest, index: int, on_hit: Callable[[], None]
    ) -> Completion:
        """The answer: stored in the run's scope (``on_hit`` is told), else sampled and stored;
        read as the run's ``--bsa-think-tags`` says."""
        completion = await self._stored_or_sampled(request, index, on_hit)
        if self.template_opens_think:
            return split_template_opened(completion)
        return completion

    async def _stored_or_sampled(
        self, request: ChatRequest, index: int, on_hit: Callable[[], None]
    ) -> Completion:
        if self.cache is None:
            return await self._call(request, None)
        if self._verified is not None and not self._verified.is_set():
            if not self._probe_running:
                return await self._probe(request, index)
            await self._wait_for(self._verified)
        key = self.key(request, index)
        hit = self.cache.get_completion(key)
        if hit is not None:
            on_hit()
            return hit
        scope = self.scope.key_scope if self.scope is not None else None
        completion = await self._call(request, scope)
        self._store(request, index, completion)
        return completion

    def _store(self, request: ChatRequest, index: int, completion: Completion) -> None:
        """Store under this run's key and as the latest answer to the request (for reuse)."""
        key = self.key(request, index)
        self.cache.put_completion(key, completion, model=request.model)
        shared = self.key(request, index, scoped=False)
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
            # A scope of its own: in batch mode the probe never joins a stored batch request.
            completion = await self._call(request, f"probe-{new_run_id()}")
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
        self._store(request, index, completion)
        return completion

    def _refuse_resume(self, why: str) -> None:
        assert self.scope is not None and self._verified is not None
        self.resume_refused = f"{why}: not resumed, every answer sampled afresh"
        self.scope = self.scope.fresh()
        self.cache.record_run(self.scope, self.fingerprint)
        self._verified.set()
