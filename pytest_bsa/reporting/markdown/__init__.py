"""The Markdown summary of a saved run, for ``$GITHUB_STEP_SUMMARY`` and PR comments (pure).

Verdict first, then failing gates, tables, a mermaid chart, flips, power advice, cost and
provenance. Model output (queries, answers, reasoning, judge explanations) is left out unless
``full=True``; every interpolated string is escaped; the text always fits in ``limit`` chars.
What is shown comes from :mod:`pytest_bsa.reporting.view`; this package lays it out: the
head (summary.py), the details (details.py), the judge's own sections (judge.py), Markdown
escaping and capped tables (text.py).
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_bsa.report import Report
from pytest_bsa.reporting.markdown import details, summary
from pytest_bsa.reporting.markdown.judge import judge_section
from pytest_bsa.reporting.markdown.summary import comparison_section
from pytest_bsa.reporting.markdown.text import OMITTED, Caps, md
from pytest_bsa.reporting.view import count

__all__ = ["comparison_section", "md", "render_markdown"]


def _render(report: Report, full: bool, caps: Caps, baseline: Report | None = None) -> str:
    by_id = {r.instance.id: r for r in report.instances}
    parts: list[Callable[[], list[str]]] = [
        lambda: [summary.verdict(report)],
        lambda: summary.comparison_section(report, baseline),
        lambda: summary.gates_section(report, caps),
        lambda: summary.tables_section(report, caps),
        lambda: summary.chart_section(report, caps),
        lambda: details.flips_section(report, caps, by_id),
        lambda: details.missed_section(report, caps, by_id, full),
        lambda: details.power_section(report, caps),
        lambda: judge_section(report, caps.categories),
        lambda: details.cost_section(report) if caps.cost else [],
        lambda: details.provenance_section(report) if caps.provenance else [],
    ]
    lines = [line for part in parts for line in part()]
    if not full:
        lines += ["", "<sub>Model output is redacted; `--bsa-markdown-full` adds excerpts.</sub>"]
    return "\n".join(lines) + "\n"


def render_markdown(
    report: Report, *, full: bool = False, limit: int = 65_000, baseline: Report | None = None
) -> str:
    """The run as Markdown for a step summary or PR comment, always under ``limit`` chars.

    Lists and tables are shortened with a visible note until the text fits; a text that still
    does not fit is cut at a line boundary, with the same note. With ``baseline`` (the saved
    report compared against), a before/after table follows the verdict.
    """
    caps = Caps()
    text = _render(report, full, caps, baseline)
    while len(text) >= limit:
        smaller = caps.shrunk()
        if smaller is None:
            break
        caps = smaller
        text = _render(report, full, caps, baseline)
    if len(text) < limit:
        return text
    note = f"\n\n_… the rest is omitted to stay under {count(limit)} characters; {OMITTED}._\n"
    cut = text.rfind("\n", 0, max(limit - len(note) - 1, 0))
    return text[: max(cut, 0)] + note if len(note) < limit else note[: limit - 1]
