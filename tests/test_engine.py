"""The engine against in-process fake transports: ordering, fallbacks, limits."""

from __future__ import annotations

import json

from pytest_bsa.engine.retry import RetryPolicy
from pytest_bsa.engine.runner import Engine
from pytest_bsa.engine.types import (
    ChatRequest,
    RequestSpec,
    TransportError,
    refuses_structured_output,
)
from pytest_bsa.models import Completion, Instance, Label, ReasoningState, SafetyVerdict

INSTANCE = Instance(
    id="i1",
    query="A neutral question.",
    risk_summary="A described risk.",
    scenario="Risk Omission",
    labels=(Label(category="Rumors", subcategory="Other"),),
)


class FakeModel:
    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        return Completion(
            answer="a careful answer", reasoning="noticed the risk",
            reasoning_state=ReasoningState.PRESENT,
        )  # fmt: skip

    async def aclose(self) -> None:
        return None


class JudgeWithoutStructuredOutput:
    """Refuses response_format like some providers do, then answers JSON in text."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        self.requests.append(request)
        if request.response_format is not None:
            raise TransportError("client", "json_schema is not supported by this model", status=400)
        kind = request.headers["X-BSA-Judge"]
        label = "Safe" if kind == "safety" else "true"
        return Completion(answer=json.dumps({"explanation": "ok", "label": label}))

    async def aclose(self) -> None:
        return None


def test_judge_falls_back_to_json_in_text_for_the_rest_of_the_run() -> None:
    judge = JudgeWithoutStructuredOutput()
    engine = Engine(
        model=RequestSpec("m", None, {}),
        judge_spec=RequestSpec("j", None, {}),
        model_transport=FakeModel(),
        judge_transport=judge,
        samples=3,
        system_prompt=None,
        concurrency=1,
        timeout=5,
        retry=RetryPolicy(max_retries=0),
    )
    try:
        result = engine.result(INSTANCE, timeout=30)
    finally:
        engine.close()
    assert all(s.judgement and s.judgement.safety is SafetyVerdict.SAFE for s in result.samples)
    refused = [r for r in judge.requests if r.response_format is not None]
    assert 1 <= len(refused) <= 2  # at most the calls already in flight when it refused
    assert not engine.judge.structured


def test_what_counts_as_refusing_structured_output() -> None:
    assert refuses_structured_output(TransportError("client", "response_format not allowed"))
    assert not refuses_structured_output(TransportError("server", "response_format broke"))
    assert not refuses_structured_output(TransportError("client", "max_tokens too large"))
