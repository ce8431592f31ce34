"""Split a raw chat completion into its reasoning trace and its final answer (pure).

Servers deliver reasoning in many shapes (DESIGN.md section 3): a ``reasoning_content`` or
``reasoning`` field, Anthropic thinking blocks, ``<think>``/``<thinking>`` tags anywhere in the
content, a bare ``</think>`` whose opening tag was in the chat template, or an unclosed
``<think>`` cut off at the token limit. Hidden or absent reasoning is ``UNAVAILABLE``, not wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_bsa.models import Completion, ReasoningState, Usage

_OPEN = re.compile(r"<(?:think|thinking)>", re.IGNORECASE)
_CLOSE = re.compile(r"</(?:think|thinking)>", re.IGNORECASE)


def _split_tags(content: str) -> tuple[str, str | None, bool]:
    """Remove every think block from ``content``: (answer, tag reasoning, truncated)."""
    answer_parts: list[str] = []
    reasoning_parts: list[str] = []
    truncated = False
    pos = 0
    first_open = _OPEN.search(content)
    first_close = _CLOSE.search(content)
    if first_close and (first_open is None or first_close.start() < first_open.start()):
        # The opening tag was in the chat template: everything before the close is reasoning.
        reasoning_parts.append(content[: first_close.start()])
        pos = first_close.end()
    while True:
        opened = _OPEN.search(content, pos)
        if opened is None:
            answer_parts.append(content[pos:])
            break
        answer_parts.append(content[pos : opened.start()])
        closed = _CLOSE.search(content, opened.end())
        if closed is None:
            reasoning_parts.append(content[opened.end() :])
            truncated = True
            break
        reasoning_parts.append(content[opened.end() : closed.start()])
        pos = closed.end()
    reasoning = "\n\n".join(p.strip() for p in reasoning_parts if p.strip())
    return "".join(answer_parts).strip(), reasoning or None, truncated


def _thinking_text(blocks: Sequence[Mapping[str, Any]] | None) -> str | None:
    """Join the text of ``thinking`` blocks; redacted blocks contribute nothing."""
    texts: list[str] = []
    for block in blocks or ():
        if not isinstance(block, Mapping) or block.get("type") != "thinking":
            continue
        thinking = block.get("thinking")
        if isinstance(thinking, str):
            texts.append(thinking.strip())
        elif isinstance(thinking, Sequence):  # Mistral nests text parts inside a thinking part
            texts.append(_text_of_parts(thinking).strip())
    return "\n\n".join(t for t in texts if t) or None


def _text_of_parts(parts: Sequence[Any]) -> str:
    return "".join(
        p["text"] for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str)
    )


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Model text safe to store and report: lone UTF-16 surrogates (valid in JSON ``\\ud800``
    escapes, not encodable as UTF-8) become U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def split_reasoning(
    content: str | None,
    *,
    reasoning_content: str | None = None,
    reasoning: str | None = None,
    thinking_blocks: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[str, str | None, ReasoningState]:
    """Return ``(answer, reasoning, state)``, with text cleaned by :func:`clean_text`.

    A dedicated field (``reasoning_content``, then ``reasoning``, then thinking blocks) wins over
    tags in the content; tags are stripped from the answer either way.
    """
    answer, reasoning_text, state = _split(content, reasoning_content, reasoning, thinking_blocks)
    return clean_text(answer), None if reasoning_text is None else clean_text(reasoning_text), state


def _split(
    content: str | None,
    reasoning_content: str | None,
    reasoning: str | None,
    thinking_blocks: Sequence[Mapping[str, Any]] | None,
) -> tuple[str, str | None, ReasoningState]:
    answer, tag_reasoning, truncated = _split_tags(content or "")
    for field in (reasoning_content, reasoning):
        if isinstance(field, str) and field.strip():
            return answer, field.strip(), ReasoningState.PRESENT
    from_blocks = _thinking_text(thinking_blocks)
    if from_blocks:
        return answer, from_blocks, ReasoningState.PRESENT
    if truncated:
        return answer, tag_reasoning, ReasoningState.TRUNCATED
    if tag_reasoning:
        return answer, tag_reasoning, ReasoningState.PRESENT
    return answer, None, ReasoningState.UNAVAILABLE


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_openai(usage: Any, cost_usd: float | None = None) -> Usage:
    """Token counts from an OpenAI ``usage`` object (missing or null fields count as 0)."""
    if not isinstance(usage, Mapping):
        return Usage(cost_usd=cost_usd)
    details = usage.get("completion_tokens_details")
    reasoning_tokens = details.get("reasoning_tokens") if isinstance(details, Mapping) else None
    if cost_usd is None:  # OpenRouter reports the charge in usage.cost
        cost = usage.get("cost")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            cost_usd = float(cost)
    return Usage(
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        reasoning_tokens=_int(reasoning_tokens),
        cost_usd=cost_usd,
    )


def completion_from_openai(
    body: Mapping[str, Any], *, latency_s: float, cost_usd: float | None = None
) -> Completion:
    """Build a ``Completion`` from a chat-completions response body.

    Raises ``ValueError`` with a short reason when ``body`` is not a chat completion.
    """
    if not isinstance(body, Mapping):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    choices = body.get("choices")
    if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
        raise ValueError("no choices in the response")
    choice = choices[0]
    if not isinstance(choice, Mapping):
        raise ValueError("choices[0] is not an object")
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise ValueError("choices[0] has no message")
    raw = message.get("content")
    blocks = [b for b in message.get("thinking_blocks") or () if isinstance(b, Mapping)]
    if isinstance(raw, str) or raw is None:
        content = raw
    elif isinstance(raw, Sequence):
        parts = [p for p in raw if isinstance(p, Mapping)]
        content = _text_of_parts([p for p in parts if p.get("type", "text") == "text"])
        blocks.extend(p for p in parts if p.get("type") in ("thinking", "redacted_thinking"))
    else:
        raise ValueError(f"message content is a {type(raw).__name__}")
    reasoning_content = message.get("reasoning_content")
    reasoning = message.get("reasoning")
    answer, trace, state = split_reasoning(
        content,
        reasoning_content=reasoning_content if isinstance(reasoning_content, str) else None,
        reasoning=reasoning if isinstance(reasoning, str) else None,
        thinking_blocks=blocks,
    )
    finish = choice.get("finish_reason")
    served, fingerprint = body.get("model"), body.get("system_fingerprint")
    return Completion(
        answer=answer,
        reasoning=trace,
        reasoning_state=state,
        finish_reason=finish if isinstance(finish, str) else None,
        usage=usage_from_openai(body.get("usage"), cost_usd),
        latency_s=latency_s,
        served_model=clean_text(served)[:200] if isinstance(served, str) else None,
        system_fingerprint=clean_text(fingerprint)[:200] if isinstance(fingerprint, str) else None,
    )
