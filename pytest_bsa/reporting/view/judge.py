"""The judge's own sections as every report shows them: the judge check before the run, a
judge panel's agreement and members, repeated asks, a named system prompt (pure).

Read from the report fields ``judge_check`` and ``judge_panel`` and the provenance's
``system_prompt_source``; a single judge asked once, without a check, shows nothing. The
terminal, Markdown and HTML renderers lay these rows and sentences out for their format.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_bsa.judge_check_summary import JudgeCheckSummary, one_line, short_sentence
from pytest_bsa.panel_stats import Consistency, PanelSummary
from pytest_bsa.report import Report

UNSTABLE_SHOWN = 20  # unstable verdicts listed in Markdown and HTML
PANEL_HEADERS = (
    "group",
    "samples",
    "Fleiss κ safety",
    "κ think",
    "κ reasoning labels",
    "split answers",
    "split reasoning",
)
MEMBER_HEADERS = (
    "judge",
    "calls",
    "cached",
    "tokens",
    "cost",
    "with majority (answers)",
    "with majority (reasoning)",
)
CONSISTENCY_HEADERS = ("group", "verdicts", "unstable", "mean agreement")
UNSTABLE_HEADERS = ("instance", "sample", "verdict", "judge", "labels per ask")
SPLIT_NOTE = (
    "A split verdict (no label given by more than half of the judges) counts apart, like an "
    "unjudged one: in the unjudged rate, as a failure in the worst case."
)


def kappa(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def share(part: int, whole: int) -> str:
    return "-" if not whole else f"{100 * part / whole:.0f}%"


def member_cost(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def group_name(group: str) -> str:
    """``overall`` -> ``all instances``; ``scenario:X`` / ``category:X`` -> ``X``."""
    return "all instances" if group == "overall" else group.split(":", 1)[1]


def prompt_text(source: str | None, sha256: str | None) -> str:
    """Which system prompt a run gave the model."""
    if source is None and sha256 is None:
        return "none"
    digest = f" (sha256 {sha256[:12]}…)" if sha256 else ""
    return f"{source or 'file'}{digest}"


def named_prompt(report: Report) -> str | None:
    """The named system prompt the run gave the model (``official:safety-rules``, with its
    digest); None for no prompt or a prompt file (the provenance shows its digest)."""
    prov = report.provenance
    source = prov.system_prompt_source
    if not source or source == "file":
        return None
    return prompt_text(source, prov.system_prompt_sha256)


def check_line(check: JudgeCheckSummary) -> str:
    """The judge check in one line."""
    return one_line(check)


def check_advisory(check: JudgeCheckSummary) -> str | None:
    """Why the run's gates were advisory, when the judge fell short (``on_short: advisory``)."""
    return short_sentence(check) if check.action == "advisory" else None


@dataclass(frozen=True)
class PanelRow:
    """One group's agreement between the members of a judge panel."""

    group: str
    samples: int
    safety: str
    think: str
    reasoning: str
    split_answers: int
    split_reasoning: int

    @property
    def cells(self) -> list[str]:
        return [
            self.group,
            str(self.samples),
            self.safety,
            self.think,
            self.reasoning,
            str(self.split_answers),
            str(self.split_reasoning),
        ]


def is_panel(panel: PanelSummary | None) -> bool:
    return panel is not None and len(panel.members) > 1


def panel_rows(panel: PanelSummary) -> list[PanelRow]:
    """Overall first, then scenarios, then categories."""
    level = {"overall": 0, "scenario": 1, "category": 2}
    order = sorted(panel.groups, key=lambda g: level.get(g.split(":", 1)[0], 3))
    return [
        PanelRow(
            group_name(group),
            g.samples,
            kappa(g.safety_kappa),
            kappa(g.think_kappa),
            kappa(g.reasoning_kappa),
            g.split_safety,
            g.split_think,
        )
        for group, g in ((group, panel.groups[group]) for group in order)
    ]


@dataclass(frozen=True)
class MemberRow:
    """One member judge: its calls, cost and how often it sided with the majority."""

    judge: str
    calls: int
    cached: int
    tokens: int
    cost: str
    with_majority_answers: str
    with_majority_reasoning: str

    @property
    def cells(self) -> list[str]:
        return [
            self.judge,
            str(self.calls),
            str(self.cached),
            str(self.tokens),
            self.cost,
            self.with_majority_answers,
            self.with_majority_reasoning,
        ]


def member_rows(panel: PanelSummary) -> list[MemberRow]:
    return [
        MemberRow(
            m.judge,
            m.calls,
            m.cached,
            m.prompt_tokens + m.completion_tokens,
            member_cost(m.cost_usd),
            share(m.safety_with_majority, m.safety_votes),
            share(m.think_with_majority, m.think_votes),
        )
        for m in panel.member_stats
    ]


def consistency_rows(consistency: Consistency) -> list[list[str]]:
    """Per group: verdicts, unstable verdicts, mean agreement of the repeated asks."""
    return [
        [group_name(group), str(c.verdicts), str(c.unstable), kappa(c.mean_agreement)]
        for group, c in consistency.groups.items()
    ]


def unstable_rows(consistency: Consistency) -> list[list[str]]:
    """The first :data:`UNSTABLE_SHOWN` verdicts that changed between asks."""
    return [
        [u.instance, str(u.sample), u.kind, u.judge, " / ".join(u.labels)]
        for u in consistency.unstable_verdicts[:UNSTABLE_SHOWN]
    ]
