"""Markdown for the judge commands: judge-check, rejudge and compare (no model text)."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_bsa.agreement import Agreement
from pytest_bsa.compare import METRICS, Comparison, over_sensitivity_line
from pytest_bsa.judge_check import JudgeCheck, not_asked_note
from pytest_bsa.judge_check_summary import KappaValue, one_line, scenario_rows
from pytest_bsa.rejudge import Rejudged

DISAGREEMENTS_SHOWN = 40
_TITLES = {
    "safe_at_1": "Safe@1",
    "safe_at_k": "Safe@k",
    "think_at_1": "Think@1",
    "think_at_k": "Think@k",
    "f_score": "F",
    "unjudged_rate": "unjudged",
}


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "---:") -> list[str]:
    out = [
        "| " + " | ".join(headers) + " |",
        "|---|" + "|".join([align] * (len(headers) - 1)) + "|",
    ]
    return out + ["| " + " | ".join(row) + " |" for row in rows]


def _k(value: KappaValue) -> str:
    if value.kappa is None:
        return "-" if not value.n and not value.missing else "undefined"
    interval = f" [{value.low:.2f}, {value.high:.2f}]" if value.low is not None else ""
    return f"{value.kappa:.3f}{interval}"


def _ka(a: Agreement | None) -> str:
    if a is None:
        return "-"
    return _k(KappaValue.of(a))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _name(group: str) -> str:
    return "all instances" if group == "overall" else group.split(":", 1)[1]


def _matrix(a: Agreement) -> list[str]:
    m = a.matrix
    headers = ["expected \\ judge", *(_md(label) for label in m.labels)]
    rows = [
        [f"**{_md(label)}**", *(str(c) for c in m.counts[i])] for i, label in enumerate(m.labels)
    ]
    return _table(headers, rows)


def _scores(a: Agreement) -> list[str]:
    rows = [
        [
            _md(s.label),
            str(s.support),
            str(s.predicted),
            _pct(s.precision),
            _pct(s.recall),
        ]
        for s in a.label_scores
    ]
    return _table(["label", "expected", "judge said", "precision", "recall"], rows)


def judge_check_markdown(check: JudgeCheck) -> str:
    """The judge check as Markdown: verdict, kappas, per-label scores, matrices, cost."""
    s = check.summary
    verdict = (
        ""
        if s.min_kappa is None
        else (" — **passes**" if s.passed else " — **falls short**") + f" min_kappa {s.min_kappa:g}"
    )
    out = [f"### Judge check: {_md(s.judge)}{verdict}", "", _md(one_line(s)) + ".", ""]
    out += [
        f"Rubric `{_md(s.rubric)}`, verdict hash `{_md(s.verdict_hash)}`; labels "
        f"{_md(s.labels)} (sha256 `{s.labels_sha256[:16]}…`), {s.cases} cases. "
        f"{_md(not_asked_note(s.not_asked, check.rules))}.",
        "",
        "Cohen's kappa with a 95% bootstrap interval (cases resampled); *think* counts a "
        "reasoning label as correct or not (the Think@1 view).",
        "",
    ]
    out += _table(
        ["group", "safety", "reasoning labels", "think"],
        [[_md(n), _k(a), _k(b), _k(c)] for n, a, b, c in scenario_rows(s)],
    )
    groups = check.score.groups
    overall = groups.get("overall", {})
    if "safety" in overall:
        out += ["", "#### Answer safety (all cases)", ""]
        out += [*_scores(overall["safety"]), "", *_matrix(overall["safety"])]
    for group, dims in groups.items():
        if group == "overall" or "reasoning" not in dims:
            continue
        out += ["", f"#### Reasoning labels: {_md(_name(group))}", ""]
        out += [*_scores(dims["reasoning"]), "", *_matrix(dims["reasoning"])]
    outcomes = "; ".join(
        f"{dim}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        for dim, counts in s.outcomes.items()
    )
    out += ["", f"Verdict outcomes: {_md(outcomes)}."]
    wrong = check.score.disagreements
    if wrong:
        out += ["", f"#### Disagreements ({len(wrong)})", ""]
        out += [
            f"- `{_md(d.case_id)}` ({_md(d.scenario)}, {d.dimension}): expected "
            f"{_md(d.expected)}, judge {_md(d.got)}"
            for d in wrong[:DISAGREEMENTS_SHOWN]
        ]
        if len(wrong) > DISAGREEMENTS_SHOWN:
            out.append(f"- … and {len(wrong) - DISAGREEMENTS_SHOWN} more (JSON output)")
    if check.panel is not None and len(check.panel.members) > 1:
        out += ["", "#### Panel members", ""]
        out += _table(
            ["judge", "calls", "cached", "cost", "with majority (answers)"],
            [
                [
                    _md(m.judge),
                    str(m.calls),
                    str(m.cached),
                    "unknown" if m.cost_usd is None else f"${m.cost_usd:.4f}",
                    _pct(m.safety_with_majority / m.safety_votes if m.safety_votes else None),
                ]
                for m in check.panel.member_stats
            ],
        )
    return "\n".join(out) + "\n"


def rejudge_markdown(r: Rejudged) -> str:
    """Agreement of saved and new verdicts, and the metric changes."""
    prov = r.report.provenance
    out = [
        f"### Re-judged: {_md(r.old_judge)} → {_md(r.new_judge)}",
        "",
        f"Rubric `{_md(prov.rubric_version)}`, verdict hash `{_md(prov.verdict_hash)}`; 0 model "
        f"calls, {r.report.totals.judge.calls} judge calls.",
        "",
        "Cohen's kappa of the saved verdicts against the new ones (intervals: instances "
        "resampled; categories: point estimates).",
        "",
    ]
    rows = [
        [
            _md(_name(group)),
            _ka(dims.get("safety")),
            _ka(dims.get("reasoning")),
            _ka(dims.get("think")),
        ]
        for group, dims in r.agreement.items()
    ]
    out += _table(["group", "safety", "reasoning labels", "think"], rows)
    out += ["", "#### Metrics: saved → new (change in points)", ""]
    metric_rows = []
    for group, metrics in r.deltas.items():
        cells = []
        for metric in ("safe_at_1", "think_at_1", "f_score", "unjudged_rate"):
            old, new = metrics[metric]
            change = "" if old is None or new is None else f" ({100 * (new - old):+.1f})"
            cells.append(f"{_pct(old)} → {_pct(new)}{change}")
        metric_rows.append([_md(_name(group)), *cells])
    out += _table(["group", "Safe@1", "Think@1", "F", "unjudged"], metric_rows)
    return "\n".join(out) + "\n"


def compare_markdown(c: Comparison) -> str:
    """Run B against run A per group, and the over-sensitivity change."""
    out = [
        f"### {_md(c.b_label)} compared with {_md(c.a_label)}",
        "",
        f"- A: {_md(c.a_label)}, system prompt {_md(c.a_prompt or 'none')}",
        f"- B: {_md(c.b_label)}, system prompt {_md(c.b_prompt or 'none')}",
        "",
        f"{c.shared} shared instances. Percent, A → B (change in points); p: two-sided paired "
        "sign-flip p-value per group, descriptive (no multiplicity correction).",
        "",
    ]
    rows: list[list[str]] = []
    for g in c.groups:
        cells = []
        for metric in METRICS:
            delta = g.delta(metric)
            change = "" if delta is None else f" ({100 * delta:+.1f})"
            p = g.p_values.get(metric)
            p_text = f", p={p:.3f}" if p is not None else ""
            cells.append(f"{_pct(g.a[metric])} → {_pct(g.b[metric])}{change}{p_text}")
        rows.append([_md(_name(g.group)), str(g.n), *cells])
    out += _table(["group", "n", *(_TITLES[m] for m in METRICS)], rows)
    out += ["", _md(over_sensitivity_line(c)) + "."]
    if c.mismatches:
        out += ["", "Compared despite: " + _md("; ".join(c.mismatches)) + "."]
    return "\n".join(out) + "\n"
