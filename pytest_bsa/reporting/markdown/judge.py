"""The Markdown judge sections: the judge check, a judge panel, repeated asks, a named system
prompt (nothing for a single judge asked once without a check)."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_bsa.report import Report
from pytest_bsa.reporting.view import (
    CONSISTENCY_HEADERS,
    MEMBER_HEADERS,
    PANEL_HEADERS,
    SPLIT_NOTE,
    UNSTABLE_SHOWN,
    check_advisory,
    check_line,
    consistency_rows,
    is_panel,
    member_rows,
    named_prompt,
    panel_rows,
)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def judge_section(report: Report, cap: int = 40) -> list[str]:
    """Markdown lines of the judge sections; ``cap`` limits the rows of each table."""
    out: list[str] = []
    prompt = named_prompt(report)
    if prompt is not None:
        out += ["", f"System prompt: **{_cell(prompt)}**."]
    check = report.judge_check
    if check is not None:
        out += ["", "#### Judge check", "", _cell(check_line(check)) + "."]
        advisory = check_advisory(check)
        if advisory is not None:
            out += ["", f"**REPORT ONLY**: {_cell(advisory)}."]
    panel = report.judge_panel
    if panel is None:
        return out
    if is_panel(panel):
        rows = [[_cell(r.group), *r.cells[1:]] for r in panel_rows(panel)[:cap]]
        out += ["", f"#### Judge panel ({len(panel.members)} judges, majority verdicts)", ""]
        out += _table(PANEL_HEADERS, rows)
        members = [[_cell(c) for c in m.cells] for m in member_rows(panel)]
        out += [""]
        out += _table(MEMBER_HEADERS, members)
        out += ["", SPLIT_NOTE]
    consistency = panel.consistency
    if consistency is not None:
        out += ["", f"#### Judge self-consistency ({consistency.samples} asks per verdict)", ""]
        groups = [[_cell(r[0]), *r[1:]] for r in consistency_rows(consistency)[:cap]]
        out += _table(CONSISTENCY_HEADERS, groups)
        shown = consistency.unstable_verdicts[:UNSTABLE_SHOWN]
        if shown:
            out += ["", "Unstable verdicts (labels per ask):", ""]
            out += [
                f"- `{_cell(u.instance)}` sample {u.sample}, {u.kind}, {_cell(u.judge)}: "
                f"{_cell(' / '.join(u.labels))}"
                for u in shown
            ]
            if consistency.unstable > len(shown):
                out.append(f"- … and {consistency.unstable - len(shown)} more (JSON report)")
    return out
