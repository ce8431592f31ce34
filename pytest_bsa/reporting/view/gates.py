"""The run's gates as readers see them: what failed, marks per group, numbers per gate (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_bsa.config import CEILING_METRICS
from pytest_bsa.report import Report
from pytest_bsa.reporting.view.format import count, pct, points

REPORT_ONLY = "REPORT ONLY"  # the mark of a measure-only run (--bsa-gate=report)


def is_failed(report: Report) -> bool:
    return report.exit_code != 0 or bool(failed_gates(report))


def failed_gates(report: Report) -> list[dict[str, Any]]:
    """Gates that failed the run (a measure-only run's advisory misses are not among them)."""
    return [g for g in report.gates if g.get("status") == "failed" and not g.get("advisory")]


def advisory_misses(report: Report) -> list[dict[str, Any]]:
    """Thresholds and baseline comparisons a measure-only run missed (not enforced)."""
    return [g for g in report.gates if g.get("status") == "failed" and g.get("advisory")]


def group_key(level: str, group: str) -> str:
    return "overall" if level == "overall" else f"{level}:{group}"


def baseline_deltas(report: Report) -> dict[tuple[str, str], float]:
    """``(group key, metric) -> current - baseline`` from the baseline gates that measured it."""
    deltas = {}
    for g in report.gates:
        if g.get("kind") == "baseline" and g.get("actual") is not None:
            deltas[group_key(g["level"], g["group"]), g["metric"]] = float(g["actual"])
    return deltas


def gate_marks(report: Report) -> dict[str, str]:
    """The tables' gate column per group key: ``FAIL`` beats ``adv`` (an advisory miss of a
    measure-only run) beats ``n/m`` beats ``pass``."""
    rank = {"pass": 0, "n/m": 1, "adv": 2, "FAIL": 3}
    marks: dict[str, str] = {}
    for g in report.gates:
        if g.get("kind") not in ("threshold", "baseline"):
            continue
        key = group_key(g["level"], g["group"])
        mark = {"passed": "pass", "failed": "FAIL"}.get(g.get("status", ""), "n/m")
        if mark == "FAIL" and g.get("advisory"):
            mark = "adv"
        if rank[mark] >= rank[marks.get(key, "pass")]:
            marks[key] = mark
    return marks


@dataclass(frozen=True)
class GateNumbers:
    actual: str
    required: str
    interval: str


def gate_numbers(gate: Mapping[str, Any]) -> GateNumbers:
    """A gate's actual value, requirement and interval in words a reader compares at a glance."""
    kind = gate.get("kind", "threshold")
    actual = gate.get("actual")
    required = float(gate.get("required", 0.0))
    interval = gate.get("interval")
    if kind == "baseline":
        ci = f"{points(interval[0])} to {points(interval[1])} pts" if interval else "-"
        shown = f"{points(actual)} pts" if actual is not None else "-"
        if gate.get("status") == "not_measurable":
            shown = "not measurable" + (f" ({shown})" if actual is not None else "")
        return GateNumbers(shown, f"no significant drop > {pct(required)} pts", ci)
    if kind == "errors":
        shown = "-" if actual is None else f"{count(actual)} errored"
        return GateNumbers(shown, f"≤ {count(required)}", "-")
    if kind == "instances":
        shown = "-" if actual is None else f"{pct(actual)}% met"
        return GateNumbers(shown, "every instance met", "-")
    relation = "≤" if gate.get("metric") in CEILING_METRICS else "≥"
    shown = "not measurable" if actual is None else f"{pct(actual)}%"
    ci = f"{pct(interval[0])}–{pct(interval[1])}%" if interval else "-"
    return GateNumbers(shown, f"{relation} {pct(required)}%", ci)
