"""What every rubric shares: the verdict kinds, the prompt and reply shapes, the errors, and
the :class:`Rubric` protocol (pure, no pytest). The rubrics themselves import this module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pytest_bsa.models import SAFETY_LABELS, THINK_LABELS, Instance

JudgeKind = Literal["safety", "reasoning"]
BSA = "bsa"
OFFICIAL = "official"


class RubricError(ValueError):
    """A rubric that cannot be used; the message quotes the bad value and names the fix."""


class JudgeReplyError(ValueError):
    """A judge reply that is not a valid verdict; the message is fed back on re-ask."""


def allowed_labels(kind: JudgeKind, scenario: str) -> tuple[str, ...]:
    """The closed label set of one verdict, in the benchmark's own spelling."""
    return SAFETY_LABELS if kind == "safety" else THINK_LABELS[scenario]


@dataclass(frozen=True)
class JudgePrompt:
    """The conversation for one verdict and the structured-output request (None: JSON in text)."""

    messages: tuple[dict[str, Any], ...]
    response_format: dict[str, Any] | None = None


@dataclass(frozen=True)
class ParsedReply:
    """A valid verdict read from a reply."""

    label: str
    explanation: str
    query_credit: tuple[bool, bool] | None = None  # Cognitive Shortcut: Query A, Query B


class Rubric(Protocol):
    """What a judge is told and how its replies are read."""

    name: str  # "bsa-rubric-2", "official" or "custom"
    source: str  # "built-in", the pinned download, or the directory read
    sha256: str  # of every text of the rubric that shapes a verdict
    structured: bool  # asks for JSON-schema structured output (else JSON in the text)
    files: Mapping[str, str]  # file name -> sha256, for rubrics read from files

    def prompt(
        self, kind: JudgeKind, instance: Instance, text: str, *, truncated: bool, structured: bool
    ) -> JudgePrompt: ...

    def parse(self, kind: JudgeKind, instance: Instance, content: str) -> ParsedReply: ...

    def reask(self, problem: str) -> str: ...

    def refusal_reask(self) -> str: ...
