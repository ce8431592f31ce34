"""The judge: one verdict at a time, bounded re-asks, and a named outcome for every sample."""

from __future__ import annotations

import asyncio
import json

import pytest

from pytest_bsa.judge import Judge, Verdict, refusal_of, to_judgement
from pytest_bsa.models import (
    Completion,
    Instance,
    Label,
    ReasoningState,
    SafetyVerdict,
    ThinkVerdict,
    Usage,
)
from pytest_bsa.rubrics import verdict_hash
from pytest_bsa.rubrics.bsa import BSA_RUBRIC

CS = Instance(
    id="c1",
    query="A user asks two things described neutrally.",
    risk_summary="Query A: first risk\nQuery B: second risk",
    scenario="Cognitive Shortcut",
    labels=(
        Label(category="Rumors", subcategory="X"),
        Label(category="Ethics and Morality", subcategory="Y"),
    ),
)
RO = CS.model_copy(
    update={"id": "r1", "scenario": "Risk Omission", "labels": CS.labels[:1], "risk_summary": "r"}
)


def reply(label: str, analysis: str = "because", **extra: object) -> str:
    return json.dumps({"analysis": analysis, **extra, "label": label})


def cs_reply(label: str, a: bool, b: bool) -> str:
    return reply(label, query_a_risk_identified=a, query_b_risk_identified=b)


class ScriptedJudge:
    """Answers each call with the next scripted reply (text, or a Completion); records calls."""

    def __init__(self, replies: list[str | Completion]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple] = []

    async def __call__(self, messages, fmt, kind) -> Completion:
        self.calls.append((messages, fmt, kind))
        nxt = self.replies.pop(0)
        if isinstance(nxt, Completion):
            return nxt
        return Completion(answer=nxt, usage=Usage(prompt_tokens=10), served_model="judge-v7")


def completion(reasoning: str | None, state=ReasoningState.PRESENT, **kw) -> Completion:
    return Completion(
        answer=kw.pop("answer", "an answer"), reasoning=reasoning, reasoning_state=state, **kw
    )


def judge_with(replies: list[str | Completion], **kw) -> tuple[Judge, ScriptedJudge]:
    call = ScriptedJudge(replies)
    return Judge(call, judge_model="j", **kw), call


def test_both_verdicts_per_query_credit_usage_and_served_model() -> None:
    judge, call = judge_with([reply("Safe"), cs_reply("Partially Covered", True, False)])
    j = asyncio.run(judge.judge(CS, completion("a trace")))
    assert j.safety is SafetyVerdict.SAFE
    assert j.think is ThinkVerdict.INCORRECT and j.think_label == "Partially Covered"
    assert j.query_credit == (True, False)
    assert {c[2] for c in call.calls} == {"safety", "reasoning"}
    assert j.usage.prompt_tokens == 20 and j.attempts == 2
    assert j.served_model == "judge-v7"


def test_a_label_that_disagrees_with_the_query_flags_is_reasked() -> None:
    judge, call = judge_with(
        [cs_reply("Fully Covered", True, False), cs_reply("Partially Covered", False, True)]
    )
    verdict = asyncio.run(judge.verdict("reasoning", CS, "trace"))
    assert verdict.label == "Partially Covered" and verdict.query_credit == (False, True)
    assert "disagrees with query_a_risk_identified=true" in call.calls[1][0][-1]["content"]


def test_malformed_replies_are_reasked_then_unjudged() -> None:
    judge, call = judge_with(["nonsense", reply("Maybe"), "still nonsense"], max_reasks=2)
    verdict = asyncio.run(judge.verdict("safety", CS, "text"))
    assert verdict.outcome == "unjudged" and verdict.label is None and verdict.attempts == 3
    assert "no JSON object" in verdict.explanation
    # The re-ask shows the judge its own reply and the problem.
    assert call.calls[1][0][-2] == {"role": "assistant", "content": "nonsense"}
    assert "not one of" in call.calls[2][0][-1]["content"]


def test_reask_recovers() -> None:
    judge, _ = judge_with(["nonsense", reply("Unsafe")])
    verdict = asyncio.run(judge.verdict("safety", CS, "text"))
    assert verdict.label == "Unsafe" and verdict.attempts == 2 and verdict.outcome == "labelled"


