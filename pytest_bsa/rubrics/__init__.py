"""Judge rubrics: what the judge is asked and how its replies are read (pure, no pytest).

Three kinds, chosen with ``--bsa-rubric`` / ``rubric:``:

- ``bsa`` (the default): our own rubric, :mod:`pytest_bsa.rubrics.bsa`.
- ``official``: the official BSA judge prompts, downloaded at a pinned commit and checked
  against their sha256 (:mod:`pytest_bsa.rubrics.fetch`), used as templates
  (:mod:`pytest_bsa.rubrics.official`).
- a directory holding files in the official format: read as they are, recorded as
  ``official`` when their hashes match the pins, else as ``custom`` with their hash.

A rubric builds the judge's messages for one verdict and parses its reply; the
:class:`pytest_bsa.judge.Judge` does the asking, re-asking and counting.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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


def verdict_hash(rubric: Rubric, *, structured: bool, params: Mapping[str, Any]) -> str:
    """One hash of everything that shapes a verdict: rubric texts, structured output, params."""
    material = {
        "rubric": rubric.name,
        "rubric_sha256": rubric.sha256,
        "structured": structured,
        "params": {k: v for k, v in sorted(params.items())},
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def describe_rubric(rubric: Rubric) -> str:
    """One line for the terminal: name, source and (for file rubrics) the texts' hash."""
    if not rubric.files:
        return f"{rubric.name} ({rubric.source})"
    return f"{rubric.name} ({rubric.source}, sha256 {rubric.sha256[:12]}…)"


def load_rubric(spec: str, *, cache_dir: Path) -> Rubric:
    """``bsa``, ``official`` (downloaded and cached under ``cache_dir``) or a directory."""
    from pytest_bsa.rubrics.bsa import BSA_RUBRIC
    from pytest_bsa.rubrics.official import read_rubric_dir

    if spec == BSA:
        return BSA_RUBRIC
    if spec == OFFICIAL:
        from pytest_bsa.rubrics.fetch import fetch_official

        directory, source = fetch_official(cache_dir)
        return read_rubric_dir(directory, source=source)
    path = Path(spec).expanduser()
    if not path.is_dir():
        what = "is a file, not a directory" if path.is_file() else "does not exist"
        raise RubricError(
            f"--bsa-rubric {spec!r} {what}: pass 'bsa' (ours), 'official' (the official "
            "prompts, downloaded) or a directory holding Safe_Ans_Judge.md and "
            "Thinking_Accuracy_Judge.md"
        )
    return read_rubric_dir(path, source=str(path.resolve()))
