"""The LLM judge: one verdict at a time with a rubric, bounded re-asks, an outcome for each.

Pure (no pytest import). :meth:`Judge.verdict` judges one text (an answer or a reasoning trace)
of one instance with the judge's rubric and returns a :class:`Verdict`: a label, or why there is
none (``unjudged``: no valid label after the re-asks; ``refused``: the judge declined, also when
asked once more). :meth:`Judge.judge` gives both verdicts of one sample as a
:class:`~pytest_bsa.models.Judgement`; samples the model left without an answer or without
reasoning are not sent to the judge at all (``no_answer``, ``no_reasoning``), and reasoning
the provider hid is ``unavailable``. The answer is judged from query, risk summary and answer,
the reasoning from query, risk summary and the trace only, so one cannot colour the other.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pytest_bsa.models import (
    THINK_CORRECT_LABELS,
    Completion,
    Instance,
    Judgement,
    ReasoningState,
    SafetyVerdict,
    ThinkVerdict,
    Usage,
)
from pytest_bsa.rubrics import (
    JudgeKind,
    JudgeReplyError,
    Rubric,
    allowed_labels,
    verdict_hash,
)
from pytest_bsa.rubrics.bsa import BSA_RUBRIC

__all__ = ["Judge", "JudgeKind", "JudgeReplyError", "Verdict", "to_judgement", "verdict_inputs"]

VerdictOutcome = Literal["labelled", "unjudged", "refused"]
REFUSAL_REASKS = 1  # a refusal is asked once more, then the verdict is "refused"
# Which of the repeated asks of one verdict (--bsa-judge-samples) a judge call belongs to; the
# engine sends it as a header (the simulated judge scripts unstable verdicts from it).
judge_replicate: contextvars.ContextVar[int] = contextvars.ContextVar(
    "bsa_judge_replicate", default=0
)
_NO_TEXT = "(no content)"
_FILTERED = "(the provider's content filter stopped the reply)"


@dataclass(frozen=True)
class Verdict:
    """One verdict on one text of one sample: a label, or the reason there is none."""

    kind: JudgeKind
    outcome: VerdictOutcome
    label: str | None
    explanation: str
    attempts: int  # judge calls made (0 from the cache)
    usage: Usage
    refusals: tuple[str, ...] = ()  # every refusal met on the way, as the judge wrote it
    query_credit: tuple[bool, bool] | None = None  # Cognitive Shortcut: Query A, Query B
    served_model: str | None = None
    cached: bool = False

    def as_cache_entry(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "explanation": self.explanation,
            "attempts": self.attempts,
            "query_credit": list(self.query_credit) if self.query_credit else None,
            "served_model": self.served_model,
        }


class VerdictCache(Protocol):
    def get_verdict(self, key: str) -> dict[str, Any] | None: ...

    def put_verdict(self, key: str, verdict: Mapping[str, Any], *, judge_model: str) -> None: ...


Call = Callable[
    [tuple[dict[str, Any], ...], dict[str, Any] | None, JudgeKind], Awaitable[Completion]
]


def refusal_of(reply: Completion) -> str | None:
    """The judge's refusal, kept as written: ``message.refusal``, a filtered or empty reply."""
    if reply.refusal:
        return reply.refusal
    if reply.finish_reason == "content_filter":
        return _FILTERED
    if not reply.answer.strip() and reply.finish_reason != "length":
        return _NO_TEXT
    return None


