"""Calibration cases from a saved run: the labelling sheet to fill in, and the cases it gives
with the human labels (the run judge's own labels kept beside them)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from pytest_bsa.calibration.cases import (
    CalibrationCase,
    CalibrationError,
    CalibrationSet,
    validated,
)
from pytest_bsa.calibration.fields import (
    label_of,
    read_file,
    reasoning_labels,
    records,
    sha256_hex,
    string,
    tags,
)
from pytest_bsa.dataset import quote
from pytest_bsa.models import SAFETY_LABELS, Instance, ReasoningState

SHEET_KEYS: tuple[str, ...] = ("id", "sample")


SHEET_LABELS: tuple[str, ...] = (
    "human_safety_label",
    "human_reasoning_label",
    "human_query_a",
    "human_query_b",
)


SHEET_CONTEXT: tuple[str, ...] = (
    "scenario",
    "labels",
    "query",
    "risk_summary",
    "reasoning",
    "answer",
    "judge_safety_label",
    "judge_reasoning_label",
)


SHEET_FIELDS: tuple[str, ...] = (*SHEET_KEYS, *SHEET_CONTEXT, *SHEET_LABELS, "why", "tags")


def _report(path: Path) -> Any:
    from pytest_bsa.report import ReportError, load_report

    try:
        return load_report(path)
    except ReportError as exc:
        raise CalibrationError(str(exc)) from None


def labelling_sheet(report: Any) -> str:
    """CSV text with one row per sample of a saved run (a ``Report`` or the path of one), the
    human label columns left blank.

    Fill ``human_safety_label`` and/or ``human_reasoning_label`` (and, for Cognitive Shortcut,
    optionally ``human_query_a``/``human_query_b``) and pass the file with the report to
    :func:`cases_from_report`; rows left blank are skipped. ``sample`` is the report's 0-based
    sample index. Samples without a completion (endpoint errors) are left out.
    """
    if isinstance(report, (str, Path)):
        report = _report(Path(report))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(SHEET_FIELDS), lineterminator="\n")
    writer.writeheader()
    for result in report.instances:
        instance = result.instance
        for sample in result.samples:
            if sample.completion is None:
                continue
            judgement = sample.judgement
            writer.writerow(
                {
                    "id": instance.id,
                    "sample": sample.index,
                    "scenario": instance.scenario,
                    "labels": "\n".join(_label_lines(instance)),
                    "query": instance.query,
                    "risk_summary": instance.risk_summary,
                    "reasoning": sample.completion.reasoning or "",
                    "answer": sample.completion.answer,
                    "judge_safety_label": judgement.safety_label if judgement else "",
                    "judge_reasoning_label": judgement.think_label if judgement else "",
                }
            )
    return out.getvalue()


def _label_lines(instance: Instance) -> list[str]:
    if instance.scenario == "Cognitive Shortcut":
        return [f"Query {q}: {label}" for q, label in zip("AB", instance.labels, strict=False)]
    return [str(label) for label in instance.labels]


def cases_from_report(report_path: Path | str, labels_path: Path | str) -> CalibrationSet:
    """Cases from a saved run's samples, with the expected labels from a labels file.

    The labels file (CSV or JSON lines) is keyed by ``id`` (instance id) and ``sample`` (the
    report's 0-based sample index) and gives ``human_safety_label`` and/or
    ``human_reasoning_label``; ``human_query_a``/``human_query_b``, ``why`` and ``tags`` are
    optional and the context columns of :func:`labelling_sheet` are ignored. Rows with no human
    label are skipped and counted. Each case keeps the run judge's own labels
    (``judged_safety_label``, ``judged_reasoning_label``), so the saved judge can be scored
    without a call. A human reasoning label on a sample whose reasoning the provider hid is an
    error, as is an unknown instance, a sample index out of range or a row given twice.
    """
    report_path, labels_path = Path(report_path), Path(labels_path)
    report = _report(report_path)
    text, digest = read_file(labels_path)
    where = str(labels_path)
    results = {result.instance.id: result for result in report.instances}
    cases: list[CalibrationCase] = []
    seen: dict[tuple[str, int], int] = {}
    skipped = 0
    for line, record in records(labels_path, text, SHEET_FIELDS):
        for name in SHEET_KEYS:
            if not string(record.get(name), name, where, line).strip():
                raise CalibrationError(
                    "empty value (each row names an instance id and a sample index)",
                    path=where,
                    line=line,
                    field=name,
                )
        if not any(_given(record.get(name)) for name in SHEET_LABELS):
            skipped += 1
            continue
        instance_id = string(record["id"], "id", where, line).strip()
        result = results.get(instance_id)
        if result is None:
            raise CalibrationError(
                f"instance {quote(instance_id)} is not in the report {report_path}",
                path=where,
                line=line,
                field="id",
            )
        index = _sample_index(record["sample"], len(result.samples), where, line)
        if (instance_id, index) in seen:
            raise CalibrationError(
                f"sample {index} of {quote(instance_id)} is labelled twice (first on line "
                f"{seen[instance_id, index]})",
                path=where,
                line=line,
                field="sample",
            )
        seen[instance_id, index] = line
        cases.append(_report_case(result, index, record, where, line))
    if not cases:
        raise CalibrationError(
            f"no labelled rows ({skipped} without a human label): fill human_safety_label or "
            "human_reasoning_label",
            path=where,
        )
    combined = sha256_hex(f"{sha256_hex(report_path.read_bytes())}+{digest}".encode())
    return CalibrationSet(tuple(cases), f"{report_path} + {labels_path}", combined, skipped)


def _given(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and bool(value.strip()))


def _sample_index(value: Any, samples: int, where: str, line: int) -> int:
    text = str(value).strip() if isinstance(value, int) else string(value, "sample", where, line)
    if not re.fullmatch(r"\d+", text.strip()) or int(text) >= samples:
        raise CalibrationError(
            f"sample {quote(text)} is not a sample index of this instance (0 to "
            f"{samples - 1}, as in the report)",
            path=where,
            line=line,
            field="sample",
        )
    return int(text)


def _report_case(result: Any, index: int, record: dict, where: str, line: int) -> CalibrationCase:
    instance = result.instance
    sample = next(s for s in result.samples if s.index == index)
    completion = sample.completion
    if completion is None:
        raise CalibrationError(
            f"sample {index} of {quote(instance.id)} has no model output (endpoint error)",
            path=where,
            line=line,
            field="sample",
        )
    scenario = instance.scenario
    reasoning_label, query_a, query_b = reasoning_labels(record, "human_", scenario, where, line)
    hidden = completion.reasoning_state is ReasoningState.UNAVAILABLE
    if hidden and (reasoning_label is not None or query_a is not None):
        raise CalibrationError(
            f"sample {index} of {quote(instance.id)} has no reasoning to label (the provider "
            "hid it); leave human_reasoning_label blank",
            path=where,
            line=line,
            field="human_reasoning_label",
        )
    judgement = sample.judgement
    values = {
        "id": f"{instance.id}#{index}",
        "scenario": scenario,
        "query": instance.query,
        "risk_summary": instance.risk_summary,
        "labels": tuple(str(label) for label in instance.labels),
        "reasoning": completion.reasoning or "",
        "answer": completion.answer,
        "safety_label": label_of(
            record.get("human_safety_label"),
            SAFETY_LABELS,
            "human_safety_label",
            where,
            line,
            "safety",
        ),
        "reasoning_label": reasoning_label,
        "query_a": query_a,
        "query_b": query_b,
        "why": string(record.get("why"), "why", where, line).strip(),
        "tags": tags(record.get("tags"), where, line),
        "judged_safety_label": judgement.safety_label if judgement else None,
        "judged_reasoning_label": judgement.think_label if judgement else None,
        "line": line,
    }
    try:
        return validated(values, where, line)
    except CalibrationError as exc:
        name = f"human_{exc.field}" if exc.field in ("safety_label", "reasoning_label") else None
        raise CalibrationError(
            exc.message, path=where, line=line, field=name or exc.field
        ) from None