REFUSED = Completion(answer="", refusal="I can't help with that.", finish_reason="stop")


def test_a_refusal_keeps_its_text_is_asked_once_more_then_is_refused() -> None:
    judge, call = judge_with([REFUSED, REFUSED, reply("Safe")])
    verdict = asyncio.run(judge.verdict("safety", CS, "text"))
    assert verdict.outcome == "refused" and verdict.label is None and verdict.attempts == 2
    assert verdict.refusals == ("I can't help with that.", "I can't help with that.")
    assert verdict.explanation == "judge refused: I can't help with that."
    # The second ask shows the refusal and says why a verdict is not endorsement.
    assert call.calls[1][0][-2] == {"role": "assistant", "content": "I can't help with that."}
    assert "does not produce, endorse" in call.calls[1][0][-1]["content"]


def test_a_refusal_then_a_label_is_labelled_and_remembers_the_refusal() -> None:
    judge, _ = judge_with([REFUSED, reply("Unsafe")])
    verdict = asyncio.run(judge.verdict("safety", CS, "text"))
    assert (verdict.outcome, verdict.label, verdict.refusals) == (
        "labelled",
        "Unsafe",
        ("I can't help with that.",),
    )


@pytest.mark.parametrize(
    ("reply_", "refusal"),
    [
        (Completion(answer="", refusal="No."), "No."),
        (Completion(answer="", finish_reason="stop"), "(no content)"),
        (Completion(answer="{}", finish_reason="content_filter"), "content filter"),
        (Completion(answer="", finish_reason="length"), None),  # out of tokens: not a refusal
        (Completion(answer=reply("Safe"), finish_reason="stop"), None),
    ],
)
def test_what_counts_as_a_refusal(reply_: Completion, refusal: str | None) -> None:
    got = refusal_of(reply_)
    assert got == refusal if refusal is None else refusal in (got or "")


def test_a_judge_out_of_tokens_is_told_so_and_ends_unjudged() -> None:
    cut = Completion(answer="", finish_reason="length")
    judge, _ = judge_with([cut, cut, cut])
    verdict = asyncio.run(judge.verdict("safety", CS, "text"))
    assert verdict.outcome == "unjudged" and "--bsa-judge-max-tokens" in verdict.explanation


def test_refused_and_unjudged_map_to_their_own_outcomes() -> None:
    judge, _ = judge_with([REFUSED, REFUSED, "x", "x", "x"])
    j = asyncio.run(judge.judge(RO, completion("trace")))
    assert {j.safety, j.think} & {SafetyVerdict.REFUSED, ThinkVerdict.REFUSED}
    assert j.safety in (SafetyVerdict.REFUSED, SafetyVerdict.UNJUDGED)
    assert j.think in (ThinkVerdict.REFUSED, ThinkVerdict.UNJUDGED)
    assert j.refusals == ("I can't help with that.",) * 2


@pytest.mark.parametrize(
    ("given", "safety", "think", "calls"),
    [
        (completion("trace", answer=""), SafetyVerdict.NO_ANSWER, ThinkVerdict.CORRECT, 1),
        (
            completion("cut", ReasoningState.TRUNCATED, answer="", finish_reason="length"),
            SafetyVerdict.NO_ANSWER,
            ThinkVerdict.CORRECT,
            1,
        ),
        (completion(None, ReasoningState.EMPTY), SafetyVerdict.SAFE, ThinkVerdict.NO_REASONING, 1),
        (completion(None, ReasoningState.ABSENT), SafetyVerdict.SAFE, ThinkVerdict.NO_REASONING, 1),
        (
            completion(None, ReasoningState.UNAVAILABLE),
            SafetyVerdict.SAFE,
            ThinkVerdict.UNAVAILABLE,
            1,
        ),
        (
            completion(None, ReasoningState.EMPTY, answer=" "),
            SafetyVerdict.NO_ANSWER,
            ThinkVerdict.NO_REASONING,
            0,
        ),
    ],
    ids=["empty answer", "cut at the limit", "empty block", "absent", "hidden", "nothing"],
)
def test_missing_answers_and_reasoning_are_never_sent_to_the_judge(
    given: Completion, safety: SafetyVerdict, think: ThinkVerdict, calls: int
) -> None:
    asked = [reply("Safe")] * (safety is SafetyVerdict.SAFE)
    asked += [reply("true")] * (think is ThinkVerdict.CORRECT)
    judge, call = judge_with(asked)
    j = asyncio.run(judge.judge(RO, given))
    assert (j.safety, j.think, len(call.calls)) == (safety, think, calls)
    if safety is SafetyVerdict.NO_ANSWER:
        assert "no answer" in j.explanation
    if think is ThinkVerdict.NO_REASONING:
        assert "no reasoning from the model" in j.explanation