class Judge:
    """Asks for verdicts through ``call`` with ``rubric`` and turns them into judgements."""

    def __init__(
        self,
        call: Call,
        *,
        judge_model: str,
        rubric: Rubric = BSA_RUBRIC,
        params: Mapping[str, Any] | None = None,
        judge_endpoint: str | None = None,
        cache: VerdictCache | None = None,
        max_reasks: int = 2,
        on_cache_hit: Callable[[], None] | None = None,
    ) -> None:
        self._call = call
        self._on_cache_hit = on_cache_hit
        self.judge_model = judge_model
        self.rubric = rubric
        self.params = dict(params or {})
        # Verdicts are shared only by the same judge model at the same endpoint.
        self._identity = f"{judge_model} @ {judge_endpoint}" if judge_endpoint else judge_model
        self._cache = cache
        self.max_reasks = max_reasks
        self.structured = rubric.structured  # switched off for the run if the provider refuses

    @property
    def verdict_hash(self) -> str:
        """One hash of everything that shapes this judge's verdicts (model aside)."""
        return verdict_hash(self.rubric, structured=self.structured, params=self.params)

    async def verdict(
        self,
        kind: JudgeKind,
        instance: Instance,
        text: str,
        *,
        truncated: bool = False,
        replicate: int = 0,
    ) -> Verdict:
        """One verdict: from the cache, or asked for (re-asked on bad replies and refusals).

        ``replicate`` numbers repeated asks of the same verdict (``--bsa-judge-samples``):
        each has its own cache entry.
        """
        judge_replicate.set(replicate)
        key = ""
        if self._cache is not None:
            from pytest_bsa.engine.cache_keys import verdict_key

            inputs = {**verdict_inputs(kind, instance, text), "truncated": str(truncated)}
            if replicate:
                inputs["replicate"] = str(replicate)
            key = verdict_key(self._identity, self.verdict_hash, kind, inputs)
            hit = self._cache.get_verdict(key)
            if hit is not None and hit.get("label") in allowed_labels(kind, instance.scenario):
                if self._on_cache_hit is not None:
                    self._on_cache_hit()
                return _from_cache(kind, hit)
        result = await self._ask(kind, instance, text, truncated)
        if self._cache is not None and result.outcome == "labelled":
            self._cache.put_verdict(key, result.as_cache_entry(), judge_model=self.judge_model)
        return result

    async def _ask(
        self, kind: JudgeKind, instance: Instance, text: str, truncated: bool
    ) -> Verdict:
        prompt = self.rubric.prompt(
            kind, instance, text, truncated=truncated, structured=self.structured
        )
        messages = list(prompt.messages)
        usage = Usage()
        refusals: list[str] = []
        problems = 0
        served: str | None = None
        attempts = 0
        while True:
            fmt = prompt.response_format if self.structured else None
            reply = await self._call(tuple(messages), fmt, kind)
            attempts += 1
            usage = add_usage(usage, reply.usage)
            served = reply.served_model or served
            refusal = refusal_of(reply)
            if refusal is not None:
                refusals.append(refusal)
                if len(refusals) > REFUSAL_REASKS:
                    return Verdict(
                        kind, "refused", None, f"judge refused: {refusal}", attempts, usage,
                        tuple(refusals), served_model=served,
                    )  # fmt: skip
                messages += [
                    {"role": "assistant", "content": refusal},
                    {"role": "user", "content": self.rubric.refusal_reask()},
                ]
                continue
            try:
                if reply.truncated and not reply.answer.strip():
                    raise JudgeReplyError(
                        "the reply stopped at the judge's token limit before any JSON "
                        "(finish_reason length; raise --bsa-judge-max-tokens)"
                    )
                parsed = self.rubric.parse(kind, instance, reply.answer)
            except JudgeReplyError as exc:
                problems += 1
                if problems > self.max_reasks:
                    return Verdict(
                        kind, "unjudged", None, f"unjudged: {exc}", attempts, usage,
                        tuple(refusals), served_model=served,
                    )  # fmt: skip
                messages += [
                    {"role": "assistant", "content": reply.answer[:2000]},
                    {"role": "user", "content": self.rubric.reask(str(exc))},
                ]
                continue
            return Verdict(
                kind, "labelled", parsed.label, parsed.explanation, attempts, usage,
                tuple(refusals), parsed.query_credit, served,
            )  # fmt: skip

    async def judge(self, instance: Instance, completion: Completion) -> Judgement:
        """Both verdicts of one sample (the two calls run concurrently)."""
        asked = texts_to_judge(completion)
        safety_call = think_call = None
        if asked.answer is not None:
            safety_call = self.verdict("safety", instance, asked.answer, truncated=asked.cut)
        if asked.reasoning is not None:
            think_call = self.verdict(
                "reasoning", instance, asked.reasoning, truncated=asked.reasoning_cut
            )
        calls = [c for c in (safety_call, think_call) if c is not None]
        done = list(await asyncio.gather(*calls))
        safety = done.pop(0) if safety_call is not None else SafetyVerdict.NO_ANSWER
        think = done.pop(0) if think_call is not None else asked.think_outcome
        return to_judgement(safety, think)


@dataclass(frozen=True)
class JudgeTexts:
    """What of a sample goes to the judge: the answer and the reasoning (None: not asked), and
    the think outcome decided without asking when there is no reasoning to send."""

    answer: str | None
    reasoning: str | None
    cut: bool  # the answer was cut at the token limit
    reasoning_cut: bool
    think_outcome: ThinkVerdict  # when ``reasoning`` is None: no reasoning, or unavailable


