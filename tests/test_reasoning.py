"""Splitting reasoning from answers, in every shape servers deliver it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_bsa.models import ReasoningState
from pytest_bsa.reasoning import completion_from_openai, split_reasoning

PRESENT = ReasoningState.PRESENT
TRUNCATED = ReasoningState.TRUNCATED
UNAVAILABLE = ReasoningState.UNAVAILABLE

# (case id, content, keyword fields, expected answer, expected reasoning, expected state)
CASES: list[tuple[str, str | None, dict[str, Any], str, str | None, ReasoningState]] = [
    (
        "reasoning_content field",
        "The answer.",
        {"reasoning_content": "I weigh the risk."},
        "The answer.",
        "I weigh the risk.",
        PRESENT,
    ),
    (
        "reasoning field (vLLM, OpenRouter)",
        "The answer.",
        {"reasoning": "  I weigh the risk.\n"},
        "The answer.",
        "I weigh the risk.",
        PRESENT,
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
    ),
    (
        "redacted thinking only",
        "The answer.",
        {"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]},
        "The answer.",
        None,
        UNAVAILABLE,
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
    ),
    (
        "think tag at the start",
        "<think>Check the risk.</think>The answer.",
        {},
        "The answer.",
        "Check the risk.",
        PRESENT,
    ),
    (
        "think tag after leading newlines",
        "\n\n  <think>\nCheck the risk.\n</think>\n\nThe answer.",
        {},
        "The answer.",
        "Check the risk.",
        PRESENT,
    ),
    (
        "think tag in the middle",
        "Preface. <think>Check the risk.</think> The answer.",
        {},
        "Preface.  The answer.",
        "Check the risk.",
        PRESENT,
    ),
    (
        "bare closing tag (opening tag in the chat template)",
        "Check the risk.\n</think>\n\nThe answer.",
        {},
        "The answer.",
        "Check the risk.",
        PRESENT,
    ),
    (
        "unclosed think tag (truncated at max tokens)",
        "<think>Check the risk and then",
        {},
        "",
        "Check the risk and then",
        TRUNCATED,
    ),
    (
        "empty think block",
        "<think>\n\n</think>\n\nThe answer.",
        {},
        "The answer.",
        None,
        UNAVAILABLE,
    ),
    ("no reasoning anywhere", "  The answer.  ", {}, "The answer.", None, UNAVAILABLE),
    ("no content at all", None, {}, "", None, UNAVAILABLE),
    (
        "field wins over tags, tags still stripped",
        "<think>Tag reasoning.</think>The answer.",
        {"reasoning_content": "Field reasoning."},
        "The answer.",
        "Field reasoning.",
        PRESENT,
    ),
    (
        "field wins over an unclosed tag",
        "The answer.<think>cut off",
        {"reasoning": "Field reasoning."},
        "The answer.",
        "Field reasoning.",
        PRESENT,
    ),
    (
        "blank field falls back to tags",
        "<think>Tag reasoning.</think>The answer.",
        {"reasoning_content": "   "},
        "The answer.",
        "Tag reasoning.",
        PRESENT,
    ),
    (
        "thinking tag spelling",
        "<thinking>Check the risk.</thinking>\nThe answer.",
        {},
        "The answer.",
        "Check the risk.",
        PRESENT,
    ),
    (
        "unclosed thinking tag spelling",
        "\n<thinking>Check the risk",
        {},
        "",
        "Check the risk",
        TRUNCATED,
    ),
    (
        "two think blocks",
        "<think>One.</think>Part A. <think>Two.</think>Part B.",
        {},
        "Part A. Part B.",
        "One.\n\nTwo.",
        PRESENT,
    ),
]


@pytest.mark.parametrize(
    ("content", "fields", "answer", "reasoning", "state"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_split_reasoning(
    content: str | None,
    fields: dict[str, Any],
    answer: str,
    reasoning: str | None,
    state: ReasoningState,
) -> None:
    assert split_reasoning(content, **fields) == (answer, reasoning, state)


# Lone surrogates are cleaned to U+FFFD by design (tested apart); keep them out of this property.
_plain = st.text(
    alphabet=st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=60
)


@given(_plain)
def test_text_without_tags_is_all_answer(text: str) -> None:
    assert split_reasoning(text) == (text.strip(), None, UNAVAILABLE)


@given(_plain, _plain, st.sampled_from(["", "\n", "\n\n "]))
def test_closed_block_separates_reasoning_and_answer(thought: str, answer: str, lead: str) -> None:
    got_answer, got_reasoning, state = split_reasoning(f"{lead}<think>{thought}</think>{answer}")
    assert got_answer == answer.strip()
    assert got_reasoning == (thought.strip() or None)
    assert state is (PRESENT if thought.strip() else UNAVAILABLE)


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
