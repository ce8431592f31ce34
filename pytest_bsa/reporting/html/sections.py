"""The HTML report's sections as the page template reads them: strings decided here, markup in
``templates/report.html.j2``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pytest_bsa.report import Report
from pytest_bsa.reporting.html.chart import bar_chart
from pytest_bsa.reporting.html.templating import safe
from pytest_bsa.reporting.view import (
    COUNT_COLUMNS,
    RATE_COLUMNS,
    GroupRow,
    answers_text,
    count,
    dollars,
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
    scenarios_present,
    seconds,
)

SHOWN_FLIPS = 20
_MARK_CLASS = {"FAIL": "bad", "pass": "good", "n/m": "warn", "adv": "warn"}


def header(report: Report) -> dict[str, Any]:
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
    return {
        "state": "failed" if failed else "passed",
        "icon": "✗" if failed else "✓",
        "verdict": verdict,
        "detail": detail,
        "started": p.started_at,
        "facts": facts,
    }


def gate_rows(gates: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for g in gates:
        n = gate_numbers(g)
        status = g.get("status", "")
        if status == "failed" and g.get("advisory"):
            status = "advisory miss"
        rows.append(
            {
                "name": g.get("name", ""),
                "status": status,
                "cls": {"failed": "bad", "passed": "good"}.get(status, "warn"),
                "actual": n.actual,
                "required": n.required,
                "interval": n.interval,
                "sentence": g.get("sentence", ""),
            }
        )
    return rows


def _metric_row(row: GroupRow) -> dict[str, Any]:
    cells = []
    for metric in RATE_COLUMNS:
        ci = row.intervals.get(metric)
        delta = row.deltas.get(metric)
        cells.append(
            {
                "value": pct(row.rates.get(metric)),
                "ci": f"{pct(ci[0])}–{pct(ci[1])}" if ci else None,
                "worst": pct(row.worst.get(metric)) if row.worst_differs(metric) else None,
                "delta": None if delta is None else points(delta),
                "delta_cls": ""
                if delta is None
                else "down"
                if delta < -0.0005
                else "up"
                if delta > 0.0005
                else "",
            }
        )
    return {
        "label": row.label,
        "n": count(row.n),
        "cells": cells,
        "counts": [count(getattr(row, attr)) for attr, _ in COUNT_COLUMNS],
        "gate": row.gate,
        "gate_cls": _MARK_CLASS.get(row.gate, ""),
    }


def groups(report: Report) -> dict[str, Any] | None:
    if not report.groups:
        return None

    def rows(*levels: str) -> list[dict[str, Any]]:
        return [_metric_row(r) for level in levels for r in group_rows(report, level)]

    return {
        "headers": [
            "n",
            *(metric_title(m, report.k) for m in RATE_COLUMNS),
            *(name for _, name in COUNT_COLUMNS),
            "gate",
        ],
        "scenarios": rows("overall", "scenario"),
        "categories": rows("category"),
        "subcategories": rows("subcategory"),
    }


def charts(report: Report) -> list[Any]:
    categories = group_rows(report, "category")
    scenarios = group_rows(report, "overall") + group_rows(report, "scenario")
    if not categories and not scenarios:
        return []
    return [
        safe(bar_chart("Per category", categories)),
        safe(bar_chart("Per scenario", scenarios)),
    ]


def power(report: Report) -> dict[str, Any] | None:
    rows = power_rows(report)
    if not rows:
        return None
    return {
        "basis": power_basis(report),
        "limit": pct(rows[0].limit, 0),
        "rows": [
            {
                "category": r.category,
                "n": count(r.n),
                "drop": "-" if r.drop is None else f"{pct(r.drop)} points",
                "too_small": r.too_small,
            }
            for r in rows
        ],
    }


def flips(report: Report) -> dict[str, Any] | None:
    if not report.baseline:
        return None
    by_id = {r.instance.id: r for r in report.instances}
    rows = []
    for f in report.flips:
        result = by_id.get(f["id"])
        rows.append(
            {
                "id": f["id"],
                "scenario": result.instance.scenario if result else "-",
                "metric": flip_metric(f, report.k),
                "cls": "down" if f["after"] < f["before"] else "up",
                "change": f"{flip_value(f['before'])} → {flip_value(f['after'])}",
            }
        )
    worse = sum(f["after"] < f["before"] for f in report.flips)
    return {"rows": rows, "worse": worse, "shown": SHOWN_FLIPS}


def cost(report: Report) -> dict[str, Any]:
    t = report.totals
    rows = [
        [
            name,
            *(
                count(getattr(r, field))
                for field in (
                    "calls",
                    "cached",
                    "retries",
                    "failures",
                    "prompt_tokens",
                    "completion_tokens",
                    "reasoning_tokens",
                )
            ),
            dollars(r.cost_usd),
        ]
        for name, r in (("model", t.model), ("judge", t.judge))
    ]
    return {"rows": rows, "wall": seconds(t.wall_seconds)}


def provenance(report: Report) -> list[tuple[str, str]]:
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
    return items


def instances(report: Report) -> dict[str, Any]:
    return {
        "count": count(len(report.instances)),
        "scenarios": scenarios_present(report),
        "categories": [r.label for r in group_rows(report, "category")],
        "statuses": [
            s
            for s in ("missed", "unjudged", "error", "met")
            if any(x.status == s for x in report.statuses)
        ],
    }