def texts_to_judge(completion: Completion) -> JudgeTexts:
    """The texts of one sample the judge is asked about (a run and judge-check agree on it)."""
    answer = completion.answer or completion.refusal or ""
    state = completion.reasoning_state
    reasoning = None
    think_outcome = ThinkVerdict.UNAVAILABLE
    if state in (ReasoningState.PRESENT, ReasoningState.TRUNCATED) and completion.reasoning:
        reasoning = completion.reasoning
    elif state in (ReasoningState.EMPTY, ReasoningState.ABSENT):
        think_outcome = ThinkVerdict.NO_REASONING
    return JudgeTexts(
        answer=answer if answer.strip() else None,
        reasoning=reasoning,
        cut=completion.truncated,
        reasoning_cut=state is ReasoningState.TRUNCATED,
        think_outcome=think_outcome,
    )


def _from_cache(kind: JudgeKind, hit: Mapping[str, Any]) -> Verdict:
    credit = hit.get("query_credit")
    pair = None
    if isinstance(credit, list) and len(credit) == 2 and all(isinstance(c, bool) for c in credit):
        pair = (credit[0], credit[1])
    served = hit.get("served_model")
    return Verdict(
        kind,
        "labelled",
        hit["label"],
        str(hit.get("explanation", "")),
        0,
        Usage(),
        query_credit=pair,
        served_model=served if isinstance(served, str) else None,
        cached=True,
    )


_NOT_ASKED_NOTE = {
    SafetyVerdict.NO_ANSWER: "no answer (empty, or cut at the token limit): not judged",
    ThinkVerdict.NO_REASONING: "no reasoning from the model: not judged",
}


def to_judgement(
    safety: Verdict | SafetyVerdict, think: Verdict | ThinkVerdict | None = None
) -> Judgement:
    """Combine a sample's verdicts (or the outcomes decided without asking) into a judgement."""
    if think is None:
        think = ThinkVerdict.UNAVAILABLE
    asked = [v for v in (safety, think) if isinstance(v, Verdict)]
    safety_outcome = safety if isinstance(safety, SafetyVerdict) else _safety_outcome(safety)
    think_outcome = think if isinstance(think, ThinkVerdict) else _think_outcome(think)
    parts = []
    for name, verdict in (("answer", safety), ("reasoning", think)):
        if isinstance(verdict, Verdict):
            parts.append(f"{name}: {verdict.explanation}")
        elif verdict in _NOT_ASKED_NOTE:
            parts.append(f"{name}: {_NOT_ASKED_NOTE[verdict]}")
    usage = Usage()
    for verdict in asked:
        usage = add_usage(usage, verdict.usage)
    served = [v.served_model for v in asked if v.served_model]
    return Judgement(
        safety=safety_outcome,
        think=think_outcome,
        safety_label=safety.label if isinstance(safety, Verdict) else None,
        think_label=think.label if isinstance(think, Verdict) else None,
        explanation=" | ".join(parts),
        attempts=sum(v.attempts for v in asked),
        usage=usage,
        cached=bool(asked) and all(v.cached for v in asked),
        cached_verdicts=sum(v.cached for v in asked),
        refusals=tuple(r for v in asked for r in v.refusals),
        query_credit=think.query_credit if isinstance(think, Verdict) else None,
        served_model=served[0] if served else None,
    )


def _safety_outcome(verdict: Verdict) -> SafetyVerdict:
    if verdict.outcome == "refused":
        return SafetyVerdict.REFUSED
    if verdict.label is None:
        return SafetyVerdict.UNJUDGED
    return SafetyVerdict.SAFE if verdict.label == "Safe" else SafetyVerdict.UNSAFE


def _think_outcome(verdict: Verdict) -> ThinkVerdict:
    if verdict.outcome == "refused":
        return ThinkVerdict.REFUSED
    if verdict.label is None:
        return ThinkVerdict.UNJUDGED
    return ThinkVerdict.CORRECT if verdict.label in THINK_CORRECT_LABELS else ThinkVerdict.INCORRECT


def add_usage(a: Usage, b: Usage) -> Usage:
    cost = (
        None if a.cost_usd is None and b.cost_usd is None else (a.cost_usd or 0) + (b.cost_usd or 0)
    )
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
        cost_usd=cost,
    )


def verdict_inputs(kind: JudgeKind, instance: Instance, text: str) -> Mapping[str, str]:
    """What a verdict depends on (for the verdict cache key)."""
    return {
        "kind": kind,
        "scenario": instance.scenario,
        "query": instance.query,
        "risk_summary": instance.risk_summary,
        "text": text,
    }
