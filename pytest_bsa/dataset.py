"""Load, validate and select BSA instances (no pytest import).

A dataset is a CSV or JSON-lines file in the upstream schema: ``id, query, risk_summary,
dataset_name, label`` (extra columns are ignored). :func:`resolve_source` turns what the user
passed (``sample``, ``hf`` or a path) into a local file, :func:`load_dataset` reads and validates
it, and :func:`select` filters it and draws a stratified subset.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_bsa.csvrows import column_index, csv_rows, json_objects
from pytest_bsa.models import CATEGORIES, SCENARIOS, Instance, Label
from pytest_bsa.pinned import PinnedFileError, fetch_pinned, sha256_file
from pytest_bsa.reasoning import clean_text

HF_REPO = "OpenStellarTeam/BeyongSafeAnswer_Benchmark"
HF_FILE = "dataset.csv"
# No hub commit could be verified to hold exactly this file (a search found only a README
# commit, 6e1f7748bc34..., with no way to check its dataset.csv), so the revision is "main" and
# the pin is the sha256 below: a changed upstream file fails loudly instead of loading silently.
HF_REVISION = "main"
HF_SHA256 = "c1e26c30d0a0c8013d986aeb84b63c4b592387a92c52c70fd79b2796678eef3c"

COLUMNS: tuple[str, ...] = ("id", "query", "risk_summary", "dataset_name", "label")
SAMPLE_SPEC = "sample"
HF_SPEC = "hf"
_MANUAL_FIX = "download it yourself and pass --bsa-dataset=/path/to/dataset.csv"
_QUOTE_LIMIT = 60
_QUERY_PREFIX = re.compile(r"^Query\s+([A-Za-z])\s*:\s*")
_WHITESPACE = re.compile(r"\s")


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names where and quotes the bad value."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path if self.line is None else f"{self.path}:{self.line}")
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        parts.append(self.message)
        return ": ".join(parts)

    def __str__(self) -> str:
        return self._format()

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_error, (self.message, self.path, self.line, self.field))


def _rebuild_error(
    message: str, path: str | None, line: int | None, field: str | None
) -> DatasetError:
    return DatasetError(message, path=path, line=line, field=field)


@dataclass(frozen=True)
class DatasetSource:
    """Where the instances of a run came from."""

    spec: str  # what the user passed: 'sample', 'hf' or a path
    path: Path  # the local file read
    sha256: str
    revision: str | None  # hub revision for 'hf', None otherwise

    @property
    def label(self) -> str:
        """Short text for the run header: ``sample``, ``hf:<repo>@<rev>`` or the path."""
        if self.spec == SAMPLE_SPEC:
            return SAMPLE_SPEC
        if self.spec == HF_SPEC:
            return f"hf:{HF_REPO}@{self.revision}"
        return str(self.path)


# --------------------------------------------------------------------------- sources


def default_cache_dir() -> Path:
    """``$BSA_CACHE_DIR``, else ``$XDG_CACHE_HOME/pytest-bsa``, else ``~/.cache/pytest-bsa``."""
    if explicit := os.environ.get("BSA_CACHE_DIR"):
        return Path(explicit).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "pytest-bsa"
    return Path.home() / ".cache" / "pytest-bsa"


def resolve_source(spec: str, *, cache_dir: Path | None = None) -> DatasetSource:
    """Turn ``sample``, ``hf`` or a path into a local file with its sha256."""
    if spec == SAMPLE_SPEC:
        path = Path(__file__).resolve().parent / "data" / "sample.csv"
        return DatasetSource(spec, path, sha256_file(path), None)
    if spec == HF_SPEC:
        path = _fetch_hub_file(cache_dir if cache_dir is not None else default_cache_dir())
        return DatasetSource(spec, path, HF_SHA256, HF_REVISION)
    path = Path(spec).expanduser()
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "file not found"
        raise DatasetError(
            f"{what} (pass a CSV/JSONL path, {SAMPLE_SPEC!r} for the bundled sample "
            f"or {HF_SPEC!r} to download the benchmark)",
            path=str(path),
        )
    return DatasetSource(spec, path, sha256_file(path), None)


def _fetch_hub_file(cache_dir: Path) -> Path:
    """The hub's ``dataset.csv`` in the cache, downloaded only when missing or changed."""
    target = cache_dir / "datasets" / f"{HF_REPO.split('/')[-1]}-{HF_SHA256[:16]}.csv"
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/datasets/{HF_REPO}/resolve/{HF_REVISION}/{HF_FILE}"
    try:
        return fetch_pinned(url, target, HF_SHA256, fix=_MANUAL_FIX)
    except PinnedFileError as exc:
        raise DatasetError(str(exc)) from exc


