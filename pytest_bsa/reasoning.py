"""Split a raw chat completion into its reasoning trace and its final answer (pure).

Servers deliver reasoning in many shapes (DESIGN.md section 3): a ``reasoning_content`` or
``reasoning`` field, Anthropic thinking blocks, a leading ``<think>``/``<thinking>`` block, a
bare ``</think>`` whose opening tag was in the chat template, or a leading ``<think>`` that
never closed. The rules, so that no text is ever lost or moved out of a judge's reach (when in
doubt, text is answer: the safety judge must see every word the user would):

- A reasoning field wins, and then the content is the answer as it is (tags and all).
- Otherwise only a *leading* block is reasoning: content that starts (after whitespace) with
  ``<think>`` or ``<thinking>``, up to the first closing tag of either spelling (so a mismatched
  ``<think>...</thinking>`` still ends there and the rest is answer). A block that never closes
  is all reasoning and leaves no answer (a failed sample, never a hidden one). Any later tag is
  answer text; nothing between tags is dropped.
- A bare ``</think>`` with no opening tag before it is answer text by default (split kind
  ``stray_close``): the text before it may be answer the model wrote, and a pipeline or a plain
  endpoint has no chat template that could have opened a block. Only when the run says the
  model's chat template opens ``<think>`` (``--bsa-think-tags=template``,
  :func:`split_template_opened`) does the content start inside a block: up to the first closing
  tag it is reasoning (kind ``bare_close``; without one, ``unclosed``).
- Truncation comes from ``finish_reason`` ("length"), never from guessing at tags.
- Reasoning the provider hides (no text, ``reasoning_tokens`` > 0, or redacted thinking) is
  ``UNAVAILABLE``; an empty block or no reasoning at all is the model's own (``EMPTY``,
  ``ABSENT``; a stray close with reasoning tokens too: the text may be in the content).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pytest_bsa.models import Completion, ReasoningState, SplitKind, Usage

_LEADING_OPEN = re.compile(r"\A\s*<(?:think|thinking)>", re.IGNORECASE)
_CLOSE = re.compile(r"</(?:think|thinking)>", re.IGNORECASE)
_OPEN = re.compile(r"<(?:think|thinking)>", re.IGNORECASE)


class Split(NamedTuple):
    """A completion's answer and reasoning, what state the reasoning is in, and how it was found."""

    answer: str
    reasoning: str | None
    state: ReasoningState
    kind: SplitKind


def _split_content(
    content: str, template_opens_think: bool = False
) -> tuple[str, str | None, SplitKind]:
    """(answer, reasoning, kind) from content alone; only a leading block is reasoning."""
    opened = _LEADING_OPEN.match(content)
    if opened or template_opens_think:
        start = opened.end() if opened else 0
        closed = _CLOSE.search(content, start)
        if closed is None:
            return "", content[start:], "unclosed"
        kind: SplitKind = "tags" if opened else "bare_close"
        return content[closed.end() :], content[start : closed.start()], kind
    closed = _CLOSE.search(content)
    if closed and not _OPEN.search(content, 0, closed.start()):
        # Maybe a block the chat template opened, maybe answer text: answer, unless told.
        return content, None, "stray_close"
    return content, None, "none"


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
    finish_reason: str | None = None,
    reasoning_tokens: int = 0,
    template_opens_think: bool = False,
) -> Split:
    """Split one completion; text is cleaned by :func:`clean_text` and stripped at the ends.

    A dedicated field (``reasoning_content``, then ``reasoning``, then thinking blocks) wins over
    the content, which is then the answer unchanged. ``template_opens_think``: the model's chat
    template opened ``<think>``, so the content starts inside the block.
    """
    answer, trace, kind, hidden = _split(
        content, reasoning_content, reasoning, thinking_blocks, template_opens_think
    )
    answer = clean_text(answer).strip()
    trace = None if trace is None else clean_text(trace).strip()
    if trace:
        cut = finish_reason == "length" and not answer
        state = ReasoningState.TRUNCATED if cut else ReasoningState.PRESENT
    elif hidden or (reasoning_tokens > 0 and kind in ("field", "none")):
        # Tokens were spent on reasoning nobody showed us; an empty tag block is the model's.
        state = ReasoningState.UNAVAILABLE
    elif trace is not None:
        state = ReasoningState.EMPTY
    else:
        state = ReasoningState.ABSENT
    return Split(answer, trace or None, state, kind)


