"""A self-contained HTML report of a saved run: one file, no network, inline CSS/SVG/JS (pure).

Everything shown in the markup goes through :func:`html.escape`; the per-instance data
(queries, answers, reasoning, verdicts) travels in one ``<script type="application/json">``
block with ``<``, ``>`` and ``&`` written as JSON escapes, and the page's script puts it into
the DOM with ``textContent`` only. Sample details are built when a row is opened, so a report
of 2,000 instances x 5 samples stays quick to load.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from pytest_bsa.evaluation import outcomes_of
from pytest_bsa.metrics import instance_values
from pytest_bsa.models import SCENARIOS, InstanceResult
from pytest_bsa.report import Report
from pytest_bsa.reporting.judge_sections import html_section
from pytest_bsa.reporting.markdown import (
    COUNT_COLUMNS,
    RATE_COLUMNS,
    SAFE_COLOR,
    THINK_COLOR,
    WORST_NOTE,
    GroupRow,
    advisory_misses,
    answers_text,
    count,
    dollars,
    excerpt,
    failed_gates,
    flip_metric,
    flip_value,
    gate_numbers,
    group_rows,
    is_failed,
    judge_text,
    metric_title,
    outcomes_text,
    pct,
    points,
    power_basis,
    power_rows,
    rubric_text,
    seconds,
    status_by_id,
)

SHOWN_FLIPS = 20
SHOWN_GATES = 3  # failing gates shown before a "more" fold
TEXT_LIMIT = 20_000  # characters kept of one answer, reasoning trace or explanation
_STATUS_ORDER = {"error": 0, "missed": 1, "unjudged": 2, "met": 3}
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _clip(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{len(text) - limit:,} more characters; see the JSON report]"


def script_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</``, ``<!--``)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES)


# ---------------------------------------------------------------- charts


def bar_chart(title: str, rows: Sequence[GroupRow]) -> str:
    """Horizontal grouped bars of Safe@1 and Think@1 per group, as inline SVG."""
    label_w, plot_w, right = 300, 560, 70
    bar_h, inner, gap, top, bottom = 13, 2, 12, 46, 50
    group_h = 2 * bar_h + inner + gap
    plot_h = max(len(rows), 1) * group_h
    width, height = label_w + plot_w + right, top + plot_h + bottom

    def x(value: float) -> float:
        return label_w + max(0.0, min(1.0, value)) * plot_w

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
        f'<text x="{label_w}" y="16" class="ctitle">{_e(title)}</text>',
    ]
    legend = [("Safe@1", SAFE_COLOR), ("Think@1", THINK_COLOR)]
    lx = label_w
    for name, color in legend:
        parts.append(f'<rect x="{lx}" y="26" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{lx + 16}" y="36" class="legend">{name}</text>')
        lx += 90
    if any(r.deltas for r in rows):
        parts.append(f'<line x1="{lx + 6}" x2="{lx + 6}" y1="24" y2="40" class="base"/>')
        parts.append(f'<text x="{lx + 14}" y="36" class="legend">baseline</text>')
    for tick in range(0, 101, 20):
        tx = x(tick / 100)
        parts.append(f'<line x1="{tx}" x2="{tx}" y1="{top - 4}" y2="{top + plot_h}" class="grid"/>')
        parts.append(
            f'<text x="{tx}" y="{top + plot_h + 16}" class="tick" '
            f'text-anchor="middle">{tick}</text>'
        )
    parts.append(
        f'<text x="{label_w + plot_w / 2}" y="{top + plot_h + 38}" class="axis" '
        'text-anchor="middle">percent of judged samples (Safe@1: answer safe; Think@1: '
        "reasoning caught the risk)</text>"
    )
    parts.append(
        f'<line x1="{label_w}" x2="{label_w}" y1="{top - 4}" y2="{top + plot_h}" class="axisline"/>'
    )
    for i, row in enumerate(rows):
        y0 = top + i * group_h
        label = row.label if len(row.label) <= 40 else row.label[:39] + "…"
        tip = f"{row.label} (n={row.n})"
        parts.append(f"<g><title>{_e(tip)}</title>")
        parts.append(
            f'<text x="{label_w - 10}" y="{y0 + bar_h + 5}" class="label" text-anchor="end">'
            f'{_e(label)} <tspan class="n">n={count(row.n)}</tspan></text>'
        )
        for j, (metric, color) in enumerate(
            (("safe_at_1", SAFE_COLOR), ("think_at_1", THINK_COLOR))
        ):
            y = y0 + j * (bar_h + inner)
            value = row.rates.get(metric)
            if value is None:
                parts.append(
                    f'<text x="{label_w + 4}" y="{y + bar_h - 2}" class="value">n/a</text>'
                )
                continue
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{x(value) - label_w:.1f}" height="{bar_h}" '
                f'fill="{color}"><title>{metric_title(metric, 1)} {pct(value)}%</title></rect>'
            )
            parts.append(
                f'<text x="{x(value) + 4:.1f}" y="{y + bar_h - 2}" '
                f'class="value">{pct(value)}</text>'
            )
            delta = row.deltas.get(metric)
            if delta is not None:
                bx = x(value - delta)
                parts.append(
                    f'<line x1="{bx:.1f}" x2="{bx:.1f}" y1="{y - 1}" y2="{y + bar_h + 1}" '
                    f'class="base"><title>baseline {pct(value - delta)}%</title></line>'
                )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------- tables and sections


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _mark(gate: str) -> str:
    cls = {"FAIL": "bad", "pass": "good", "n/m": "warn", "adv": "warn"}.get(gate, "")
    return f'<span class="chip {cls}">{_e(gate)}</span>' if gate else ""


def _metric_cell(row: GroupRow, metric: str) -> str:
    value = row.rates.get(metric)
    ci = row.intervals.get(metric)
    tip = f' title="95% CI {pct(ci[0])}–{pct(ci[1])}"' if ci else ""
    out = f"<span{tip}>{pct(value)}</span>"
    if row.worst_differs(metric):
        worst = pct(row.worst.get(metric))
        out += f' <span class="worst" title="{_e(WORST_NOTE)}">worst {worst}</span>'
    delta = row.deltas.get(metric)
    if delta is not None:
        cls = "down" if delta < -0.0005 else "up" if delta > 0.0005 else ""
        out += f' <span class="delta {cls}">{points(delta)}</span>'
    return out


def _metrics_table(report: Report, title: str, rows: Sequence[GroupRow]) -> str:
    k = report.k
    counts = [name for _, name in COUNT_COLUMNS]
    headers = [title, "n", *(metric_title(m, k) for m in RATE_COLUMNS), *counts, "gate"]
    body = [
        [
            _e(r.label),
            count(r.n),
            *(_metric_cell(r, m) for m in RATE_COLUMNS),
            *(count(getattr(r, attr)) for attr, _ in COUNT_COLUMNS),
            _mark(r.gate),
        ]
        for r in rows
    ]
    return _table(headers, body, "metrics")


def _gates_html(report: Report) -> str:
    def rows(gates: Sequence[dict[str, Any]]) -> list[list[str]]:
        out = []
        for g in gates:
            n = gate_numbers(g)
            status = g.get("status", "")
            if status == "failed" and g.get("advisory"):
                status = "advisory miss"
            cls = {"failed": "bad", "passed": "good"}.get(status, "warn")
            out.append(
                [
                    f"<code>{_e(g.get('name', ''))}</code>",
                    f'<span class="chip {cls}">{_e(status)}</span>',
                    _e(n.actual),
                    _e(n.required),
                    _e(n.interval),
                    _e(g.get("sentence", "")),
                ]
            )
        return out

    headers = ["gate", "status", "actual", "required", "95% CI", "why"]
    failed = failed_gates(report)
    parts = ['<section id="gates"><h2>Gates</h2>']
    if failed:
        parts.append(f"<h3>Failing ({len(failed)})</h3>")
        parts.append(_table(headers, rows(failed[:SHOWN_GATES]), "gates"))
        if len(failed) > SHOWN_GATES:
            parts.append(
                f"<details><summary>{len(failed) - SHOWN_GATES} more failing gates</summary>"
                f"{_table(headers, rows(failed[SHOWN_GATES:]), 'gates')}</details>"
            )
    else:
        parts.append("<p>No gate failed.</p>")
    advisory = advisory_misses(report)
    if advisory:
        parts.append(f"<h3>REPORT ONLY: advisory misses ({len(advisory)}, not enforced)</h3>")
        parts.append(_table(headers, rows(advisory[:SHOWN_GATES]), "gates"))
    parts.append(
        f"<details><summary>All {len(report.gates)} gates</summary>"
        f"{_table(headers, rows(list(report.gates)), 'gates')}</details></section>"
    )
    return "".join(parts)


def _header(report: Report) -> str:
    p = report.provenance
    failed = is_failed(report)
    verdict = "BSA gate failed" if failed else "BSA gate passed"
    n_failed = len(failed_gates(report))
    detail = (
        f"{n_failed} of {len(report.gates)} gates failed"
        if failed
        else f"{len(report.gates)} gates passed"
    )
    if report.report_only:
        verdict = "BSA REPORT ONLY" + (" (the run failed)" if failed else "")
        detail = "measured without a gate policy; thresholds and baseline are advisory · " + detail
    facts = [
        ("model", p.model.model),
        ("judge", p.judge.model),
        ("dataset", p.dataset.label),
        ("instances", f"{count(len(report.instances))} × {report.k} samples"),
        ("wall time", seconds(report.totals.wall_seconds)),
    ]
    if report.baseline:
        facts.append(("baseline", report.baseline))
    items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    return (
        f'<header class="verdict {"failed" if failed else "passed"}">'
        f'<h1><span class="icon">{"✗" if failed else "✓"}</span> {verdict}</h1>'
        f'<p class="sub">{_e(detail)} · started {_e(p.started_at)}</p><dl>{items}</dl></header>'
    )


def _charts_html(report: Report) -> str:
    categories = group_rows(report, "category")
    scenarios = group_rows(report, "overall") + group_rows(report, "scenario")
    if not categories and not scenarios:
        return ""
    return (
        '<section id="charts"><h2>Safe@1 and Think@1</h2><div class="charts">'
        f"<figure>{bar_chart('Per category', categories)}</figure>"
        f"<figure>{bar_chart('Per scenario', scenarios)}</figure></div></section>"
    )


def _groups_html(report: Report) -> str:
    if not report.groups:
        return '<section id="groups"><h2>Metrics</h2><p>No instance was evaluated.</p></section>'
    note = "Metrics in percent (hover a value for its 95% CI); a category counts every instance "
    note += "labelled with it."
    if report.baseline:
        note += f" Signed values are changes against baseline {_e(report.baseline)} in points."
    subs = group_rows(report, "subcategory")
    return (
        '<section id="groups"><h2>Metrics</h2>'
        + _metrics_table(
            report, "scenario", group_rows(report, "overall") + group_rows(report, "scenario")
        )
        + _metrics_table(report, "category", group_rows(report, "category"))
        + f'<p class="note">{note}</p>'
        + (
            f"<details><summary>By subcategory ({len(subs)})</summary>"
            f"{_metrics_table(report, 'subcategory', subs)}</details>"
            if subs
            else ""
        )
        + "</section>"
    )


def _power_html(report: Report) -> str:
    rows = power_rows(report)
    if not rows:
        return ""
    body = [
        [
            _e(r.category),
            count(r.n),
            "-" if r.drop is None else f"{pct(r.drop)} points",
            '<span class="chip warn">too small to gate</span>' if r.too_small else "",
        ]
        for r in rows
    ]
    return (
        '<section id="power"><h2>Statistical power</h2><p class="note">The smallest Think@1 drop '
        f"a baseline comparison of this size would catch ({_e(power_basis(report))}). Categories "
        f"that cannot detect a {pct(rows[0].limit, 0)}-point drop (baseline.power_drop) are too "
        "small to gate on their own: their baseline gates are advisory (not measurable).</p>"
        + _table(["category", "n", "detectable Think@1 drop", ""], body, "small")
        + "</section>"
    )


def _flips_html(report: Report, by_id: dict[str, InstanceResult]) -> str:
    if not report.baseline:
        return ""
    rows = []
    for f in report.flips:
        result = by_id.get(f["id"])
        dimension = _e(flip_metric(f, report.k))
        cls = "down" if f["after"] < f["before"] else "up"
        ident = _e(f["id"])
        change = f"{flip_value(f['before'])} → {flip_value(f['after'])}"
        rows.append(
            [
                f'<a href="#i-{ident}" class="jump" data-id="{ident}">{ident}</a>',
                _e(result.instance.scenario if result else "-"),
                dimension,
                f'<span class="delta {cls}">{change}</span>',
            ]
        )
    headers = ["instance", "scenario", "metric", "before → after"]
    table = _table(headers, rows[:SHOWN_FLIPS], "small")
    if len(rows) > SHOWN_FLIPS:
        table += (
            f"<details><summary>{len(rows) - SHOWN_FLIPS} more flips</summary>"
            f"{_table(headers, rows[SHOWN_FLIPS:], 'small')}</details>"
        )
    worse = sum(f["after"] < f["before"] for f in report.flips)
    return (
        f'<section id="flips"><h2>Flipped against {_e(report.baseline)} ({len(rows)})</h2>'
        f'<p class="note">Instances whose all-{report.k} outcome changed: {worse} got worse, '
        f"{len(rows) - worse} got better (worst first; a link opens the instance).</p>"
        + (table if rows else "<p>No instance changed its all-k outcome.</p>")
        + "</section>"
    )


def _cost_html(report: Report) -> str:
    t = report.totals
    rows = [
        [
            name,
            count(r.calls),
            count(r.cached),
            count(r.retries),
            count(r.failures),
            count(r.prompt_tokens),
            count(r.completion_tokens),
            count(r.reasoning_tokens),
            _e(dollars(r.cost_usd)),
        ]
        for name, r in (("model", t.model), ("judge", t.judge))
    ]
    headers = ["", "calls", "cached", "retries", "failures", "prompt tok", "completion tok"]
    return (
        '<section id="cost"><h2>Cost and time</h2>'
        + _table([*headers, "reasoning tok", "cost"], rows, "metrics")
        + f'<p class="note">Wall time {_e(seconds(t.wall_seconds))}.</p></section>'
    )


def _provenance_html(report: Report) -> str:
    p = report.provenance
    sel = p.selection
    params = ", ".join(f"{k}={v}" for k, v in p.generation_params.items()) or "defaults"
    items = [
        ("pytest-bsa", p.plugin_version),
        ("model", p.model.model + (f" at {p.model.host}" if p.model.host else "")),
        ("judge", p.judge.model + (f" at {p.judge.host}" if p.judge.host else "")),
        ("generation", params),
        ("system prompt sha256", p.system_prompt_sha256 or "none"),
        ("rubric", rubric_text(report, str)),
        ("judge settings", judge_text(report, str)),
        ("sample outcomes", outcomes_text(report)),
        ("dataset", f"{p.dataset.label} ({p.dataset.spec})"),
        ("dataset sha256", p.dataset.sha256),
        ("dataset revision", p.dataset.revision or "-"),
        ("selection", json.dumps(sel.model_dump(mode="json"))),
        ("git commit", p.git_commit or "-"),
        ("run", f"{p.started_at} → {p.finished_at}"),
        ("policy", json.dumps(report.policy.model_dump(mode="json"))),
    ]
    if p.answers is not None:
        items.append(("answers", answers_text(p.answers)))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    return (
        '<section id="provenance"><details><summary><h2>Provenance</h2></summary>'
        f'<table class="kv">{rows}</table></details></section>'
    )


# ---------------------------------------------------------------- instances


def instance_payload(report: Report) -> list[dict[str, Any]]:
    """One compact record per instance for the page's script (texts clipped)."""
    statuses = status_by_id(report)
    out = []
    for r in report.instances:
        i = r.instance
        values = instance_values(outcomes_of(r, report.policy), report.k)
        status, reasons = statuses.get(i.id, ("error" if r.errors else "-", ()))
        if not reasons and r.errors:
            reasons = (f"endpoint error: {excerpt(r.errors[0], 200)}",)
        samples = []
        for s in r.samples:
            c, j = s.completion, s.judgement
            samples.append(
                {
                    "i": s.index,
                    "safety": j.safety.value if j else None,
                    "think": j.think.value if j else None,
                    "sl": j.safety_label if j else None,
                    "tl": j.think_label if j else None,
                    "expl": _clip(j.explanation) if j else None,
                    "answer": _clip(c.answer) if c else None,
                    "reasoning": _clip(c.reasoning) if c else None,
                    "rstate": c.reasoning_state.value if c else None,
                    "finish": c.finish_reason if c else None,
                    "error": _clip(s.error),
                }
            )
        out.append(
            {
                "id": i.id,
                "scenario": i.scenario,
                "categories": list(i.categories),
                "labels": list(i.subcategories),
                "status": status,
                "reasons": list(reasons),
                "safe1": values["safe_at_1"],
                "think1": values["think_at_1"],
                "query": _clip(i.query),
                "risk": _clip(i.risk_summary),
                "samples": samples,
            }
        )
    out.sort(key=lambda d: (_STATUS_ORDER.get(d["status"], 3), d["id"]))
    return out


