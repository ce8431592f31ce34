"""The judge's own sections in every output: panel, repeated asks, judge check, system prompt.

Each renderer calls one function from here (terminal header and summary, Markdown, HTML);
they read only the report fields ``judge_panel``, ``judge_check`` and the provenance's
``system_prompt_source`` / ``judge_samples``, and say nothing for a single judge asked once.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from pytest_bsa.judge_check import JudgeCheckSummary, one_line, short_sentence
from pytest_bsa.panel_stats import PanelSummary

UNSTABLE_SHOWN = 20  # unstable verdicts listed in Markdown and HTML


def _k(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _share(part: int, whole: int) -> str:
    return "-" if not whole else f"{100 * part / whole:.0f}%"


def _dollars(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _order(panel: PanelSummary) -> list[str]:
    level = {"overall": 0, "scenario": 1, "category": 2}
    return sorted(panel.groups, key=lambda g: level.get(g.split(":", 1)[0], 3))


def _name(group: str) -> str:
    return "all instances" if group == "overall" else group.split(":", 1)[1]


def prompt_text(source: str | None, sha256: str | None) -> str:
    """Which system prompt a run gave the model."""
    if source is None and sha256 is None:
        return "none"
    digest = f" (sha256 {sha256[:12]}…)" if sha256 else ""
    return f"{source or 'file'}{digest}"


# --------------------------------------------------------------------------- terminal


def judge_header_lines(settings: Any, check: JudgeCheckSummary | None) -> list[str]:
    """``bsa:`` header lines: panel, repeated asks, system prompt, the judge check."""
    lines = []
    if len(settings.judge_models) > 1:
        lines.append(
            f"bsa: judge panel of {len(settings.judge_models)}: "
            f"{', '.join(settings.judge_models)} (each verdict the majority; ties are split)"
        )
    if settings.judge_samples > 1:
        lines.append(
            f"bsa: judge asked {settings.judge_samples} times per verdict (the majority "
            "counts; unstable verdicts are listed)"
        )
    if settings.system_prompt_source and settings.system_prompt_source != "file":
        lines.append(f"bsa: system prompt {settings.system_prompt_source}")
    if check is not None:
        lines.append(f"bsa: judge check: {one_line(check)}")
        if check.action == "advisory":
            lines.append(
                f"bsa: REPORT ONLY: {short_sentence(check)}; every threshold and baseline gate "
                "is advisory (judge.on_short: advisory)"
            )
    return lines


def judge_terminal_lines(
    panel: PanelSummary | None, check: JudgeCheckSummary | None = None
) -> list[str]:
    """Lines after the BSA table: the panel's agreement and members, repeated asks."""
    lines: list[str] = []
    if check is not None:
        lines.append(f"judge check: {one_line(check)}")
    if panel is None:
        return lines
    overall = panel.groups.get("overall")
    if len(panel.members) > 1 and overall is not None:
        lines.append(
            f"judge panel of {len(panel.members)}: Fleiss' kappa safety "
            f"{_k(overall.safety_kappa)}, think {_k(overall.think_kappa)}; split verdicts: "
            f"{overall.split_safety} answers, {overall.split_think} reasoning (counted apart, "
            "like unjudged)"
        )
        for m in panel.member_stats:
            lines.append(
                f"  {m.judge}: {m.calls} calls, {m.cached} cached, cost {_dollars(m.cost_usd)}; "
                f"with the majority on {_share(m.safety_with_majority, m.safety_votes)} of "
                f"answers, {_share(m.think_with_majority, m.think_votes)} of reasoning"
            )
    consistency = panel.consistency
    if consistency is not None:
        lines.append(
            f"judge self-consistency ({consistency.samples} asks per verdict): mean agreement "
            f"{_k(consistency.mean_agreement)}; {consistency.unstable} of "
            f"{consistency.verdicts} verdicts unstable (listed in the reports)"
        )
    return lines


