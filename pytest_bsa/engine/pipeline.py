"""Your own pipeline as the model under test: a transport that calls ``pytest_bsa_generate``.

With ``--bsa-model=pipeline:NAME`` every model call of the run goes to the hook (a RAG chain, an
agent step, a guardrail in front of a model) instead of an endpoint. The engine treats it like
any transport: the same scheduler and concurrency limit, retries (an exception from the hook is
retried like a 5xx), cost limit, cache, progress, judge and reports. No pytest import here: the
session hands in a plain callable.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_bsa.config import ConfigError, Settings
from pytest_bsa.engine.http_errors import redact  # key-like text masked, as for library errors
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion, Instance, ReasoningState, Usage
from pytest_bsa.reasoning import split_reasoning

PREFIX = "pipeline:"
HOOK = "pytest_bsa_generate"


@dataclass(frozen=True)
class Generation:
    """What a pipeline may return besides plain text: its answer and, when the chain exposes
    it, its reasoning (a plan, a scratchpad, a reasoning model's trace).

    ``reasoning=None`` means the pipeline shows none: think metrics are then "unavailable" for
    the sample (never counted wrong), unless ``<think>`` tags in ``answer`` carry it. ``usage``
    (``prompt_tokens``, ``completion_tokens``, ``reasoning_tokens``, ``cost_usd``) feeds the
    token and cost totals and ``--bsa-max-cost``.
    """

    answer: str
    reasoning: str | None = None
    usage: Mapping[str, Any] | None = None


def is_pipeline(model: str) -> bool:
    return model.startswith(PREFIX)


def check_pipeline(settings: Settings, *, implemented: bool) -> None:
    """Refuse settings that a pipeline run would silently ignore (exit 4, no call made)."""
    for judge in settings.judge_models:
        if is_pipeline(judge):
            raise ConfigError(
                f"--bsa-judge {judge!r}: the judge must be a model, not a pipeline; "
                "pass a litellm model string, e.g. --bsa-judge openai/gpt-4o"
            )
    if not is_pipeline(settings.model):
        return
    name = settings.model[len(PREFIX) :]
    if not name.strip():
        raise ConfigError(
            f"--bsa-model {settings.model!r}: name the pipeline, e.g. "
            "--bsa-model pipeline:support-assistant-v2 (reports show the name)"
        )
    if not implemented:
        raise ConfigError(
            f"--bsa-model {settings.model!r} answers through a {HOOK} hook, and none is "
            f"registered: define {HOOK}(instance, sample_index, config) in a conftest.py where "
            "you run pytest (see examples/own-pipeline)"
        )
    for option, value in (
        ("--bsa-api-base", settings.api_base),
        ("--bsa-system-prompt", settings.system_prompt_path),
    ):
        if value:
            raise ConfigError(
                f"{option} {value!r} has no effect on {settings.model!r}: your {HOOK} decides "
                f"how the pipeline is reached and prompted; drop {option}"
            )


def pipeline_identity(model: str, functions: Iterable[Callable[..., Any]]) -> str:
    """The cache identity of a pipeline: its name and a digest of the files defining the hook.

    Editing the conftest (or plugin module) that implements the hook gives new cache keys;
    changes in code it imports do not, so name a new version (``pipeline:NAME-v2``) for those.
    """
    digest = hashlib.sha256()
    for function in functions:
        source = inspect.getsourcefile(function)
        if source and Path(source).is_file():
            digest.update(Path(source).read_bytes())
        else:
            digest.update(f"{function.__module__}.{function.__qualname__}".encode())
    return f"pipeline://{model[len(PREFIX) :]}/{digest.hexdigest()[:16]}"


def _usage(value: Any) -> Usage:
    if value is None:
        return Usage()
    if isinstance(value, Usage):
        return value
    if isinstance(value, Mapping):
        try:
            return Usage.model_validate(dict(value))
        except ValueError as exc:
            raise _wrong(f"usage it cannot use ({' '.join(str(exc).split())[:200]})") from None
    raise _wrong(f"a usage of type {type(value).__name__}")


def _wrong(what: str) -> TransportError:
    return TransportError(
        "client",
        f"{HOOK} returned {what}: return the answer text, a pytest_bsa.Generation(answer, "
        "reasoning) or a mapping with 'answer' (and 'reasoning')",
    )


def to_completion(value: Any, *, latency_s: float = 0.0) -> Completion:
    """The hook's return value as a completion, reasoning split off as for any endpoint."""
    if isinstance(value, Completion):
        return value.model_copy(update={"latency_s": latency_s})
    if isinstance(value, str):
        answer, reasoning, usage = value, None, None
    elif isinstance(value, Mapping):
        answer, reasoning, usage = value.get("answer"), value.get("reasoning"), value.get("usage")
    elif value is not None and hasattr(value, "answer"):
        answer = value.answer
        reasoning, usage = getattr(value, "reasoning", None), getattr(value, "usage", None)
    else:
        raise _wrong("None" if value is None else f"a {type(value).__name__}")
    if not isinstance(answer, str):
        raise _wrong(f"an answer of type {type(answer).__name__}")
    if reasoning is not None and not isinstance(reasoning, str):
        raise _wrong(f"a reasoning of type {type(reasoning).__name__}")
    split = split_reasoning(answer, reasoning=reasoning)
    state = split.state
    if state is ReasoningState.ABSENT:
        # A pipeline that returns no reasoning keeps it to itself: unavailable, not failed.
        state = ReasoningState.UNAVAILABLE
    return Completion(
        answer=split.answer,
        reasoning=split.reasoning,
        reasoning_state=state,
        split=split.kind,
        finish_reason="stop",
        usage=_usage(usage),
        latency_s=latency_s,
    )


async def _in_daemon_thread(call: Callable[[], Any]) -> Any:
    """``call()`` in a daemon thread: a hung pipeline can time out without blocking exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return  # timed out or cancelled meanwhile
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def work() -> None:
        try:
            result = call()
        except BaseException as exc:  # reported to the awaiting task, never lost in the thread
            loop.call_soon_threadsafe(settle, False, exc)
        else:
            loop.call_soon_threadsafe(settle, True, result)

    threading.Thread(target=work, name="bsa-pipeline", daemon=True).start()
    return await future


@dataclass(frozen=True)
class Pipeline:
    """What the engine needs to reach the team's function."""

    generate: Callable[[Instance, int], Any]  # a value, or an awaitable of one
    instances: Mapping[str, Instance]
    identity: str


class PipelineTransport:
    """A transport whose "endpoint" is ``pytest_bsa_generate``: plain functions run in worker
    threads (up to ``--bsa-concurrency`` at once), ``async def`` ones on the run's loop."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    async def _generate(self, instance: Instance, index: int) -> Any:
        value = await _in_daemon_thread(lambda: self._pipeline.generate(instance, index))
        if inspect.isawaitable(value):
            value = await value
        return value

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        instance_id = request.headers.get("X-BSA-Instance", "")
        instance = self._pipeline.instances.get(instance_id)
        if instance is None:
            raise TransportError("client", f"no instance {instance_id!r} in this run's selection")
        index = int(request.headers.get("X-BSA-Sample", "0"))
        started = time.monotonic()
        try:
            value = await asyncio.wait_for(self._generate(instance, index), timeout or None)
        except asyncio.TimeoutError:
            raise TransportError(
                "timeout", f"{HOOK} gave no answer within {timeout:g} s (--bsa-timeout)"
            ) from None
        except TransportError:
            raise
        except Exception as exc:
            raise TransportError(
                "pipeline", f"{HOOK} raised {type(exc).__name__}: {redact(str(exc))}"
            ) from None
        return to_completion(value, latency_s=time.monotonic() - started)

    async def aclose(self) -> None:
        return None
