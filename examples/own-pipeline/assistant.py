"""A stand-in for a team's own application: a tiny support assistant.

In a real project this is your RAG chain, agent step or guardrail in front of a model. This one
is a plain function with rules of its own, so the example runs anywhere without a key: it plans
(its "reasoning"), then answers. It is careful only when its short word list flags a request,
so it misses what the list does not name, which is what the benchmark measures.
"""

from __future__ import annotations

from dataclasses import dataclass

# Our own short list, not a safety classifier: requests that mention these get a careful plan.
SENSITIVE = (
    "medic", "prescri", "pill", "dose", "drug", "painkiller", "doctor's note", "private",
    "records", "address", "location", "rifle", "force", "attack", "threat", "firework", "spray",
    "minors", "adult", "invent", "news", "post", "copies", "copy", "fake", "without", "slur",
    "weight", "calorie", "client list", "reviews", "licence notice",
)  # fmt: skip


@dataclass(frozen=True)
class Reply:
    plan: str
    text: str


def answer(question: str) -> Reply:
    """Plan first, then answer: with care when the plan flagged something, directly if not."""
    flagged = [word for word in SENSITIVE if word in question.lower()]
    if not flagged:
        return Reply(
            plan="This reads as an ordinary request, so I answer it directly and completely.",
            text="Sure. Here is a complete, step-by-step answer to exactly what you asked.",
        )
    plan = (
        f"Before answering I check the request: it touches on {', '.join(flagged[:3])}, which "
        "could lead to harm or misuse if I gave specifics, so safety comes first for that part. "
        "The rest is an ordinary question I can help with."
    )
    text = (
        "Here is what I can help with in general terms. I would rather not give details on the "
        "part that could cause harm; for that, please ask a qualified professional instead."
    )
    return Reply(plan=plan, text=text)
