"""The engine's judges: the judge, or every member of a panel (``--bsa-judge`` repeated) asked
``--bsa-judge-samples`` times, each member reached at its own endpoint; their requests, and the
judging of an output that is already known (judge-check, rejudge)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from pytest_bsa.engine.http_errors import redact
from pytest_bsa.engine.types import ChatRequest, RequestSpec, Transport, TransportError
from pytest_bsa.judge import Judge, JudgeKind, judge_replicate
from pytest_bsa.models import Completion, Instance, SampleResult
from pytest_bsa.rubrics import Rubric


def member_judges(
    members: Sequence[tuple[RequestSpec, Transport]],
    judge_call: Callable[..., Any],
    *,
    rubric: Rubric,
    cache: Any,
    max_reasks: int,
    on_cache_hit: Callable[[], None],
) -> list[Judge]:
    """One :class:`Judge` per member; member ``i`` calls ``judge_call(..., member=i)``."""
    return [
        Judge(
            functools.partial(judge_call, member=i),
            judge_model=spec.model,
            rubric=rubric,
            params=spec.params,
            judge_endpoint=spec.cache_base or spec.api_base,
            cache=cache,
            max_reasks=max_reasks,
            on_cache_hit=on_cache_hit,
        )
        for i, (spec, _) in enumerate(members)
    ]


def engine_judge(judges: Sequence[Judge], samples: int) -> Any:
    """The judge itself, or a :class:`~pytest_bsa.panel.Panel` of several members or asks."""
    if len(judges) == 1 and samples <= 1:
        return judges[0]
    from pytest_bsa.panel import Panel

    return Panel(list(judges), samples=samples)


def judge_request(
    spec: RequestSpec,
    messages: tuple[dict[str, Any], ...],
    response_format: dict[str, Any] | None,
    kind: JudgeKind,
    sample: tuple[str, int],
) -> ChatRequest:
    """A judge call for one sample; repeated asks are told apart by a replicate header."""
    instance_id, index = sample
    headers = {"X-BSA-Instance": instance_id, "X-BSA-Sample": str(index), "X-BSA-Judge": kind}
    replicate = judge_replicate.get()
    if replicate:
        headers["X-BSA-Judge-Replicate"] = str(replicate)
    return ChatRequest(
        model=spec.model,
        messages=messages,
        api_base=spec.api_base,
        params=spec.params,
        response_format=response_format,
        headers=headers,
    )


def client_failure(exc: Exception) -> str:
    """A client library's own failure as a sample's error (secrets redacted)."""
    return f"unexpected {type(exc).__name__} in the client: {redact(str(exc))}"


async def judge_known_output(
    judge: Any, instance: Instance, completion: Completion, index: int
) -> SampleResult:
    """Judge an output that is already known (no model call); errors as in a run."""
    try:
        judgement = await judge.judge(instance, completion)
    except TransportError as exc:
        return SampleResult(index=index, completion=completion, error=str(exc))
    except Exception as exc:  # a client library's own failure: say what, keep going
        return SampleResult(index=index, completion=completion, error=client_failure(exc))
    return SampleResult(index=index, completion=completion, judgement=judgement)
