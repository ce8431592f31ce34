"""Reading calibration files: CSV or JSON-lines records and the value of each field, with
errors that name file, line and field and quote the value."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_bsa.calibration.cases import ALIASES, CalibrationError, credit_label
from pytest_bsa.csvrows import column_index, csv_rows, json_objects
from pytest_bsa.dataset import DatasetError, parse_labels, quote, read_text, suggest
from pytest_bsa.models import SCENARIOS, THINK_LABELS, Scenario
from pytest_bsa.reasoning import clean_text

_TRUE = frozenset({"true", "yes", "y", "1"})


_FALSE = frozenset({"false", "no", "n", "0"})


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_file(path: Path) -> tuple[str, str]:
    """(text, sha256) of a UTF-8 file; errors as CalibrationError."""
    try:
        text = read_text(path)
    except DatasetError as exc:
        raise CalibrationError(exc.message, path=exc.path, line=exc.line) from None
    return text, sha256_hex(path.read_bytes())


def records(path: Path, text: str, known: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` from a CSV or JSON-lines file; unknown names are errors."""
    where = str(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_records(text, where, known)
    elif suffix in (".jsonl", ".json"):
        yield from _jsonl_records(text, where, known)
    else:
        raise CalibrationError(
            f"unsupported file type {suffix or '(no suffix)'!r} (expected .csv or .jsonl)",
            path=where,
        )


def _check_names(names: Sequence[str], known: Sequence[str], where: str, line: int) -> None:
    for name in names:
        if ALIASES.get(name, name) not in known:
            raise CalibrationError(
                f"unknown {'column' if where.lower().endswith('.csv') else 'key'} "
                f"{quote(name)}{suggest(name, known)} (known: {', '.join(known)})",
                path=where,
                line=line,
                field=name,
            )
    canonical = [ALIASES.get(name, name) for name in names]
    for name in canonical:
        if canonical.count(name) > 1:
            raise CalibrationError(
                f"{name!r} is given twice (directly or through an alias such as 'label')",
                path=where,
                line=line,
                field=name,
            )


def _failure(where: str) -> Callable[[int, str], CalibrationError]:
    return lambda line, message: CalibrationError(message, path=where, line=line)


def _csv_records(text: str, where: str, known: Sequence[str]) -> Iterator[tuple[int, dict]]:
    header: list[str] | None = None
    index: dict[str, int] = {}
    for start, row in csv_rows(text, _failure(where)):
        if header is None:
            header = [name.strip() for name in row]
            _check_names(header, known, where, start)
            index = column_index(header)
            continue
        yield (
            start,
            {ALIASES.get(name, name): row[i] if i < len(row) else "" for name, i in index.items()},
        )


def _jsonl_records(text: str, where: str, known: Sequence[str]) -> Iterator[tuple[int, dict]]:
    for line, value in json_objects(text, _failure(where)):
        _check_names(list(value), known, where, line)
        yield line, {ALIASES.get(name, name): item for name, item in value.items()}


def string(value: Any, name: str, where: str, line: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CalibrationError(
            f"expected a string, got {type(value).__name__} {quote(json.dumps(value))}",
            path=where,
            line=line,
            field=name,
        )
    return clean_text(value)


def _flag(value: Any, name: str, where: str, line: int) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = string(value, name, where, line).strip().casefold()
    if not text:
        return None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise CalibrationError(
        f"{quote(text)} is not true or false (write true/false, yes/no or 1/0; blank for unknown)",
        path=where,
        line=line,
        field=name,
    )


def label_of(
    value: Any, choices: Sequence[str], name: str, where: str, line: int, what: str
) -> str | None:
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = string(value, name, where, line).strip()
    if not text:
        return None
    by_fold = {choice.casefold(): choice for choice in choices}
    if text.casefold() in by_fold:
        return by_fold[text.casefold()]
    raise CalibrationError(
        f"{quote(text)} is not a {what} label{suggest(text, choices)} "
        f"(expected one of: {', '.join(map(repr, choices))})",
        path=where,
        line=line,
        field=name,
    )


def tags(value: Any, where: str, line: int) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        items = value
    else:
        items = re.split(r"[,\s]+", string(value, "tags", where, line))
    return tuple(t.strip() for t in items if t.strip())


def scenario_of(value: Any, where: str, line: int) -> Scenario:
    text = string(value, "scenario", where, line).strip()
    if text not in SCENARIOS:
        raise CalibrationError(
            f"unknown scenario {quote(text)}{suggest(text, SCENARIOS)} "
            f"(expected one of: {', '.join(map(repr, SCENARIOS))})",
            path=where,
            line=line,
            field="scenario",
        )
    return text  # type: ignore[return-value]


def case_labels(value: Any, scenario: str, where: str, line: int) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        value = "\n".join(value)
    text = string(value, "labels", where, line)
    if not text.strip():
        raise CalibrationError("empty value", path=where, line=line, field="labels")
    try:
        parsed = parse_labels(text, scenario, where, line)
    except DatasetError as exc:
        raise CalibrationError(exc.message, path=where, line=line, field="labels") from None
    return tuple(str(label) for label in parsed)


def reasoning_labels(
    record: Mapping[str, Any], prefix: str, scenario: str, where: str, line: int
) -> tuple[str | None, bool | None, bool | None]:
    """(reasoning label, query_a, query_b); for Cognitive Shortcut the label follows from the
    per-query credit when only the credit is given."""
    names = [f"{prefix}{name}" for name in ("reasoning_label", "query_a", "query_b")]
    query_a = _flag(record.get(names[1]), names[1], where, line)
    query_b = _flag(record.get(names[2]), names[2], where, line)
    label = label_of(
        record.get(names[0]), THINK_LABELS[scenario], names[0], where, line, f"{scenario} reasoning"
    )
    credited = query_a is not None and query_b is not None
    if label is None and credited and scenario == "Cognitive Shortcut":
        label = credit_label(bool(query_a), bool(query_b))
    return label, query_a, query_b