# --------------------------------------------------------------------------- loading


def load_dataset(path: Path) -> list[Instance]:
    """Read and validate a CSV (``.csv``) or JSON-lines (``.jsonl``/``.json``) dataset."""
    path = Path(path)
    where = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise DatasetError(
            f"unsupported file type {suffix or '(no suffix)'!r} (expected .csv, .jsonl or .json)",
            path=where,
        )
    text = read_text(path)
    records = _csv_records(text, where) if suffix == ".csv" else _jsonl_records(text, where)
    instances: list[Instance] = []
    first_line: dict[str, int] = {}
    for line, record in records:
        instance = _build_instance(record, where, line)
        if (first := first_line.get(instance.id)) is not None:
            raise DatasetError(
                f"duplicate id {quote(instance.id)} (first seen on line {first})",
                path=where,
                line=line,
                field="id",
            )
        first_line[instance.id] = line
        instances.append(instance)
    if not instances:
        raise DatasetError("no instances: the file has a header but no rows", path=where)
    return instances


def read_text(path: Path) -> str:
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError("file not found", path=where) from None
    except IsADirectoryError:
        raise DatasetError("is a directory, not a file", path=where) from None
    except OSError as exc:
        raise DatasetError(f"cannot read the file ({exc.strerror or exc})", path=where) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        bad = raw[exc.start : exc.start + 4]
        raise DatasetError(
            f"not UTF-8: invalid byte(s) {bad!r} at offset {exc.start} (save the file as UTF-8)",
            path=where,
            line=line,
        ) from None
    if not text.strip():
        raise DatasetError("file is empty", path=where)
    if "\x00" in text:
        offset = text.index("\x00")
        raise DatasetError(
            f"a NUL byte at character {offset}: the file is binary or corrupt (export the "
            "dataset again as UTF-8 text)",
            path=where,
            line=text.count("\n", 0, offset) + 1,
        )
    return text


def _failure(where: str) -> Callable[[int, str], DatasetError]:
    return lambda line, message: DatasetError(message, path=where, line=line)


