"""The Markdown summary's head: verdict, before/after, gates, metrics tables and chart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_bsa.report import Report
from pytest_bsa.reporting.markdown.text import Caps, capped_table, md, mermaid_label, omitted, table
from pytest_bsa.reporting.view import (
    COUNT_COLUMNS,
    RATE_COLUMNS,
    SAFE_COLOR,
    THINK_COLOR,
    WORST_NOTE,
    GroupRow,
    advisory_misses,
    count,
    failed_gates,
    gate_numbers,
    group_rows,
    is_failed,
    metric_title,
    pct,
    points,
)

_SHORT_CATEGORY = {
    "Offense and Prejudice": "Offense",
    "Specially Regulated Items": "Regulated",
    "Property Infringement": "Property",
    "Invasion of Privacy and Confidentiality": "Privacy",
    "Physical and Mental Health": "Health",
    "Violence and Terrorism": "Violence",
    "Ethics and Morality": "Ethics",
    "Rumors": "Rumors",
    "Pornography": "Pornography",
}


def verdict(report: Report) -> str:
    p = report.provenance
    failed, total = len(failed_gates(report)), len(report.gates)
    if report.report_only:
        advisory = len(advisory_misses(report))
        head = "📋 BSA REPORT ONLY" + (" — the run failed" if is_failed(report) else "")
        tail = f" (measured without a gate policy; {advisory} advisory misses" + (
            f", {failed} integrity gates failed)" if failed else ")"
        )
    elif is_failed(report):
        head = "❌ BSA gate failed"
        tail = f" ({failed} of {total} gates failed)" if failed else ""
    else:
        head = "✅ BSA gate passed"
        tail = f" ({total} gates)" if total else ""
    return (
        f"### {head}: model **{md(p.model.model)}**, judge **{md(p.judge.model)}**, dataset "
        f"**{md(p.dataset.label)}**, {count(len(report.instances))} instances × {report.k} "
        f"samples{tail}"
    )


def _gate_rows(gates: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for g in gates:
        numbers = gate_numbers(g)
        rows.append(
            [
                md(g.get("name", g.get("metric", "?"))),
                md(numbers.actual),
                md(numbers.required),
                md(numbers.interval),
                md(g.get("sentence", "")),
            ]
        )
    return rows


def gates_section(report: Report, caps: Caps) -> list[str]:
    failed = failed_gates(report)
    out: list[str] = []
    advisory = advisory_misses(report)
    if advisory:
        out += ["", f"#### REPORT ONLY: advisory misses ({len(advisory)}, not enforced)", ""]
        out += capped_table(
            ["gate", "actual", "required", "95% CI", "why"],
            ["---", "--:", "--:", "--:", "---"],
            _gate_rows(advisory[: caps.gates]),
            len(advisory),
        )
    if failed:
        out += ["", f"#### Failing gates ({len(failed)})", ""]
        out += capped_table(
            ["gate", "actual", "required", "95% CI", "why"],
            ["---", "--:", "--:", "--:", "---"],
            _gate_rows(failed[: caps.gates]),
            len(failed),
        )
    unmeasured = [g for g in report.gates if g.get("status") == "not_measurable"]
    if unmeasured:
        out += ["", *_unmeasured_lines(unmeasured, caps.gates)]
    flagged = [g for g in report.gates if g.get("flagged") and g.get("status") != "failed"]
    if flagged:
        names = ", ".join(
            f"{md(g.get('name', '?'))} ({points(g.get('actual'))} pts, q = {g['q_value']:.3f})"
            for g in flagged[: caps.gates]
        )
        more = len(flagged) - min(len(flagged), caps.gates)
        out += [
            "",
            f"Advisory, not gating (Benjamini–Hochberg, FDR {report.policy.baseline.alpha:g}): "
            f"drops stand out in {names}" + (f" … {more} more" if more else ""),
        ]
    return out


def _unmeasured_lines(gates: Sequence[Mapping[str, Any]], cap: int) -> list[str]:
    """Gates that could not decide, each with its reason (advisory: never passed)."""
    out = [f"<details><summary>Not measurable ({len(gates)}): advisory, never passed</summary>", ""]
    for g in gates[:cap]:
        out.append(f"- {md(g.get('name', '?'))}: {md(_reason(g.get('sentence', '')))}")
    if len(gates) > cap:
        out += ["", omitted(len(gates) - cap, "gates")]
    return [*out, "", "</details>"]


def _reason(sentence: str) -> str:
    """The ``not measurable (...)`` part of a gate's sentence, when it has one."""
    start = sentence.find("not measurable")
    return sentence[start:] if start >= 0 else sentence


def _cell(row: GroupRow, metric: str) -> str:
    value = pct(row.rates.get(metric))
    if row.worst_differs(metric):
        value += f" (worst {pct(row.worst.get(metric))})"
    delta = row.deltas.get(metric)
    return value if delta is None else f"{value} ({points(delta)})"


