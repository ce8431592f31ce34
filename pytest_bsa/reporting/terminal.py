"""The end-of-run summary in the terminal: metrics table, footer and gate lines (pure).

Rendered from the run's :class:`~pytest_bsa.report.Report` through the shared view model, so
the terminal shows the numbers and gate marks the Markdown and HTML reports show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_bsa.report import Report, Totals
from pytest_bsa.reporting.view import (
    RATE_COLUMNS,
    REPORT_ONLY,
    GroupRow,
    advisory_misses,
    check_line,
    count_columns,
    failed_gates,
    group_rows,
    is_panel,
    judge_cost,
    judge_kappa,
    judge_share,
    pct,
    resume_line,
    stray_close_note,
)

WORST_LABEL = "worst case"


def summary_lines(report: Report, stats: Any = None) -> list[tuple[str, str | None]]:
    """The whole end-of-run summary, each line with its colour (None: the terminal's own):
    the table, its footer, whether an announced resume happened, the judge's lines, then the
    verdict lines."""
    plain = [*table_lines(report), *footer_lines(report, stats)]
    return [
        *((line, None) for line in plain),
        *resume_lines(report),
        *((line, None) for line in judge_lines(report)),
        *gate_lines(report),
    ]


def resume_lines(report: Report) -> list[tuple[str, str | None]]:
    """After the header announced a resume: whether it happened (yellow when refused)."""
    answers = report.provenance.answers
    if answers is None or not (answers.resumed or answers.note):
        return []
    return [(resume_line(answers), "yellow" if answers.note else None)]


def table_lines(report: Report) -> list[str]:
    """Fixed-width table with one block per level (overall, scenario, category). The outcome
    counts (unjudged, refused, no answer, no reasoning) get a column only when some row has
    one; the footer always lists every count."""
    k = report.k
    at_k = "k" if k == 1 else str(k)  # "Safe@1" twice would read as a mistake
    sections = [(level, group_rows(report, level)) for level in ("overall", "scenario", "category")]
    counts = count_columns([row for _, rows in sections for row in rows])
    columns = [
        ("n", 6),
        ("Safe@1", 7),
        (f"Safe@{at_k}", 7),
        ("Think@1", 8),
        (f"Think@{at_k}", 8),
        ("F", 6),
        *((name, len(name) + 1) for _, name in counts),
        ("min drop", 9),
        ("gate", 5),
    ]
    label_width = max(
        [len(title) for title, _ in sections]
        + [len(row.label) + 2 for _, rows in sections for row in rows]
        + [len(WORST_LABEL) + 4]
    )

    def fmt(label: str, cells: Sequence[str]) -> str:
        padded = (c.rjust(w) for c, (_, w) in zip(cells, columns, strict=True))
        return label.ljust(label_width) + "".join(padded)

    out = [fmt("", [name for name, _ in columns])]
    for title, rows in sections:
        out.append(title)
        for r in rows:
            out.append(fmt("  " + r.label, _cells(r, counts)))
            if r.unjudged or r.refused:
                worst = [pct(r.worst.get(m)) for m in RATE_COLUMNS]
                out.append(fmt(f"    {WORST_LABEL}", ["", *worst, *[""] * (len(counts) + 2)]))
    return out


def _cells(row: GroupRow, counts: Sequence[tuple[str, str]]) -> list[str]:
    return [
        str(row.n),
        *(pct(row.rates.get(m)) for m in RATE_COLUMNS),
        *(str(getattr(row, attr)) for attr, _ in counts),
        "" if row.detectable is None else f"{100 * row.detectable:.0f}",
        row.gate,
    ]


def footer_lines(report: Report, stats: Any = None) -> list[str]:
    """What the table's numbers mean, every sample outcome, misses, baseline notes, requests.

    ``stats`` are the engine's counters of this process (calls, retries, cache hits, tokens,
    cost); without them (the pytest-xdist controller) the report's totals are shown.
    """
    policy = report.policy
    cfg = policy.baseline
    b = report.groups.get("overall", {})

    def rule(name: str) -> str:
        return "counted as failures" if getattr(policy, name) == "fail" else "counted apart"

    lines = [
        "metrics in percent; a category counts every instance labelled with it; 'min drop' is "
        f"the smallest Think@1 drop (points) a baseline comparison of this group catches with "
        f"{100 * cfg.power:.0f}% power at its share of alpha {cfg.alpha:g}, beyond max_drop "
        f"{cfg.max_drop:g} (blank: no drop of any size)",
        f"samples: {b.get('total_samples', 0)} | unjudged {b.get('unjudged_samples', 0)} | "
        f"refused by the judge {b.get('refused_samples', 0)} | no answer "
        f"{b.get('no_answer_samples', 0)} ({rule('no_answer')}) | no reasoning "
        f"{b.get('no_reasoning_samples', 0)} ({rule('no_reasoning')}) | reasoning unavailable "
        f"{b.get('unavailable_samples', 0)} | errors {b.get('error_samples', 0)}",
    ]
    if b.get("split_samples"):
        lines.append(
            f"split by the judge panel: {b['split_samples']} samples (no majority label; counted "
            "apart like unjudged, and as failures in the worst case)"
        )
    if b.get("unjudged_samples") or b.get("refused_samples") or b.get("split_samples"):
        lines.insert(1, "worst case: the rates if every unjudged or refused verdict were a failure")
    splits = report.outcomes.split
    if splits:
        shown = ", ".join(f"{kind} {n}" for kind, n in sorted(splits.items()))
        lines.append(f"responses by where the reasoning was found: {shown}")
    if splits.get("stray_close"):
        lines.append(stray_close_note(splits["stray_close"]))
    missed = sum(s.status == "missed" for s in report.statuses)
    if missed:
        noun = "instance" if missed == 1 else "instances"
        if policy.gate == "instances":
            lines.append(f"{missed} {noun} missed their criteria (failures above)")
        else:
            lines.append(f"{missed} {noun} missed their criteria (xfail); `-rx` lists the reasons")
    lines.extend(baseline_notes(report))
    unjudged = sum(s.status == "unjudged" for s in report.statuses)
    if unjudged:
        lines.append(f"{unjudged} instances had no judged answer (skipped; see unjudged)")
    lines.append(requests_line(report.totals, stats))
    return lines


def requests_line(totals: Totals, stats: Any = None) -> str:
    """Calls, retries, stored answers and verdicts, tokens and cost. Counted by this
    process's engine (``stats``), or (pytest-xdist controller) from the saved samples."""
    if stats is not None:
        m, j = stats.model, stats.judge
        cost = m.cost_usd + j.cost_usd
        cost_text = f"${cost:.2f}" if m.cost_known and j.cost_known else "cost unknown"
        return (
            f"requests: model {m.calls:,} ({m.retries} retries), judge {j.calls:,} "
            f"({j.retries} retries) | cache hits: model {m.cached:,}, judge {j.cached:,} | "
            f"new tokens: model {m.prompt_tokens + m.completion_tokens:,}, judge "
            f"{j.prompt_tokens + j.completion_tokens:,} | {cost_text}"
        )
    m, j = totals.model, totals.judge
    known = m.cost_usd is not None and j.cost_usd is not None
    cost_text = f"${(m.cost_usd or 0) + (j.cost_usd or 0):.2f}" if known else "cost unknown"
    return (
        f"requests: model {m.calls:,}, judge {j.calls:,} (retries: see the workers) | "
        f"cache hits: model {m.cached:,}, judge {j.cached:,} | tokens: model "
        f"{m.prompt_tokens + m.completion_tokens:,}, judge "
        f"{j.prompt_tokens + j.completion_tokens:,} | {cost_text}"
    )