def _options(values: Iterable[str]) -> str:
    return "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)


def _instances_html(report: Report) -> str:
    scenarios = [s for s in SCENARIOS if any(r.instance.scenario == s for r in report.instances)]
    categories = [r.label for r in group_rows(report, "category")]
    statuses = [
        s
        for s in ("missed", "unjudged", "error", "met")
        if any(x.status == s for x in report.statuses)
    ]
    return (
        f'<section id="instances"><h2>Instances ({count(len(report.instances))})</h2>'
        '<div class="filters">'
        '<input id="f-text" type="search" placeholder="Filter by id, label, reason or text" '
        'aria-label="text filter">'
        f'<select id="f-scenario" aria-label="scenario"><option value="">all scenarios</option>'
        f"{_options(scenarios)}</select>"
        f'<select id="f-category" aria-label="category"><option value="">all categories</option>'
        f"{_options(categories)}</select>"
        f'<select id="f-status" aria-label="status"><option value="">any status</option>'
        f"{_options(statuses)}</select>"
        '<span id="f-count" class="note"></span></div>'
        "<noscript><p>The instance table needs JavaScript; the data is in the JSON report."
        "</p></noscript>"
        '<table class="instances"><thead><tr><th></th><th>instance</th><th>scenario</th>'
        f"<th>labels</th><th>status</th><th>Safe@1</th><th>Think@1</th><th>reasons</th></tr>"
        '</thead><tbody id="bsa-rows"></tbody></table></section>'
    )


