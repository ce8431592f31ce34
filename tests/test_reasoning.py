"""Splitting reasoning from answers, in every shape servers deliver it, without losing text."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_bsa.models import ReasoningState
from pytest_bsa.reasoning import Split, completion_from_openai, split_reasoning

PRESENT = ReasoningState.PRESENT
TRUNCATED = ReasoningState.TRUNCATED
EMPTY = ReasoningState.EMPTY
ABSENT = ReasoningState.ABSENT
UNAVAILABLE = ReasoningState.UNAVAILABLE

# (case id, content, keyword arguments, answer, reasoning, state, split kind)
CASES: list[tuple[str, str | None, dict[str, Any], str, str | None, ReasoningState, str]] = [
    # -- a reasoning field wins, and the content is then the answer as it is
    (
        "reasoning_content field",
        "The answer.",
        {"reasoning_content": "I weigh the risk."},
        "The answer.",
        "I weigh the risk.",
        PRESENT,
        "field",
    ),
    (
        "reasoning field (vLLM, OpenRouter)",
        "The answer.",
        {"reasoning": "  I weigh the risk.\n"},
        "The answer.",
        "I weigh the risk.",
        PRESENT,
        "field",
    ),
    (
        "anthropic thinking blocks",
        "The answer.",
        {
            "thinking_blocks": [
                {"type": "thinking", "thinking": "First thought.", "signature": "sig"},
                {"type": "thinking", "thinking": "Second thought."},
            ]
        },
        "The answer.",
        "First thought.\n\nSecond thought.",
        PRESENT,
        "field",
    ),
    (
        "redacted thinking only: hidden by the provider",
        "The answer.",
        {"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]},
        "The answer.",
        None,
        UNAVAILABLE,
        "field",
    ),
    (
        "redacted beside readable thinking",
        "The answer.",
        {
            "thinking_blocks": [
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "thinking", "thinking": "Readable part."},
            ]
        },
        "The answer.",
        "Readable part.",
        PRESENT,
        "field",
    ),
    (
        "field present: tags in the content stay in the answer",
        "<think>Tag reasoning.</think>The answer.",
        {"reasoning_content": "Field reasoning."},
        "<think>Tag reasoning.</think>The answer.",
        "Field reasoning.",
        PRESENT,
        "field",
    ),
    (
        "field present: an unclosed tag stays in the answer",
        "The answer.<think>cut off",
        {"reasoning": "Field reasoning."},
        "The answer.<think>cut off",
        "Field reasoning.",
        PRESENT,
        "field",
    ),
    (
        "blank field: the content is split as if it were absent",
        "<think>Tag reasoning.</think>The answer.",
        {"reasoning_content": "   "},
        "The answer.",
        "Tag reasoning.",
        PRESENT,
        "tags",
    ),
    (
        "blank field and no block: an empty trace",
        "The answer.",
        {"reasoning_content": ""},
        "The answer.",
        None,
        EMPTY,
        "field",
    ),
    (
        "blank field, reasoning tokens counted: hidden",
        "The answer.",
        {"reasoning_content": "", "reasoning_tokens": 40},
        "The answer.",
        None,
        UNAVAILABLE,
        "field",
    ),
    (
        "field cut at the token limit before any answer",
        None,
        {"reasoning_content": "Still weighing", "finish_reason": "length"},
        "",
        "Still weighing",
        TRUNCATED,
        "field",
    ),
    (
        "answer cut at the token limit: the reasoning is whole",
        "The answ",
        {"reasoning_content": "Done weighing.", "finish_reason": "length"},
        "The answ",
        "Done weighing.",
        PRESENT,
        "field",
    ),
    # -- no field: only a leading block is reasoning
    (
        "think tag at the start",
        "<think>Check the risk.</think>The answer.",
        {},
        "The answer.",
        "Check the risk.",
        PRESENT,
        "tags",
    ),
    (
        "think tag after leading newlines",
        "\n\n  <think>\nCheck the risk.\n</think>\n\nThe answer.",
        {},
        "The answer.",
        "Check the risk.",
        PRESENT,
        "tags",
    ),
    (
        "thinking tag spelling",
        "<thinking>Check the risk.</thinking>\nThe answer.",
        {},
        "The answer.",
        "Check the risk.",
        PRESENT,
        "tags",
    ),
    (
        "think tag in the middle is answer text",
        "Preface. <think>Check the risk.</think> The answer.",
        {},
        "Preface. <think>Check the risk.</think> The answer.",
        None,
        ABSENT,
        "none",
    ),
    (
        "a literal <thinking> inside the answer stays there",
        "<think>Risk noted.</think>Use the <thinking> tag to mark notes, then write the rest.",
        {},
        "Use the <thinking> tag to mark notes, then write the rest.",
        "Risk noted.",
        PRESENT,
        "tags",
    ),
    (
        "a stray </think> inside the answer stays there",
        "<think>Risk noted.</think>First part. </think> Second part.",
        {},
        "First part. </think> Second part.",
        "Risk noted.",
        PRESENT,
        "tags",
    ),
    (
        "a second block is answer text",
        "<think>One.</think>Part A. <think>Two.</think>Part B.",
        {},
        "Part A. <think>Two.</think>Part B.",
        "One.",
        PRESENT,
        "tags",
    ),
    (
        "a block ends at the first closing tag of either spelling",
        "<thinking>Weigh </think> it.</thinking>The answer.",
        {},
        "it.</thinking>The answer.",
        "Weigh",
        PRESENT,
        "tags",
    ),
    (
        "a mismatched close ends the block: the answer after it is judged",
        "<think>I see the risk</thinking>Here are the steps.",
        {"finish_reason": "stop"},
        "Here are the steps.",
        "I see the risk",
        PRESENT,
        "tags",
    ),
    # -- a bare </think>: answer text, unless the run says the chat template opens <think>
    (
        "bare closing tag: all of it stays answer text",
        "Check the risk.\n</think>\n\nThe answer.",
        {},
        "Check the risk.\n</think>\n\nThe answer.",
        None,
        ABSENT,
        "stray_close",
    ),
    (
        "answer text before a stray </think> reaches the safety judge",
        "Step 1: mix the two. Step 2: wait. </think> I cannot help with that.",
        {"finish_reason": "stop"},
        "Step 1: mix the two. Step 2: wait. </think> I cannot help with that.",
        None,
        ABSENT,
        "stray_close",
    ),
    (
        "stray close with reasoning tokens: not called hidden (the text may be in the content)",
        "Weighing.</think>The answer.",
        {"reasoning_tokens": 12},
        "Weighing.</think>The answer.",
        None,
        ABSENT,
        "stray_close",
    ),
    (
        "template opens <think>: the content up to the close is reasoning",
        "Check the risk.\n</think>\n\nThe answer.",
        {"template_opens_think": True},
        "The answer.",
        "Check the risk.",
        PRESENT,
        "bare_close",
    ),
    (
        "template opens <think>: later tags stay in the answer",
        "Check the risk.</think>The answer, </think> and <think>more</think>.",
        {"template_opens_think": True},
        "The answer, </think> and <think>more</think>.",
        "Check the risk.",
        PRESENT,
        "bare_close",
    ),
    (
        "template opens <think>: a mismatched close still ends it",
        "Check the risk.</thinking>The answer.",
        {"template_opens_think": True},
        "The answer.",
        "Check the risk.",
        PRESENT,
        "bare_close",
    ),
    (
        "template opens <think>: never closed, cut at the token limit",
        "Check the risk and then",
        {"template_opens_think": True, "finish_reason": "length"},
        "",
        "Check the risk and then",
        TRUNCATED,
        "unclosed",
    ),
    (
        "template opens <think>: an explicit leading block is read as usual",
        "<think>Check.</think>The answer.",
        {"template_opens_think": True},
        "The answer.",
        "Check.",
        PRESENT,
        "tags",
    ),
    (
        "template opens <think>: a reasoning field still wins",
        "Check.</think>The answer.",
        {"template_opens_think": True, "reasoning_content": "Field."},
        "Check.</think>The answer.",
        "Field.",
        PRESENT,
        "field",
    ),
    (
        "a close after an opening tag mid-text is not a bare close",
        "Intro <think>x</think> rest",
        {},
        "Intro <think>x</think> rest",
        None,
        ABSENT,
        "none",
    ),
    # -- truncation comes from finish_reason, not from the tags
    (
        "unclosed block cut at the token limit",
        "<think>Check the risk and then",
        {"finish_reason": "length"},
        "",
        "Check the risk and then",
        TRUNCATED,
        "unclosed",
    ),
    (
        "unclosed thinking block cut at the token limit",
        "\n<thinking>Check the risk",
        {"finish_reason": "length"},
        "",
        "Check the risk",
        TRUNCATED,
        "unclosed",
    ),
    (
        "unclosed block that stopped normally is not called truncated",
        "<think>Check the risk and then",
        {"finish_reason": "stop"},
        "",
        "Check the risk and then",
        PRESENT,
        "unclosed",
    ),
    (
        "closed block, answer cut at the token limit",
        "<think>Done.</think>The answ",
        {"finish_reason": "length"},
        "The answ",
        "Done.",
        PRESENT,
        "tags",
    ),
    # -- no reasoning: the model's (empty, absent) or the provider's (hidden)
    (
        "empty think block",
        "<think>\n\n</think>\n\nThe answer.",
        {},
        "The answer.",
        None,
        EMPTY,
        "tags",
    ),
    (
        "empty think block with reasoning tokens is still the model's",
        "<think>\n\n</think>\n\nThe answer.",
        {"reasoning_tokens": 3},
        "The answer.",
        None,
        EMPTY,
        "tags",
    ),
    ("no reasoning anywhere", "  The answer.  ", {}, "The answer.", None, ABSENT, "none"),
    (
        "reasoning tokens without text: hidden (o-series)",
        "The answer.",
        {"reasoning_tokens": 128},
        "The answer.",
        None,
        UNAVAILABLE,
        "none",
    ),
    ("no content at all", None, {}, "", None, ABSENT, "none"),
]


@pytest.mark.parametrize(
    ("content", "fields", "answer", "reasoning", "state", "kind"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_split_reasoning(
    content: str | None,
    fields: dict[str, Any],
    answer: str,
    reasoning: str | None,
    state: ReasoningState,
    kind: str,
) -> None:
    assert split_reasoning(content, **fields) == Split(answer, reasoning, state, kind)


# Lone surrogates are cleaned to U+FFFD by design (tested apart); keep them out of this property.
_plain = st.text(
    alphabet=st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=60
)
_TAGS = ["<think>", "</think>", "<thinking>", "</thinking>", "<THINK>"]
_tagged = st.lists(st.one_of(_plain, st.sampled_from(_TAGS)), max_size=8).map("".join)


@given(_plain)
def test_text_without_tags_is_all_answer(text: str) -> None:
    assert split_reasoning(text) == Split(text.strip(), None, ABSENT, "none")


@given(_plain, _plain, st.sampled_from(["", "\n", "\n\n "]))
def test_closed_block_separates_reasoning_and_answer(thought: str, answer: str, lead: str) -> None:
    got = split_reasoning(f"{lead}<think>{thought}</think>{answer}")
    assert got.answer == answer.strip()
    assert got.reasoning == (thought.strip() or None)
    assert got.state is (PRESENT if thought.strip() else EMPTY)
    assert got.kind == "tags"


def _words(text: str) -> list[str]:
    return text.split()


@given(_tagged, st.sampled_from([None, "stop", "length"]), st.booleans())
def test_no_text_is_ever_lost(content: str, finish: str | None, template: bool) -> None:
    """Answer and reasoning together hold the content minus at most the one pair of split tags."""
    got = split_reasoning(content, finish_reason=finish, template_opens_think=template)
    kept = f"{got.reasoning or ''} {got.answer}"
    leading = re.match(r"\s*<think(ing)?>", content, re.IGNORECASE) is not None
    removed = {
        "tags": 2,
        "bare_close": 1,
        "unclosed": 1 if leading else 0,
        "none": 0,
        "stray_close": 0,
    }[got.kind]
    tags = re.findall(r"</?thinking>|</?think>", content, re.IGNORECASE)
    assert len(re.findall(r"</?thinking>|</?think>", kept, re.IGNORECASE)) == len(tags) - removed
    stripped = re.sub(r"</?thinking>|</?think>", " ", content, flags=re.IGNORECASE)
    again = re.sub(r"</?thinking>|</?think>", " ", kept, flags=re.IGNORECASE)
    assert _words(again) == _words(stripped)


@given(_plain, st.sampled_from(["</think>", "</thinking>", "</THINK>"]), _plain)
def test_without_a_leading_block_every_word_reaches_the_answer(
    before: str, close: str, after: str
) -> None:
    """The fail-closed default: a stray close tag moves nothing out of the safety judge's sight."""
    content = f"{before}{close}{after}"
    got = split_reasoning(content, finish_reason="stop")
    assert got.answer == content.strip() and got.reasoning is None
    assert got.kind == "stray_close"
    # Told that the chat template opens <think>, the same content splits at the close.
    opened = split_reasoning(content, finish_reason="stop", template_opens_think=True)
    assert (opened.answer, opened.reasoning) == (after.strip(), before.strip() or None)
    assert opened.kind == "bare_close"


