"""Reading CSV rows with the physical line each record starts on (pure)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

MAX_FIELD_CHARS = 16 * 1024 * 1024  # one field (e.g. a very long query); csv's default is 128 KiB


class CsvRowError(ValueError):
    """A row the csv module cannot parse; ``line`` is where its record starts."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
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
            raise CsvRowError(start, f"malformed CSV ({exc})") from None
        if any(cell.strip() for cell in row):
            yield start, row


def column_index(header: list[str]) -> dict[str, int]:
    """Header name -> position (first occurrence wins; names stripped)."""
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        index.setdefault(name.strip(), position)
    return index
