"""The judge: prompts carry the rubric, replies are validated, re-asks are bounded."""

from __future__ import annotations

import asyncio
import json

import pytest

from pytest_bsa.judge import (
    RUBRIC_VERSION,
    Judge,
    JudgeReplyError,
    build_messages,
    parse_verdict,
    response_format,
)
from pytest_bsa.models import (
    Completion,
    Instance,
    Label,
    ReasoningState,
    SafetyVerdict,
    ThinkVerdict,
    Usage,
)

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


def reply(label: str, explanation: str = "because") -> str:
    return json.dumps({"explanation": explanation, "label": label})


@pytest.mark.parametrize(
    ("content", "label"),
    [
        (reply("Safe"), "Safe"),
        ("```json\n" + reply("Unsafe") + "\n```", "Unsafe"),
        ("Sure. " + reply("safe") + " Done.", "Safe"),  # case folded to the closed set
    ],
)
def test_parse_verdict_accepts_valid_replies(content: str, label: str) -> None:
    assert parse_verdict(content, ("Safe", "Unsafe"))[0] == label


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("I think it is safe", "no JSON object"),
        ('{"label": "Safe"', "no JSON object"),
        ('{"label": Safe}', "does not parse"),
        ('{"explanation": "x"}', 'no "label"'),
        (reply("Mostly Safe"), "not one of"),
    ],
)
def test_parse_verdict_names_the_problem(content: str, problem: str) -> None:
    with pytest.raises(JudgeReplyError, match=problem):
        parse_verdict(content, ("Safe", "Unsafe"))


def test_prompts_carry_scenario_labels_and_isolate_inputs() -> None:
    safety = build_messages("safety", CS, "the answer text")[1]["content"]
    reasoning = build_messages("reasoning", CS, "the trace text")[1]["content"]
    assert "Judge task: safety" in safety and "<answer>\nthe answer text\n</answer>" in safety
    assert "the trace text" not in safety and "the answer text" not in reasoning
    for label in ("Fully Covered", "Partially Covered", "Not Covered"):
        assert label in reasoning
    schema = response_format("reasoning", CS.scenario)["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == [
        "Fully Covered",
        "Partially Covered",
        "Not Covered",
    ]
    assert RUBRIC_VERSION


class ScriptedJudge:
    """Answers each call with the next scripted reply; records the calls."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple] = []

    async def __call__(self, messages, fmt, kind) -> Completion:
        self.calls.append((messages, fmt, kind))
        return Completion(answer=self.replies.pop(0), usage=Usage(prompt_tokens=10))


def completion(reasoning: str | None, state=ReasoningState.PRESENT) -> Completion:
    return Completion(answer="an answer", reasoning=reasoning, reasoning_state=state)


def test_both_verdicts_and_correct_mapping() -> None:
    call = ScriptedJudge([reply("Safe"), reply("Partially Covered")])
    j = asyncio.run(Judge(call, judge_model="j").judge(CS, completion("a trace")))
    assert j.safety is SafetyVerdict.SAFE
    assert j.think is ThinkVerdict.INCORRECT and j.think_label == "Partially Covered"
    assert {c[2] for c in call.calls} == {"safety", "reasoning"}
    assert j.usage.prompt_tokens == 20


def test_malformed_replies_are_reasked_then_unjudged() -> None:
    call = ScriptedJudge(["nonsense", reply("Maybe"), "still nonsense"])
    judge = Judge(call, judge_model="j", max_reasks=2)
    verdict = asyncio.run(judge.verdict("safety", CS, "text"))
    assert verdict.label is None and verdict.attempts == 3
    assert "not one of" in call.calls[2][0][-1]["content"] or "no JSON" in verdict.explanation
    # The re-ask shows the judge its own reply and the problem.
    assert call.calls[1][0][-2] == {"role": "assistant", "content": "nonsense"}


def test_reask_recovers() -> None:
    call = ScriptedJudge(["nonsense", reply("Unsafe")])
    verdict = asyncio.run(Judge(call, judge_model="j").verdict("safety", CS, "text"))
    assert verdict.label == "Unsafe" and verdict.attempts == 2


def test_unavailable_reasoning_is_not_judged_and_not_wrong() -> None:
    call = ScriptedJudge([reply("Safe")])
    j = asyncio.run(
        Judge(call, judge_model="j").judge(CS, completion(None, ReasoningState.UNAVAILABLE))
    )
    assert j.think is ThinkVerdict.UNAVAILABLE and len(call.calls) == 1


def test_unjudged_safety_is_its_own_outcome() -> None:
    call = ScriptedJudge(["x", "x", "x", reply("Fully Covered")])
    j = asyncio.run(Judge(call, judge_model="j").judge(CS, completion("trace")))
    assert j.safety is SafetyVerdict.UNJUDGED


class MemoryCache:
    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def get_verdict(self, key):
        return self.data.get(key)

    def put_verdict(self, key, verdict, *, judge_model):
        self.data[key] = dict(verdict)


def test_verdicts_are_cached_and_reused() -> None:
    cache = MemoryCache()
    first = ScriptedJudge([reply("Safe")])
    asyncio.run(Judge(first, judge_model="j", cache=cache).verdict("safety", CS, "text"))
    again = ScriptedJudge([])
    v = asyncio.run(Judge(again, judge_model="j", cache=cache).verdict("safety", CS, "text"))
    assert v.cached and v.label == "Safe" and again.calls == []
    other_model = ScriptedJudge([reply("Unsafe")])
    v2 = asyncio.run(Judge(other_model, judge_model="k", cache=cache).verdict("safety", CS, "text"))
    assert v2.label == "Unsafe"  # another judge model never reads this one's verdicts
