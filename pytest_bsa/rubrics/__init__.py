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
from pathlib import Path
from typing import Any

from pytest_bsa.rubrics.base import (
    BSA,
    OFFICIAL,
    JudgeKind,
    JudgePrompt,
    JudgeReplyError,
    ParsedReply,
    Rubric,
    RubricError,
    allowed_labels,
)

__all__ = [
    "BSA",
    "OFFICIAL",
    "JudgeKind",
    "JudgePrompt",
    "JudgeReplyError",
    "ParsedReply",
    "Rubric",
    "RubricError",
    "allowed_labels",
    "describe_rubric",
    "load_rubric",
    "verdict_hash",
]


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
