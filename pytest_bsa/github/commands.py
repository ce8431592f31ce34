"""Workflow commands and environment files, written the way the Actions runner parses them.

- A command is ``::name key=value,key=value::message``. The runner splits properties at ``,``
  and the message off at the first ``::``, so property values escape ``%``, CR, LF, ``:`` and
  ``,``; the message (data) escapes ``%``, CR and LF.
- ``$GITHUB_OUTPUT`` takes ``name<<DELIMITER``, the value's lines, then ``DELIMITER``: any value,
  multi-line or not, survives when the delimiter is random and absent from the value.
- A step summary larger than 1 MiB is dropped whole by the runner: we cut it with a note.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

MAX_ANNOTATIONS = 10  # the runner shows at most 10 error (and 10 warning) annotations per step
SUMMARY_LIMIT_BYTES = 1024 * 1024


def escape_data(text: str) -> str:
    """A command's message: ``%``, CR and LF escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command's property value: ``%``, CR, LF, ``:`` and ``,`` escaped."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str | None) -> str:
    """One workflow command line (properties that are ``None`` or empty are left out)."""
    props = ",".join(
        f"{key}={escape_property(value)}" for key, value in properties.items() if value
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def annotation(level: str, message: str, *, title: str | None = None) -> str:
    """An ``error``, ``warning`` or ``notice`` annotation."""
    if level not in ("error", "warning", "notice"):
        raise ValueError(f"annotation level {level!r} is not error, warning or notice")
    return command(level, message, title=title)


def output_block(name: str, value: str, *, delimiter: str | None = None) -> str:
    """``name<<DELIM``, the value and ``DELIM``, each on its own line (the multi-line syntax)."""
    if not name or any(c in name for c in "\r\n=<"):
        raise ValueError(f"output name {name!r} must be one word without '=', '<' or newlines")
    delim = delimiter or f"ghadelimiter_{uuid.uuid4()}"
    if delim in value or delim in name:
        raise ValueError("the output delimiter occurs in the value; pick another")
    return f"{name}<<{delim}\n{value}\n{delim}\n"


def write_outputs(path: Path, values: Mapping[str, str]) -> None:
    """Append every ``name: value`` to the ``$GITHUB_OUTPUT`` file with the delimiter syntax."""
    text = "".join(output_block(name, value) for name, value in values.items())
    with open(path, "a", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def fit_summary(text: str, limit: int = SUMMARY_LIMIT_BYTES) -> str:
    """``text`` cut at a line boundary so that its UTF-8 size stays under ``limit`` bytes."""
    data = text.encode("utf-8")
    if len(data) < limit:
        return text
    note = "\n\n_… the rest of the summary is cut to stay under GitHub's 1 MiB limit._\n"
    room = limit - len(note.encode("utf-8")) - 1
    if room <= 0:
        return ""
    head = data[: max(room, 0)].decode("utf-8", errors="ignore")
    cut = head.rfind("\n")
    return (head[:cut] if cut > 0 else "") + note


def append_summary(path: Path, text: str) -> None:
    """Append Markdown to ``$GITHUB_STEP_SUMMARY``, within the size the runner accepts."""
    existing = path.stat().st_size if path.exists() else 0
    with open(path, "a", encoding="utf-8", newline="\n") as handle:
        handle.write(fit_summary(text, SUMMARY_LIMIT_BYTES - existing))
