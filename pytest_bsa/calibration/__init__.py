"""Judge calibration cases: the shipped labelled set and a team's own human-labelled files.

Pure (no pytest import). A calibration case is one model output (reasoning and answer) for one
request with its annotated risk, and the labels a careful judge must give it: the answer-safety
label, the scenario's reasoning label and, for Cognitive Shortcut, whether the reasoning
identified Query A's and Query B's risks. Three inputs give cases:

- :func:`load_shipped`: our own set (``data/calibration.jsonl``, pinned by :data:`SHIPPED_SHA256`).
- :func:`load_cases`: a team's CSV or JSON-lines file in the same format (see the README).
- :func:`cases_from_report`: a saved run (``--bsa-report``) plus a labels file keyed by instance
  id and sample index (``human_safety_label``, ``human_reasoning_label``);
  :func:`labelling_sheet` writes that file, ready to fill in.

:mod:`pytest_bsa.judge_agreement` measures a judge on these cases. Two labelling conventions
the rules leave open, used by the shipped set: an empty answer is ``Unsafe`` (it neither
refuses nor redirects; a run counts a missing answer as a failed sample), and an empty
reasoning trace identifies nothing (``false`` / ``Not Covered``).

Behind this package: cases.py (the case and its rules), fields.py (reading case files),
runs.py (cases from a saved run); the loaders are here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pytest_bsa.calibration.cases import (
    CASE_FIELDS,
    REQUIRED_FIELDS,
    TAGS,
    CalibrationCase,
    CalibrationError,
    CalibrationSet,
    credit_label,
    validated,
)
from pytest_bsa.calibration.fields import (
    case_labels,
    label_of,
    read_file,
    reasoning_labels,
    records,
    scenario_of,
    sha256_hex,
    string,
    tags,
)
from pytest_bsa.calibration.runs import SHEET_FIELDS, cases_from_report, labelling_sheet
from pytest_bsa.dataset import quote
from pytest_bsa.models import SAFETY_LABELS

__all__ = [
    "CASE_FIELDS",
    "REQUIRED_FIELDS",
    "SHEET_FIELDS",
    "SHIPPED_PATH",
    "SHIPPED_SHA256",
    "SHIPPED_SPEC",
    "TAGS",
    "CalibrationCase",
    "CalibrationError",
    "CalibrationSet",
    "cases_from_report",
    "credit_label",
    "labelling_sheet",
    "load_calibration",
    "load_cases",
    "load_shipped",
]

SHIPPED_PATH = Path(__file__).resolve().parent.parent / "data" / "calibration.jsonl"


SHIPPED_SHA256 = "e3ff30e76547dd54012a46ac1795936e07d1672f47b5c505f25e7dbab8f3fdbf"


SHIPPED_SPEC = "shipped"


def _generated_id(record: Mapping[str, str]) -> str:
    parts = [record[name] for name in ("scenario", "query", "risk_summary", "reasoning", "answer")]
    return "case-" + sha256_hex("\x1f".join(parts).encode())[:12]


def _build_case(record: dict[str, Any], where: str, line: int) -> CalibrationCase:
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if "answer" not in record:
        missing.append("answer")
    if missing:
        raise CalibrationError(
            f"missing {', '.join(map(repr, missing))} (every case needs "
            f"{', '.join(REQUIRED_FIELDS)} and answer; reasoning and answer may be empty)",
            path=where,
            line=line,
            field=missing[0],
        )
    scenario = scenario_of(record["scenario"], where, line)
    text = {
        name: string(record.get(name), name, where, line)
        for name in ("id", "query", "risk_summary", "reasoning", "answer", "why")
    }
    for name in ("query", "risk_summary"):
        if not text[name].strip():
            raise CalibrationError("empty value", path=where, line=line, field=name)
    reasoning_label, query_a, query_b = reasoning_labels(record, "", scenario, where, line)
    values = {
        "id": text["id"].strip() or _generated_id({**text, "scenario": scenario}),
        "scenario": scenario,
        "query": text["query"],
        "risk_summary": text["risk_summary"],
        "labels": case_labels(record["labels"], scenario, where, line),
        "reasoning": text["reasoning"],
        "answer": text["answer"],
        "safety_label": label_of(
            record.get("safety_label"), SAFETY_LABELS, "safety_label", where, line, "safety"
        ),
        "reasoning_label": reasoning_label,
        "query_a": query_a,
        "query_b": query_b,
        "why": text["why"].strip(),
        "tags": tags(record.get("tags"), where, line),
        "line": line,
    }
    return validated(values, where, line)


def _unique(cases: list[CalibrationCase], where: str) -> None:
    first: dict[str, int] = {}
    for case in cases:
        if case.id in first:
            raise CalibrationError(
                f"duplicate id {quote(case.id)} (first seen on line {first[case.id]}; a "
                "generated id repeats when two cases have the same text)",
                path=where,
                line=case.line,
                field="id",
            )
        first[case.id] = case.line


def load_cases(path: Path | str) -> CalibrationSet:
    """A team's labelled cases from a CSV or JSON-lines file (format in the README)."""
    path = Path(path)
    text, digest = read_file(path)
    where = str(path)
    cases = [_build_case(record, where, line) for line, record in records(path, text, CASE_FIELDS)]
    if not cases:
        raise CalibrationError("no cases: the file has a header but no rows", path=where)
    _unique(cases, where)
    return CalibrationSet(tuple(cases), where, digest)


@cache
def load_shipped() -> CalibrationSet:
    """Our own calibration set, checked against :data:`SHIPPED_SHA256`."""
    digest = sha256_hex(SHIPPED_PATH.read_bytes())
    if digest != SHIPPED_SHA256:
        raise CalibrationError(
            f"the shipped calibration set has sha256 {digest}, expected {SHIPPED_SHA256} "
            "(the package data was changed; reinstall pytest-bsa, or update the pin with the "
            "set on purpose)",
            path=str(SHIPPED_PATH),
        )
    loaded = load_cases(SHIPPED_PATH)
    return CalibrationSet(loaded.cases, SHIPPED_SPEC, digest)


def load_calibration(spec: str, report: Path | str | None = None) -> CalibrationSet:
    """``shipped``, a case file, or (with ``report``) a labels file for a saved run."""
    if report is not None:
        return cases_from_report(report, spec)
    return load_shipped() if spec == SHIPPED_SPEC else load_cases(spec)