def _metrics_table(report: Report, title: str, rows: Sequence[GroupRow], cap: int) -> list[str]:
    k = report.k
    counts = [name for _, name in COUNT_COLUMNS]
    headers = [title, "n", *(metric_title(m, k) for m in RATE_COLUMNS), *counts, "gate"]
    mark = {"FAIL": "❌ FAIL", "pass": "✅ pass", "n/m": "n/m", "": ""}
    shown = rows[:cap]
    body = [
        [
            f"**{md(r.label)}**" if r.key == "overall" else md(r.label),
            count(r.n),
            *(_cell(r, m) for m in RATE_COLUMNS),
            *(count(getattr(r, attr)) for attr, _ in COUNT_COLUMNS),
            mark.get(r.gate, md(r.gate)),
        ]
        for r in shown
    ]
    return capped_table(headers, ["---", *["--:"] * (len(headers) - 2), ":-:"], body, len(rows))


def tables_section(report: Report, caps: Caps) -> list[str]:
    if not report.groups:
        return ["", "No instance was evaluated."]
    note = "Metrics in percent; a category counts every instance labelled with it."
    if any(r.unjudged or r.refused for r in group_rows(report, "overall")):
        note += f" {WORST_NOTE}"
    if report.baseline:
        note += (
            f" (±x): change against baseline {md(report.baseline)} in points, on shared "
            "instances, for the metrics the baseline gates compare."
        )
    out = ["", "#### By scenario", ""]
    out += _metrics_table(
        report, "scenario", group_rows(report, "overall") + group_rows(report, "scenario"), 99
    )
    categories = group_rows(report, "category")
    if categories:
        out += ["", "#### By category", ""]
        out += _metrics_table(report, "category", categories, caps.categories)
    out += ["", note]
    subs = group_rows(report, "subcategory")
    if subs and caps.subcategories:
        out += ["", f"<details><summary>By subcategory ({len(subs)})</summary>", ""]
        out += _metrics_table(report, "subcategory", subs, caps.subcategories)
        out += ["", "</details>"]
    return out


def chart_section(report: Report, caps: Caps) -> list[str]:
    rows = [r for r in group_rows(report, "category") if r.rates.get("safe_at_1") is not None]
    rows = rows[: min(caps.categories, 20)]
    if not rows:
        return []
    safe = [f"{100 * (r.rates['safe_at_1'] or 0):.1f}" for r in rows]
    think_values = [r.rates.get("think_at_1") for r in rows]
    labels = ", ".join(f'"{mermaid_label(_SHORT_CATEGORY.get(r.label, r.label))}"' for r in rows)
    title = "Safe@1 (bars) and Think@1 (line) per category, percent"
    lines = [
        "---",
        "config:",
        "  themeVariables:",
        "    xyChart:",
        f'      plotColorPalette: "{SAFE_COLOR}, {THINK_COLOR}"',
        "---",
        "xychart-beta",
        f'    title "{title}"',
        f"    x-axis [{labels}]",
    ]
    lines += ['    y-axis "percent" 0 --> 100', f"    bar [{', '.join(safe)}]"]
    note = ""
    if all(v is not None for v in think_values):
        lines.append(f"    line [{', '.join(f'{100 * (v or 0):.1f}' for v in think_values)}]")
    else:
        note = "Think@1 is not drawn: some category had no reasoning to judge."
    out = ["", "#### Safe@1 and Think@1 per category", "", "```mermaid", *lines, "```"]
    return out + (["", note] if note else [])


def _before_after(value: float | None, before: float | None) -> str:
    if value is None and before is None:
        return "-"
    change = "" if value is None or before is None else f" ({points(value - before)})"
    return f"{pct(before)} → {pct(value)}{change}"


def comparison_section(report: Report, baseline: Report | None) -> list[str]:
    """Before/after per overall and scenario: the baseline report's values beside this run's."""
    if baseline is None:
        return []
    label = md(report.baseline or "the baseline")
    k = report.k
    headers = ["", "n", *(metric_title(m, k) for m in RATE_COLUMNS)]
    rows = []
    for now in group_rows(report, "overall") + group_rows(report, "scenario"):
        before = baseline.groups.get(now.key, {})
        n_before = before.get("n_instances")
        rows.append(
            [
                f"**{md(now.label)}**" if now.key == "overall" else md(now.label),
                f"{count(n_before)} → {count(now.n)}",
                *(_before_after(now.rates.get(m), before.get(m)) for m in RATE_COLUMNS),
            ]
        )
    note = (
        "Percent, baseline → this run (change in points), each over its own instances; the "
        "baseline gates compare the instances both runs share."
    )
    if baseline.k != k:
        note += f" The baseline sampled k={baseline.k}, this run k={k}."
    out = ["", f"#### Before and after: {label} → this run", ""]
    out += table(headers, ["---", *["--:"] * (len(headers) - 1)], rows)
    return [*out, "", note]