def test_a_model_refusal_message_is_the_answer_judged() -> None:
    judge, call = judge_with([reply("Safe")])
    given = Completion(answer="", refusal="I won't do that.", reasoning_state=ReasoningState.ABSENT)
    j = asyncio.run(judge.judge(RO, given))
    assert j.safety is SafetyVerdict.SAFE
    assert "I won't do that." in call.calls[0][0][1]["content"]


def test_truncated_inputs_are_noted_outside_the_data() -> None:
    judge, call = judge_with([reply("Safe"), reply("false")])
    given = completion(
        "half a trace", ReasoningState.PRESENT, answer="half an ans", finish_reason="length"
    )
    asyncio.run(judge.judge(RO, given))
    safety_prompt = next(c[0][1]["content"] for c in call.calls if c[2] == "safety")
    assert "The answer was cut off at the token limit" in safety_prompt
    reasoning_prompt = next(c[0][1]["content"] for c in call.calls if c[2] == "reasoning")
    assert "cut off" not in reasoning_prompt


def test_to_judgement_without_any_call() -> None:
    j = to_judgement(SafetyVerdict.NO_ANSWER, ThinkVerdict.UNAVAILABLE)
    assert (j.attempts, j.cached, j.safety_label, j.think_label) == (0, False, None, None)


def test_verdict_hash_covers_structured_output_and_params() -> None:
    judge, _ = judge_with([], params={"max_tokens": 8192})
    first = judge.verdict_hash
    assert first == verdict_hash(BSA_RUBRIC, structured=True, params={"max_tokens": 8192})
    judge.structured = False
    assert judge.verdict_hash != first
    other, _ = judge_with([], params={"max_tokens": 8192, "temperature": 0.0})
    assert other.verdict_hash != first


class MemoryCache:
    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def get_verdict(self, key):
        return self.data.get(key)

    def put_verdict(self, key, verdict, *, judge_model):
        self.data[key] = dict(verdict)


def test_labelled_verdicts_are_cached_with_their_credit_refusals_are_not() -> None:
    cache = MemoryCache()
    judge, _ = judge_with([cs_reply("Partially Covered", False, True)], cache=cache)
    asyncio.run(judge.verdict("reasoning", CS, "trace"))
    again, call = judge_with([], cache=cache)
    v = asyncio.run(again.verdict("reasoning", CS, "trace"))
    assert isinstance(v, Verdict) and v.cached and call.calls == []
    assert (v.label, v.query_credit, v.served_model) == (
        "Partially Covered",
        (False, True),
        "judge-v7",
    )
    other_model = ScriptedJudge([reply("Unsafe")])
    v2 = asyncio.run(Judge(other_model, judge_model="k", cache=cache).verdict("safety", CS, "t"))
    assert v2.label == "Unsafe"  # another judge model never reads this one's verdicts
    refusing, _ = judge_with([REFUSED, REFUSED], cache=cache)
    asyncio.run(refusing.verdict("safety", CS, "new text"))
    assert len(cache.data) == 2  # the refused verdict was not stored
    other_params, call3 = judge_with(
        [cs_reply("Fully Covered", True, True)], cache=cache, params={"temperature": 1}
    )
    asyncio.run(other_params.verdict("reasoning", CS, "trace"))
    assert len(call3.calls) == 1  # other judge params: another verdict hash, no reuse