# --------------------------------------------------------------------------- Markdown


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def markdown_sections(report: Any, cap: int = 40) -> list[str]:
    """Markdown lines for the judge sections (empty for a single judge asked once)."""
    out: list[str] = []
    prov = report.provenance
    source = getattr(prov, "system_prompt_source", None)
    if source and source != "file":
        out += ["", f"System prompt: **{_md(prompt_text(source, prov.system_prompt_sha256))}**."]
    check: JudgeCheckSummary | None = getattr(report, "judge_check", None)
    if check is not None:
        out += ["", "#### Judge check", "", _md(one_line(check)) + "."]
        if check.action == "advisory":
            out += ["", f"**REPORT ONLY**: {_md(short_sentence(check))}."]
    panel: PanelSummary | None = getattr(report, "judge_panel", None)
    if panel is None:
        return out
    if len(panel.members) > 1:
        rows = []
        for group in _order(panel)[:cap]:
            g = panel.groups[group]
            rows.append(
                [
                    _md(_name(group)),
                    str(g.samples),
                    _k(g.safety_kappa),
                    _k(g.think_kappa),
                    _k(g.reasoning_kappa),
                    str(g.split_safety),
                    str(g.split_think),
                ]
            )
        out += ["", f"#### Judge panel ({len(panel.members)} judges, majority verdicts)", ""]
        out += _md_table(
            [
                "group",
                "samples",
                "Fleiss κ safety",
                "κ think",
                "κ reasoning labels",
                "split answers",
                "split reasoning",
            ],
            rows,
        )
        members = [
            [
                _md(m.judge),
                str(m.calls),
                str(m.cached),
                str(m.prompt_tokens + m.completion_tokens),
                _md(_dollars(m.cost_usd)),
                _share(m.safety_with_majority, m.safety_votes),
                _share(m.think_with_majority, m.think_votes),
            ]
            for m in panel.member_stats
        ]
        out += [""]
        out += _md_table(
            [
                "judge",
                "calls",
                "cached",
                "tokens",
                "cost",
                "with majority (answers)",
                "with majority (reasoning)",
            ],
            members,
        )
        out += [
            "",
            "A split verdict (no label given by more than half of the judges) counts apart, "
            "like an unjudged one: in the unjudged rate, as a failure in the worst case.",
        ]
    consistency = panel.consistency
    if consistency is not None:
        out += ["", f"#### Judge self-consistency ({consistency.samples} asks per verdict)", ""]
        rows = [
            [
                _md(_name(group)),
                str(c.verdicts),
                str(c.unstable),
                _k(c.mean_agreement),
            ]
            for group, c in list(consistency.groups.items())[:cap]
        ]
        out += _md_table(["group", "verdicts", "unstable", "mean agreement"], rows)
        shown = consistency.unstable_verdicts[:UNSTABLE_SHOWN]
        if shown:
            out += ["", "Unstable verdicts (labels per ask):", ""]
            out += [
                f"- `{_md(u.instance)}` sample {u.sample}, {u.kind}, {_md(u.judge)}: "
                f"{_md(' / '.join(u.labels))}"
                for u in shown
            ]
            if consistency.unstable > len(shown):
                out.append(f"- … and {consistency.unstable - len(shown)} more (JSON report)")
    return out


# --------------------------------------------------------------------------- HTML


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="metrics"><tr>{head}</tr>{body}</table>'


def html_section(report: Any) -> str:
    """One ``<section id="judge">`` (empty string when there is nothing to show)."""
    parts: list[str] = []
    prov = report.provenance
    source = getattr(prov, "system_prompt_source", None)
    if source and source != "file":
        shown = prompt_text(source, prov.system_prompt_sha256)
        parts.append(f'<p class="note">System prompt: <b>{_e(shown)}</b></p>')
    check: JudgeCheckSummary | None = getattr(report, "judge_check", None)
    if check is not None:
        parts.append(f"<h3>Judge check</h3><p>{_e(one_line(check))}</p>")
    panel: PanelSummary | None = getattr(report, "judge_panel", None)
    if panel is not None and len(panel.members) > 1:
        rows = [
            [
                _name(group),
                str(g.samples),
                _k(g.safety_kappa),
                _k(g.think_kappa),
                _k(g.reasoning_kappa),
                str(g.split_safety),
                str(g.split_think),
            ]
            for group, g in ((group, panel.groups[group]) for group in _order(panel))
        ]
        parts.append(f"<h3>Judge panel ({len(panel.members)} judges)</h3>")
        parts.append(
            _html_table(
                ["group", "samples", "Fleiss κ safety", "κ think", "κ reasoning", "split answers",
                 "split reasoning"],
                rows,
            )
        )  # fmt: skip
        parts.append(
            _html_table(
                ["judge", "calls", "cached", "cost", "with majority (answers)",
                 "with majority (reasoning)"],
                [
                    [m.judge, str(m.calls), str(m.cached), _dollars(m.cost_usd),
                     _share(m.safety_with_majority, m.safety_votes),
                     _share(m.think_with_majority, m.think_votes)]
                    for m in panel.member_stats
                ],
            )
        )  # fmt: skip
    if panel is not None and panel.consistency is not None:
        c = panel.consistency
        parts.append(
            f"<h3>Judge self-consistency ({c.samples} asks per verdict)</h3><p>mean agreement "
            f"{_e(_k(c.mean_agreement))}; {c.unstable} of {c.verdicts} verdicts unstable</p>"
        )
        if c.unstable_verdicts:
            parts.append(
                _html_table(
                    ["instance", "sample", "verdict", "judge", "labels per ask"],
                    [
                        [u.instance, str(u.sample), u.kind, u.judge, " / ".join(u.labels)]
                        for u in c.unstable_verdicts[:UNSTABLE_SHOWN]
                    ],
                )
            )
    if not parts:
        return ""
    return '<section id="judge"><h2>Judge</h2>' + "".join(parts) + "</section>"