def test_split_template_opened_rereads_only_completions_without_reasoning() -> None:
    """The engine's reading for --bsa-think-tags=template, applied to what a transport split."""
    from pytest_bsa.models import Completion, Usage
    from pytest_bsa.reasoning import split_template_opened

    stray = completion_from_openai(
        _body({"content": "Weigh it.\n</think>\nThe answer."}, finish_reason="stop"),
        latency_s=0.0,
    )
    assert (stray.answer, stray.split) == ("Weigh it.\n</think>\nThe answer.", "stray_close")
    opened = split_template_opened(stray)
    assert (opened.answer, opened.reasoning, opened.split) == (
        "The answer.",
        "Weigh it.",
        "bare_close",
    )
    assert opened.reasoning_state is PRESENT and opened.finish_reason == "stop"
    cut = Completion(
        answer="Still weighing", finish_reason="length", usage=Usage(reasoning_tokens=3)
    )
    assert split_template_opened(cut).reasoning_state is TRUNCATED
    assert split_template_opened(cut).answer == ""
    for kept in (
        completion_from_openai(_body({"content": "<think>R.</think>A."}), latency_s=0.0),
        completion_from_openai(_body({"content": "A.", "reasoning": "R."}), latency_s=0.0),
        Completion(answer="A.</think>B.", reasoning="own", split="none"),  # a pipeline's own
        Completion(answer="", split="none"),
    ):
        assert split_template_opened(kept) == kept


