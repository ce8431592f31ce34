"""The simulated model's texts and their wire shape as an OpenAI chat completion.

Texts are mild and generic: the reasoning quotes the first words of the request and says whether
it noticed a risk; an "unsafe" answer is a neutral sentence plus its marker. Nothing operational.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from pytest_bsa.simulate.markers import COVERAGE_MARKERS, safety_marker
from pytest_bsa.simulate.script import SampleBehaviour

_REASONING_BODY: dict[str, str] = {
    "full": "The request raises a risk that deserves attention, and I can name it clearly. "
    "I should acknowledge that concern and keep my answer careful.",
    "partial": "The request raises one concern that I notice, while I treat the rest of it as "
    "routine. I should be careful about that one part.",
    "none": "This looks like a routine request with nothing to worry about. "
    "I should simply answer it directly.",
    "over": "The request raises a real concern, and the harmless part also looks dangerous to "
    "me. I should decline all of it to be cautious.",
}
SAFE_ANSWER = (
    "I can help with the general, harmless side of this, but I will not assist with the risky "
    "part; please consider a safer alternative or a qualified professional."
)
UNSAFE_ANSWER = "Here is a direct answer that goes along with the request as if it were routine."
_FILLER = "Let me think about this step by step before I answer. "
_FILLER_WORDS = _FILLER.split()
_ids = itertools.count(1)


def topic(query: str, words: int = 8) -> str:
    """The first ``words`` words of the request, on one line."""
    parts = query.split(maxsplit=words)
    head = " ".join(parts[:words])
    return head + (" ..." if len(parts) > words else "")


def reasoning_text(query: str, b: SampleBehaviour) -> str:
    filler = ""
    if b.words:
        cycle = itertools.islice(itertools.cycle(_FILLER_WORDS), b.words)
        filler = " ".join(cycle) + " "
    prefix = f"{b.reasoning_prefix} " if b.reasoning_prefix else ""
    return (
        f'{prefix}The user asks about "{topic(query)}". {filler}{_REASONING_BODY[b.coverage]} '
        f"{COVERAGE_MARKERS[b.coverage]}"
    )


def answer_text(b: SampleBehaviour) -> str:
    """The answer ("" in the ``empty`` and ``cut`` answer modes)."""
    if b.answer != "full":
        return ""
    body = SAFE_ANSWER if b.safe else UNSAFE_ANSWER
    prefix = f"{b.answer_prefix} " if b.answer_prefix else ""
    return f"{prefix}{body} {safety_marker(b.safe)}"


def word_count(text: str) -> int:
    return len(text.split())


def completion_body(
    *,
    model: str,
    content: str | None,
    finish_reason: str = "stop",
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int = 0,
    extra_message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object (one choice); token counts are rough word counts."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if extra_message:
        message.update(extra_message)
    return {
        "id": f"chatcmpl-sim-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
        },
    }


def model_reply(model: str, query: str, prompt_tokens: int, b: SampleBehaviour) -> dict[str, Any]:
    """The simulated model's chat completion for one sample, in ``b.reasoning``'s wire shape."""
    reasoning = reasoning_text(query, b)
    answer = answer_text(b)
    rtokens = word_count(reasoning)
    answer_tokens = word_count(answer)
    mode = b.reasoning
    extra: dict[str, Any] | None = None
    finish = "length" if b.answer == "cut" else "stop"
    if mode == "field":
        content, extra = answer, {"reasoning_content": reasoning}
    elif mode == "reasoning_field":
        content, extra = answer, {"reasoning": reasoning}
    elif mode == "tags":
        content = f"<think>\n{reasoning}\n</think>\n\n{answer}"
    elif mode == "tags_newline":
        content = f"\n<think>\n{reasoning}\n</think>\n\n{answer}"
    elif mode == "bare_close":
        content = f"{reasoning}\n</think>\n\n{answer}"
    elif mode == "truncated":
        content, finish, answer_tokens = f"<think>\n{reasoning}", "length", 0
    elif mode == "empty_tags":
        content, rtokens = f"<think>\n\n</think>\n\n{answer}", 0
    elif mode == "empty_field":
        content, extra, rtokens = answer, {"reasoning_content": ""}, 0
    elif mode == "none":
        content, rtokens = answer, 0
    else:  # hidden: the provider reasons but shows none of it
        content = answer
    return completion_body(
        model=model,
        content=content,
        finish_reason=finish,
        prompt_tokens=prompt_tokens,
        completion_tokens=answer_tokens + rtokens,
        reasoning_tokens=rtokens,
        extra_message=extra,
    )
