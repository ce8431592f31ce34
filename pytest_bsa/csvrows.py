"""Reading CSV rows and JSON lines with the line each record starts on (pure).

The dataset, calibration files and the upstream export read their records here; each says
how a malformed row becomes its own error (``fail(line, message)``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

MAX_FIELD_CHARS = 16 * 1024 * 1024  # one field (e.g. a very long query); csv's default is 128 KiB

Fail = Callable[[int, str], Exception]  # (line, message) -> the reader's own error


def csv_rows(text: str, fail: Fail) -> Iterator[tuple[int, list[str]]]:
    """``(start line, cells)`` per non-blank row; quoted newlines count as physical lines."""
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise fail(start, f"malformed CSV ({exc})") from None
        if any(cell.strip() for cell in row):
            yield start, row


def json_objects(
    text: str, fail: Fail, shown: Callable[[str], str] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, object)`` per non-blank line of JSON-lines text; a line that is not a JSON
    object fails (its text quoted by ``shown``, when given)."""
    # Split on "\n" only: str.splitlines() would also split on U+2028 inside JSON strings.
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        what = f": {shown(raw)}" if shown else ""
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise fail(
                line,
                f"invalid JSON ({exc.msg} at column {exc.colno}){what} (expected JSON lines: "
                "one object per line)",
            ) from None
        if not isinstance(value, dict):
            raise fail(line, f"expected a JSON object per line, got {type(value).__name__}{what}")
        yield line, value


def column_index(header: list[str]) -> dict[str, int]:
    """Header name -> position (first occurrence wins; names stripped)."""
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        index.setdefault(name.strip(), position)
    return index