def _csv_records(text: str, where: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(start line, record)``; the start line counts physical lines, quoted newlines too."""
    header: list[str] | None = None
    index: dict[str, int] = {}
    for start, row in csv_rows(text, _failure(where)):
        if header is None:
            header = [name.strip() for name in row]
            index = column_index(header)
            missing = [name for name in COLUMNS if name not in index]
            if missing:
                names = ", ".join(repr(name) for name in missing)
                raise DatasetError(
                    f"missing column{'s' if len(missing) > 1 else ''} {names} "
                    f"(expected header: {','.join(COLUMNS)}; found: {quote(','.join(header))})",
                    path=where,
                    line=start,
                    field=missing[0],
                )
            continue
        yield start, {name: row[index[name]] if index[name] < len(row) else "" for name in COLUMNS}


def _jsonl_records(text: str, where: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, record)`` for each non-blank line holding one JSON object."""
    for line, value in json_objects(text, _failure(where), shown=quote):
        missing = [name for name in COLUMNS if name not in value]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            raise DatasetError(
                f"missing key{'s' if len(missing) > 1 else ''} {names} "
                f"(expected keys: {', '.join(COLUMNS)})",
                path=where,
                line=line,
                field=missing[0],
            )
        record: dict[str, str] = {}
        for name in COLUMNS:
            item = value[name]
            if name == "label" and isinstance(item, list) and all(isinstance(x, str) for x in item):
                item = "\n".join(item)
            if not isinstance(item, str):
                raise DatasetError(
                    f"expected a string, got {type(item).__name__} {quote(json.dumps(item))}",
                    path=where,
                    line=line,
                    field=name,
                )
            record[name] = item
        yield line, record


def _build_instance(record: dict[str, str], where: str, line: int) -> Instance:
    record = {name: clean_text(value) for name, value in record.items()}  # JSONL "\ud800"
    for name in COLUMNS:
        if not record[name].strip():
            raise DatasetError("empty value", path=where, line=line, field=name)
    instance_id = record["id"]
    if _WHITESPACE.search(instance_id) or not instance_id.isprintable():
        raise DatasetError(
            f"id {quote(instance_id)} contains whitespace or control characters "
            "(ids travel in HTTP headers and test ids)",
            path=where,
            line=line,
            field="id",
        )
    scenario = record["dataset_name"].strip()
    if scenario not in SCENARIOS:
        raise DatasetError(
            f"unknown scenario {quote(scenario)}{suggest(scenario, SCENARIOS)} "
            f"(expected one of: {', '.join(repr(s) for s in SCENARIOS)})",
            path=where,
            line=line,
            field="dataset_name",
        )
    labels = parse_labels(record["label"], scenario, where, line)
    return Instance(
        id=instance_id,
        query=record["query"],
        risk_summary=record["risk_summary"],
        scenario=scenario,
        labels=labels,
        line=line,
    )


def parse_labels(value: str, scenario: str, where: str, line: int) -> tuple[Label, ...]:
    """``Cat-Sub`` (one line) or, for Cognitive Shortcut, ``Query A: ...``/``Query B: ...``."""

    def fail(message: str) -> DatasetError:
        return DatasetError(message, path=where, line=line, field="label")

    entries = [entry.strip() for entry in value.splitlines() if entry.strip()]
    prefixes: list[str] = []
    texts: list[str] = []
    for entry in entries:
        match = _QUERY_PREFIX.match(entry)
        prefixes.append(match.group(1).upper() if match else "")
        texts.append(entry[match.end() :] if match else entry)
    if scenario == "Cognitive Shortcut":
        if len(entries) != 2:
            raise fail(
                f"a Cognitive Shortcut row needs exactly two labels, found {len(entries)} in "
                f"{quote(value)} (expected 'Query A: Category-Subcategory' and "
                "'Query B: Category-Subcategory' on two lines)"
            )
        if prefixes not in (["A", "B"], ["", ""]):
            raise fail(
                f"malformed labels {quote(value)} (expected 'Query A: Category-Subcategory' "
                "then 'Query B: Category-Subcategory')"
            )
    else:
        if len(entries) != 1:
            raise fail(
                f"a {scenario} row needs exactly one label, found {len(entries)} in "
                f"{quote(value)} (expected 'Category-Subcategory')"
            )
        if prefixes[0]:
            raise fail(
                f"malformed label {quote(entries[0])}: a 'Query {prefixes[0]}:' prefix belongs "
                "to Cognitive Shortcut rows only (expected 'Category-Subcategory')"
            )
    return tuple(_parse_label(text, fail) for text in texts)


def _parse_label(text: str, fail: Callable[[str], DatasetError]) -> Label:
    category, dash, subcategory = text.partition("-")
    category, subcategory = category.strip(), subcategory.strip()
    if not dash or not category or not subcategory:
        raise fail(f"malformed label {quote(text)} (expected 'Category-Subcategory')")
    if category not in CATEGORIES:
        raise fail(
            f"unknown category {quote(category)} in label {quote(text)}"
            f"{suggest(category, CATEGORIES)} (the nine are: {', '.join(CATEGORIES)})"
        )
    return Label(category=category, subcategory=subcategory)


def quote(value: str) -> str:
    """``repr`` of ``value``, cut to about 60 characters."""
    if len(value) > _QUOTE_LIMIT:
        value = value[: _QUOTE_LIMIT - 3] + "..."
    return repr(value)


def suggest(value: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest choice (case-insensitive), or ``""``."""
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.5)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""
