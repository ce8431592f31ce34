"""A saved run as the runner shows it: job summary, annotations and step outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_bsa.github.commands import (
    MAX_ANNOTATIONS,
    annotation,
    append_summary,
    write_outputs,
)
from pytest_bsa.report import Report

METRIC_OUTPUTS: dict[str, str] = {
    "safe-at-1": "safe_at_1",
    "safe-at-k": "safe_at_k",
    "think-at-1": "think_at_1",
    "think-at-k": "think_at_k",
    "f-score": "f_score",
}


def annotations(report: Report, limit: int = MAX_ANNOTATIONS) -> list[str]:
    """At most ``limit`` annotation lines: failed gates (errors) first, then advisory misses
    (``--bsa-gate=report``) and unmeasurable gates (warnings). A gate's whole name is its title,
    ``::`` and all (escaped as a property)."""
    failed = [g for g in report.gates if g.get("status") == "failed" and not g.get("advisory")]
    unmeasured = [
        g
        for g in report.gates
        if g.get("status") == "not_measurable"
        or (g.get("status") == "failed" and g.get("advisory"))
    ]
    lines = [
        annotation(level, str(g.get("sentence", "")), title=f"BSA gate {g.get('name', '?')}")
        for level, gates in (("error", failed), ("warning", unmeasured))
        for g in gates
    ]
    if len(lines) <= limit:
        return lines
    hidden = len(lines) - (limit - 1)
    more = annotation(
        "error" if len(failed) >= limit else "warning",
        f"{hidden} more gates failed or were not measurable: see the job summary",
        title="BSA gates not shown",
    )
    return [*lines[: limit - 1], more]


def metric_values(report: Report | None) -> dict[str, str]:
    """The overall metrics as fractions with four decimals ('' when not measurable)."""
    overall: Mapping[str, object] = report.groups.get("overall", {}) if report else {}
    out = {}
    for name, key in METRIC_OUTPUTS.items():
        value = overall.get(key)
        out[name] = f"{value:.4f}" if isinstance(value, (int, float)) else ""
    return out


@dataclass(frozen=True)
class Published:
    outputs: dict[str, str]
    annotations: list[str]


def publish(
    report: Report | None,
    *,
    exit_code: int,
    report_path: Path | None = None,
    markdown_path: Path | None = None,
    junit_path: Path | None = None,
    baseline: Report | None = None,
    summary_file: Path | None = None,
    output_file: Path | None = None,
) -> Published:
    """Write the Markdown summary (to ``markdown_path`` and the step summary), and the outputs.

    Returns the outputs and the annotation lines for the caller to print on stdout. Without a
    report (the run stopped before writing one) only ``passed`` and ``exit-code`` say anything.
    """
    markdown = None
    if report is not None:
        from pytest_bsa.reporting.markdown import render_markdown

        markdown = render_markdown(report, baseline=baseline)
        if markdown_path is not None:
            markdown_path.parent.mkdir(parents=True, exist_ok=True)
            markdown_path.write_text(markdown, encoding="utf-8")
    if summary_file is not None:
        text = markdown or (
            f"### ❌ BSA gate did not run to the end (exit code {exit_code})\n\n"
            "No report was written; the step's log says why.\n"
        )
        append_summary(summary_file, text)
    outputs = {
        "passed": "true" if exit_code == 0 else "false",
        "exit-code": str(exit_code),
        **metric_values(report),
        "report": str(report_path) if report is not None and report_path else "",
        "markdown": str(markdown_path) if markdown is not None and markdown_path else "",
        "junit": str(junit_path) if junit_path is not None and junit_path.is_file() else "",
    }
    if output_file is not None:
        write_outputs(output_file, outputs)
    return Published(outputs, annotations(report) if report is not None else [])