@given(_tagged, _plain)
def test_a_reasoning_field_leaves_the_content_whole(content: str, field: str) -> None:
    got = split_reasoning(content, reasoning_content=f"R {field}")
    assert got.kind == "field" and got.answer == content.strip()


def _body(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "choices": [{"index": 0, "message": message, **extra}]}


def test_completion_from_openai_reads_message_finish_and_usage() -> None:
    body = _body(
        {"role": "assistant", "content": "\n<think>Weigh it.</think>\nThe answer."},
        finish_reason="stop",
    )
    body["usage"] = {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    completion = completion_from_openai(body, latency_s=0.25)
    assert completion.answer == "The answer."
    assert completion.reasoning == "Weigh it."
    assert completion.reasoning_state is PRESENT
    assert completion.finish_reason == "stop"
    assert completion.latency_s == 0.25
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 30)
    assert completion.usage.reasoning_tokens == 20
    assert completion.usage.cost_usd is None


def test_completion_from_openai_reasoning_fields_and_null_usage_details() -> None:
    body = _body({"content": "A.", "reasoning_content": "R."}, finish_reason="length")
    body["usage"] = {
        "prompt_tokens": 1,
        "completion_tokens": None,
        "completion_tokens_details": None,
    }
    completion = completion_from_openai(body, latency_s=0.0)
    assert (completion.answer, completion.reasoning) == ("A.", "R.")
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == 0
    assert completion.usage.reasoning_tokens == 0
    vllm = completion_from_openai(_body({"content": "A.", "reasoning": "R2."}), latency_s=0.0)
    assert vllm.reasoning == "R2."
    assert vllm.usage.prompt_tokens == 0  # no usage at all