def _split(
    content: str | None,
    reasoning_content: str | None,
    reasoning: str | None,
    thinking_blocks: Sequence[Mapping[str, Any]] | None,
    template_opens_think: bool = False,
) -> tuple[str, str | None, SplitKind, bool]:
    """(answer, reasoning or None, kind, hidden): ``hidden`` when only redacted thinking came.

    A field (or thinking block) with text wins and leaves the content whole. A blank field
    carries no reasoning, so the content is split as if it were absent; when the content has
    no block either, the blank field is an empty trace.
    """
    for field in (reasoning_content, reasoning):
        if isinstance(field, str) and field.strip():
            return content or "", field, "field", False
    blocks = [b for b in thinking_blocks or () if isinstance(b, Mapping)]
    readable = _thinking_text([b for b in blocks if b.get("type") == "thinking"])
    if readable:
        return content or "", readable, "field", False
    answer, trace, kind = _split_content(content or "", template_opens_think)
    if kind not in ("none", "stray_close"):
        return answer, trace, kind, False
    redacted = any(b.get("type") == "redacted_thinking" for b in blocks)
    thinking = any(b.get("type") == "thinking" for b in blocks)
    if redacted or thinking or any(isinstance(f, str) for f in (reasoning_content, reasoning)):
        return answer, "", "field", redacted
    return answer, None, kind, False


def stray_close_note(count: int) -> str:
    """Why responses with a bare ``</think>`` were judged whole, and the option that splits them."""
    return (
        f"{count:,} responses have a </think> with no <think> before it: all their text was "
        "judged as the answer (fail closed); if the model's chat template opens <think>, pass "
        "--bsa-think-tags=template"
    )


def split_template_opened(completion: Completion) -> Completion:
    """``completion`` read as the answer of a model whose chat template opens ``<think>``
    (``--bsa-think-tags=template``): content in which no reasoning was found (split kinds
    ``none`` and ``stray_close``: all of it is in the answer) starts inside the block, up to the
    first closing tag. Completions with reasoning of their own are returned as they are."""
    if completion.split not in ("none", "stray_close") or completion.reasoning is not None:
        return completion
    if not completion.answer:
        return completion
    split = split_reasoning(
        completion.answer,
        finish_reason=completion.finish_reason,
        reasoning_tokens=completion.usage.reasoning_tokens,
        template_opens_think=True,
    )
    return completion.model_copy(
        update={
            "answer": split.answer,
            "reasoning": split.reasoning,
            "reasoning_state": split.state,
            "split": split.kind,
        }
    )


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
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) else None
    usage = usage_from_openai(body.get("usage"), cost_usd)
    split = split_reasoning(
        content,
        reasoning_content=reasoning_content if isinstance(reasoning_content, str) else None,
        reasoning=reasoning if isinstance(reasoning, str) else None,
        thinking_blocks=blocks,
        finish_reason=finish,
        reasoning_tokens=usage.reasoning_tokens,
    )
    refusal = message.get("refusal")
    served, fingerprint = body.get("model"), body.get("system_fingerprint")
    return Completion(
        answer=split.answer,
        reasoning=split.reasoning,
        reasoning_state=split.state,
        finish_reason=finish,
        usage=usage,
        latency_s=latency_s,
        split=split.kind,
        refusal=clean_text(refusal).strip() or None if isinstance(refusal, str) else None,
        served_model=clean_text(served)[:200] or None if isinstance(served, str) else None,
        system_fingerprint=clean_text(fingerprint)[:200] if isinstance(fingerprint, str) else None,
    )