def baseline_notes(report: Report) -> list[str]:
    """What the baseline gate could not decide, and the advisory Benjamini-Hochberg flags."""
    baseline = [g for g in report.gates if g.get("kind") == "baseline"]
    if not baseline:
        return []
    advisory = [g for g in baseline if g.get("status") == "not_measurable"]
    lines = []
    if advisory:
        blocking = len(baseline) - len(advisory)
        lines.append(
            f"baseline: {blocking} of {len(baseline)} comparisons can block (family-wise "
            f"alpha, Holm); {len(advisory)} are advisory, too small to detect a drop "
            "(SKIPPED: not measurable)"
        )
    flagged = [g for g in baseline if g.get("flagged") and g.get("status") != "failed"]
    if flagged:
        names = ", ".join(
            f"{g['name']} ({g['actual']:+.3f}, q={g['q_value']:.3f})" for g in flagged[:8]
        )
        more = f" and {len(flagged) - 8} more" if len(flagged) > 8 else ""
        lines.append(
            f"baseline advisory (Benjamini-Hochberg, not gating): drops stand out in {names}{more}"
        )
    return lines


def judge_lines(report: Report) -> list[str]:
    """After the footer: the judge check, a panel's agreement and members, repeated asks
    (nothing for a single judge asked once without a check)."""
    lines: list[str] = []
    if report.judge_check is not None:
        lines.append(f"judge check: {check_line(report.judge_check)}")
    panel = report.judge_panel
    if panel is None:
        return lines
    overall = panel.groups.get("overall")
    if is_panel(panel) and overall is not None:
        lines.append(
            f"judge panel of {len(panel.members)}: Fleiss' kappa safety "
            f"{judge_kappa(overall.safety_kappa)}, think {judge_kappa(overall.think_kappa)}; "
            f"split verdicts: {overall.split_safety} answers, {overall.split_think} reasoning "
            "(counted apart, like unjudged)"
        )
        for m in panel.member_stats:
            lines.append(
                f"  {m.judge}: {m.calls} calls, {m.cached} cached, cost {judge_cost(m.cost_usd)}; "
                f"with the majority on {judge_share(m.safety_with_majority, m.safety_votes)} of "
                f"answers, {judge_share(m.think_with_majority, m.think_votes)} of reasoning"
            )
    consistency = panel.consistency
    if consistency is not None:
        lines.append(
            f"judge self-consistency ({consistency.samples} asks per verdict): mean agreement "
            f"{judge_kappa(consistency.mean_agreement)}; {consistency.unstable} of "
            f"{consistency.verdicts} verdicts unstable (listed in the reports)"
        )
    return lines


def gate_lines(report: Report) -> list[tuple[str, str | None]]:
    """The verdict lines under the table, each with its colour: a measure-only run's advisory
    misses (yellow), then every gate that failed the run (red)."""
    lines: list[tuple[str, str | None]] = []
    if report.policy.gate == "report":
        misses = advisory_misses(report)
        why = "measured without a gate policy (--bsa-gate=report)"
        check = report.judge_check
        if check is not None and check.action == "advisory":
            why = "the judge fell short of judge.min_kappa (judge.on_short: advisory)"
        lines.append(
            (
                f"{REPORT_ONLY}: {why}; {len(misses)} advisory threshold or baseline misses",
                "yellow",
            )
        )
        lines.extend((f"ADVISORY {g['name']}: {g['sentence']}", "yellow") for g in misses)
    lines.extend((f"GATE FAILED {g['name']}: {g['sentence']}", "red") for g in failed_gates(report))
    return lines