def render_html(report: Report) -> str:
    """The whole report as one HTML document that needs no network."""
    by_id = {r.instance.id: r for r in report.instances}
    title = f"BSA {'failed' if is_failed(report) else 'passed'}: {report.provenance.model.model}"
    data = {"k": report.k, "instances": instance_payload(report)}
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("gates", "Gates"),
            ("charts", "Charts"),
            ("groups", "Metrics"),
            ("power", "Power"),
            ("flips", "Flips"),
            ("cost", "Cost"),
            ("provenance", "Provenance"),
            ("instances", "Instances"),
        )
        if a != "flips" or report.baseline
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + _header(report)
        + f"<nav>{nav}</nav><main>"
        + _gates_html(report)
        + _charts_html(report)
        + _groups_html(report)
        + _power_html(report)
        + _flips_html(report, by_id)
        + html_section(report)
        + _cost_html(report)
        + _provenance_html(report)
        + _instances_html(report)
        + "</main>"
        + f'<script type="application/json" id="bsa-data">{script_json(data)}</script>'
        + f"<script>{_JS}</script></body></html>\n"
    )


_CSS = """
:root{--fg:#1d232b;--muted:#5c6773;--line:#dde2e8;--bg:#f6f8fa;--good:#1a7f37;--bad:#c4302b;
--warn:#9a6700}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);background:#fff}
header.verdict{padding:18px 28px;border-bottom:1px solid var(--line)}
header.verdict.failed{background:#fdecea;border-left:8px solid var(--bad)}
header.verdict.passed{background:#e9f6ec;border-left:8px solid var(--good)}
header h1{margin:0;font-size:24px}
header.failed .icon{color:var(--bad)}header.passed .icon{color:var(--good)}
header .sub{margin:2px 0 10px;color:var(--muted)}
header dl{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0}
header dl div{display:flex;gap:6px}header dt{color:var(--muted)}header dd{margin:0;font-weight:600}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);
padding:8px 28px;display:flex;gap:18px}
nav a{color:var(--fg);text-decoration:none;font-weight:500}nav a:hover{text-decoration:underline}
main{padding:4px 28px 40px;max-width:1500px}
h2{font-size:18px;margin:26px 0 10px}h3{font-size:15px;margin:14px 0 6px}
section,tr.row{scroll-margin-top:48px}
table{border-collapse:collapse;margin:8px 0 14px}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600;white-space:nowrap}
table.metrics td:not(:first-child),table.metrics th:not(:first-child){text-align:right}
table.gates td:last-child{color:var(--muted);max-width:640px;font-size:13px}
table.gates td:nth-child(n+3):not(:last-child){white-space:nowrap}
table.kv th{text-align:left;width:190px}table.kv td{font-family:ui-monospace,monospace;
font-size:12px;word-break:break-all}
.chip{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600;
background:var(--bg);white-space:nowrap}
.chip.good{color:var(--good);background:#dff3e4}.chip.bad{color:#fff;background:var(--bad)}
.chip.warn{color:var(--warn);background:#fff4d6}
.delta{font-size:12px;font-weight:600}.worst{font-size:12px;color:var(--warn)}.delta.down{color:var(--bad)}.delta.up{color:var(--good)}
.note{color:var(--muted)}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}
svg.chart{max-width:100%;height:auto;font-family:inherit}
svg .ctitle{font-size:14px;font-weight:600}svg .legend,svg .label{font-size:12px}
svg .n{fill:var(--muted);font-size:11px}svg .tick,svg .value{font-size:11px;fill:#333}
svg .axis{font-size:12px;fill:var(--muted)}svg .grid{stroke:#e6e9ee}
svg .axisline{stroke:#888}svg .base{stroke:#111;stroke-width:2}
.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:6px 0}
.filters input{min-width:320px}
.filters input,.filters select{padding:5px 8px;font:inherit;border:1px solid #c5ccd4;
border-radius:5px}
table.instances{width:100%}
table.instances tr.row{cursor:pointer}table.instances tr.row:hover{background:#f3f6fa}
table.instances td.id{font-family:ui-monospace,monospace;font-size:12px}
tr.row td:first-child{width:26px;color:var(--muted)}
tr.detail>td{background:#fafbfc;padding:10px 16px 16px}
.st-missed{color:var(--warn);font-weight:600}.st-error{color:var(--bad);font-weight:600}
.st-met{color:var(--good)}
.sample{border:1px solid var(--line);border-radius:6px;margin:8px 0;padding:8px 12px;
background:#fff}
.sample.unsafe,.sample.err{border-left:4px solid var(--bad)}
.sample.incorrect{border-left:4px solid var(--warn)}
.sample h4{margin:0 0 4px;font-size:13px}
.text{white-space:pre-wrap;word-break:break-word;font-size:13px;max-height:18em;overflow:auto;
background:var(--bg);padding:6px 8px;border-radius:4px;margin:4px 0}
.field{color:var(--muted);font-size:12px;margin-top:6px}
section#provenance summary h2{display:inline}
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("bsa-data").textContent);
  var items = data.instances;
  var body = document.getElementById("bsa-rows");
  var fText = document.getElementById("f-text");
  var fScenario = document.getElementById("f-scenario");
  var fCategory = document.getElementById("f-category");
  var fStatus = document.getElementById("f-status");
  var counter = document.getElementById("f-count");
  var rows = [];
  var byId = {};

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function pct(v) { return v === null || v === undefined ? "-" : (100 * v).toFixed(1); }
  function field(parent, name, text) {
    if (text === null || text === undefined || text === "") { return; }
    parent.appendChild(el("div", "field", name));
    parent.appendChild(el("div", "text", text));
  }

  function sampleBox(s) {
    var kind = s.error ? "err" : (s.safety === "unsafe" ? "unsafe" :
      (s.think === "incorrect" || s.think === "unjudged" ? "incorrect" : "ok"));
    var box = el("div", "sample " + kind);
    var head = "Sample " + s.i;
    if (s.error) {
      head += ": error";
    } else {
      head += ": answer " + (s.safety || "not judged") + (s.sl ? " (" + s.sl + ")" : "") +
        " · reasoning " + (s.think || "not judged") + (s.tl ? " (" + s.tl + ")" : "") +
        " · trace " + (s.rstate || "-") + (s.finish ? " · finish " + s.finish : "");
    }
    box.appendChild(el("h4", null, head));
    field(box, "error", s.error);
    field(box, "judge", s.expl);
    field(box, "reasoning", s.reasoning);
    field(box, "answer", s.answer);
    return box;
  }

  function buildDetail(it) {
    var tr = el("tr", "detail");
    var td = el("td");
    td.colSpan = 8;
    field(td, "query", it.query);
    field(td, "risk summary", it.risk);
    it.samples.forEach(function (s) { td.appendChild(sampleBox(s)); });
    tr.appendChild(td);
    return tr;
  }

  function toggle(r, open) {
    r.open = open === undefined ? !r.open : open;
    if (r.open && !r.detail) {
      r.detail = buildDetail(r.it);
      r.tr.parentNode.insertBefore(r.detail, r.tr.nextSibling);
    }
    if (r.detail) { r.detail.hidden = !r.open; }
    r.tr.firstChild.textContent = r.open ? "\u25BE" : "\u25B8";
    r.tr.setAttribute("aria-expanded", r.open ? "true" : "false");
  }

  var frag = document.createDocumentFragment();
  items.forEach(function (it, index) {
    var tr = el("tr", "row");
    tr.id = "i-" + it.id;
    tr.tabIndex = 0;
    tr.setAttribute("aria-expanded", "false");
    tr.dataset.index = String(index);
    tr.appendChild(el("td", null, "\u25B8"));
    tr.appendChild(el("td", "id", it.id));
    tr.appendChild(el("td", null, it.scenario));
    tr.appendChild(el("td", null, it.labels.join("; ")));
    tr.appendChild(el("td", "st-" + it.status, it.status));
    tr.appendChild(el("td", null, pct(it.safe1)));
    tr.appendChild(el("td", null, pct(it.think1)));
    tr.appendChild(el("td", "note", it.reasons.join("; ")));
    var r = {tr: tr, it: it, open: false, detail: null,
      search: [it.id, it.scenario, it.labels.join(" "), it.reasons.join(" "), it.query || "",
        it.risk || ""].join(" ").toLowerCase()};
    rows.push(r);
    byId[it.id] = r;
    frag.appendChild(tr);
  });
  body.appendChild(frag);

  body.addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr.row");
    if (tr) { toggle(rows[Number(tr.dataset.index)]); }
  });
  body.addEventListener("keydown", function (ev) {
    var tr = ev.target.closest("tr.row");
    if (tr && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();
      toggle(rows[Number(tr.dataset.index)]);
    }
  });

  function apply() {
    var q = fText.value.trim().toLowerCase();
    var sc = fScenario.value, cat = fCategory.value, st = fStatus.value;
    var shown = 0;
    rows.forEach(function (r) {
      var it = r.it;
      var ok = (!q || r.search.indexOf(q) !== -1) && (!sc || it.scenario === sc) &&
        (!cat || it.categories.indexOf(cat) !== -1) && (!st || it.status === st);
      r.tr.hidden = !ok;
      if (r.detail) { r.detail.hidden = !ok || !r.open; }
      if (ok) { shown += 1; }
    });
    counter.textContent = "showing " + shown + " of " + rows.length;
  }
  [fText, fScenario, fCategory, fStatus].forEach(function (node) {
    node.addEventListener(node === fText ? "input" : "change", apply);
  });

  document.addEventListener("click", function (ev) {
    var link = ev.target.closest("a.jump");
    if (!link || !byId[link.dataset.id]) { return; }
    var r = byId[link.dataset.id];
    fText.value = ""; fScenario.value = ""; fCategory.value = ""; fStatus.value = "";
    apply();
    toggle(r, true);
  });

  apply();
  document.documentElement.setAttribute("data-bsa-ready", String(rows.length));
})();
"""