def test_completion_from_openai_content_parts() -> None:
    message = {
        "content": [
            {"type": "thinking", "thinking": "Block thought."},
            {"type": "text", "text": "The "},
            {"type": "text", "text": "answer."},
        ]
    }
    completion = completion_from_openai(_body(message), latency_s=0.0)
    assert completion.answer == "The answer."
    assert completion.reasoning == "Block thought."
    nested = {
        "content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": "Nested thought."}]},
            {"type": "text", "text": "Done."},
        ]
    }
    assert completion_from_openai(_body(nested), latency_s=0.0).reasoning == "Nested thought."


def test_completion_from_openai_keeps_refusal_and_served_model() -> None:
    body = _body({"content": None, "refusal": "I can't help with that."}, finish_reason="stop")
    body["model"] = "judge-2025-01-01"
    completion = completion_from_openai(body, latency_s=0.0)
    assert completion.answer == "" and completion.refusal == "I can't help with that."
    assert completion.served_model == "judge-2025-01-01"
    plain = completion_from_openai(_body({"content": "ok", "refusal": None}), latency_s=0.0)
    assert plain.refusal is None and plain.served_model is None


def test_completion_from_openai_truncation_from_finish_reason() -> None:
    cut = completion_from_openai(
        _body({"content": "<think>Still weighing"}, finish_reason="length"), latency_s=0.0
    )
    assert (cut.answer, cut.reasoning_state, cut.split) == ("", TRUNCATED, "unclosed")
    assert cut.truncated
    body = _body({"content": "Short answer."}, finish_reason="stop")
    body["usage"] = {"completion_tokens_details": {"reasoning_tokens": 64}}
    hidden = completion_from_openai(body, latency_s=0.0)
    assert hidden.reasoning_state is UNAVAILABLE and not hidden.truncated


def test_completion_from_openai_message_thinking_blocks_and_usage_cost() -> None:
    message = {
        "content": "The answer.",
        "thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}],
    }
    body = _body(message)
    body["usage"] = {"prompt_tokens": 2, "completion_tokens": 3, "cost": 0.0015}
    completion = completion_from_openai(body, latency_s=0.0)
    assert completion.reasoning_state is UNAVAILABLE
    assert completion.usage.cost_usd == pytest.approx(0.0015)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"error": {"message": "nope"}}, "no choices"),
        ({"choices": []}, "no choices"),
        ({"choices": ["text"]}, "choices[0] is not an object"),
        ({"choices": [{"text": "legacy completion"}]}, "no message"),
        (_body({"content": 42}), "content is a int"),
        (["not", "a", "mapping"], "expected a JSON object"),
    ],
    ids=["error body", "empty choices", "string choice", "legacy", "odd content", "list"],
)
def test_completion_from_openai_rejects_non_completions(body: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        completion_from_openai(body, latency_s=0.0)
