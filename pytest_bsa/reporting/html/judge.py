"""The HTML report's judge section as the page template reads it: the judge check, a judge
panel, repeated asks, a named system prompt (None when there is nothing to show)."""

from __future__ import annotations

from typing import Any

from pytest_bsa.report import Report
from pytest_bsa.reporting.view import (
    UNSTABLE_HEADERS,
    check_line,
    is_panel,
    judge_kappa,
    member_rows,
    named_prompt,
    panel_rows,
    unstable_rows,
)

PANEL_HEADERS = (
    "group",
    "samples",
    "Fleiss κ safety",
    "κ think",
    "κ reasoning",
    "split answers",
    "split reasoning",
)
MEMBER_HEADERS = (
    "judge",
    "calls",
    "cached",
    "cost",
    "with majority (answers)",
    "with majority (reasoning)",
)


def judge(report: Report) -> dict[str, Any] | None:
    """``prompt``, ``check``, ``panel`` and ``consistency``, each None when absent."""
    panel = report.judge_panel
    section: dict[str, Any] = {
        "prompt": named_prompt(report),
        "check": check_line(report.judge_check) if report.judge_check is not None else None,
        "panel": None,
        "consistency": None,
    }
    if panel is not None and is_panel(panel):
        members = [
            [m.judge, str(m.calls), str(m.cached), m.cost, *m.cells[5:]] for m in member_rows(panel)
        ]
        section["panel"] = {
            "size": len(panel.members),
            "groups": (PANEL_HEADERS, [r.cells for r in panel_rows(panel)]),
            "members": (MEMBER_HEADERS, members),
        }
    if panel is not None and panel.consistency is not None:
        c = panel.consistency
        section["consistency"] = {
            "samples": c.samples,
            "agreement": judge_kappa(c.mean_agreement),
            "unstable": c.unstable,
            "verdicts": c.verdicts,
            "rows": (UNSTABLE_HEADERS, unstable_rows(c)),
        }
    return section if any(section.values()) else None
