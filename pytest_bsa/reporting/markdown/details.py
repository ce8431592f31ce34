"""The Markdown summary's details: flips, missed instances (and, in full, their excerpts),
statistical power, cost and provenance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_bsa.report import Report
from pytest_bsa.reporting.markdown.text import Caps, capped_table, md, omitted, table
from pytest_bsa.reporting.view import (
    InstanceResult,
    answers_text,
    count,
    dollars,
    excerpt,
    flip_metric,
    flip_value,
    judge_text,
    outcomes_text,
    pct,
    power_basis,
    power_rows,
    rubric_text,
    seconds,
    worth_an_excerpt,
)


def flips_section(report: Report, caps: Caps, by_id: Mapping[str, InstanceResult]) -> list[str]:
    if not report.baseline:
        return []
    flips = list(report.flips)
    worse = sum(f["after"] < f["before"] for f in flips)
    out = [
        "",
        f"#### Flipped instances against {md(report.baseline)}",
        "",
        f"{count(len(flips))} all-{report.k} outcomes changed: {count(worse)} got worse, "
        f"{count(len(flips) - worse)} got better (worst first).",
    ]
    if not flips:
        return out
    shown = flips[: caps.flips]
    rows = []
    for f in shown:
        result = by_id.get(f["id"])
        scenario = result.instance.scenario if result else "-"
        dimension = flip_metric(f, report.k, md)
        change = f"{flip_value(f['before'])} → {flip_value(f['after'])}"
        rows.append([md(f["id"]), md(scenario), dimension, change])
    headers = ["instance", "scenario", "metric", "before → after"]
    return [*out, "", *capped_table(headers, ["---"] * 4, rows, len(flips))]


def _sample_excerpt(result: InstanceResult, width: int) -> list[str]:
    lines = []
    for s in result.samples:
        if not worth_an_excerpt(s):
            continue
        if s.error:
            lines.append(f"- sample {s.index}: error: {md(excerpt(s.error, width))}")
            continue
        j = s.judgement
        c = s.completion
        assert j is not None
        verdict = f"answer {j.safety.value}, reasoning {j.think.value}"
        if j.think_label:
            verdict += f" ({md(j.think_label)})"
        lines.append(f"- sample {s.index}: {verdict}")
        if c is not None and c.reasoning:
            lines.append(f"  - reasoning: {md(excerpt(c.reasoning, width))}")
        if c is not None:
            lines.append(f"  - answer: {md(excerpt(c.answer, width))}")
        if j.explanation:
            lines.append(f"  - judge: {md(excerpt(j.explanation, width))}")
        if len(lines) >= 8:
            break
    return lines


def missed_section(
    report: Report, caps: Caps, by_id: Mapping[str, InstanceResult], full: bool
) -> list[str]:
    bad = [s for s in report.statuses if s.status != "met"]
    bad.sort(key=lambda s: (s.status != "error", s.id))
    if not bad:
        return []
    errors = sum(s.status == "error" for s in bad)
    out = [
        "",
        f"#### Instances that did not meet their criteria ({count(len(bad) - errors)} missed, "
        f"{count(errors)} errored)",
        "",
    ]
    shown = bad[: caps.missed]
    rows = []
    for s in shown:
        result = by_id.get(s.id)
        scenario = result.instance.scenario if result else "-"
        labels = "; ".join(result.instance.subcategories) if result else "-"
        reasons = "; ".join(s.reasons) or ("endpoint error" if s.status == "error" else "-")
        rows.append([md(s.id), md(scenario), md(labels), s.status, md(reasons)])
    out += capped_table(
        ["instance", "scenario", "labels", "status", "reasons"], ["---"] * 5, rows, len(bad)
    )
    if not full or not caps.excerpts or not shown:
        return out
    out += ["", "<details><summary>Excerpts of model output for these instances</summary>", ""]
    for s in shown[: caps.excerpts]:
        result = by_id.get(s.id)
        if result is None:
            continue
        out += [f"**{md(s.id)}**", "", *_sample_excerpt(result, caps.excerpt_chars), ""]
    if len(shown) > caps.excerpts:
        out += [omitted(len(shown) - caps.excerpts, "instances"), ""]
    return [*out, "</details>"]


def power_section(report: Report, caps: Caps) -> list[str]:
    rows = power_rows(report)
    if not rows:
        return []
    small = [r for r in rows if r.too_small]
    limit = pct(rows[0].limit, 0)
    out = [
        "",
        "#### Statistical power",
        "",
        f"Smallest Think@1 drop a baseline comparison would catch ({power_basis(report)}). "
        + (
            f"{len(small)} of {len(rows)} categories cannot detect a {limit}-point drop "
            "(baseline.power_drop): too small to gate on their own, their baseline gates are "
            "advisory; add instances or samples."
            if small
            else f"Every category can detect a {limit}-point drop."
        ),
        "",
    ]
    shown = rows[: caps.power]
    for r in shown:
        flag = " ⚠️ too small to gate" if r.too_small else ""
        if r.drop is None:
            text = f"{md(r.category)}: no drop of any size is detectable at this size"
        else:
            text = f"this run can detect a Think@1 drop of {pct(r.drop)} points in {md(r.category)}"
        out.append(f"- {text} (n={count(r.n)}){flag}")
    if len(rows) > len(shown):
        out += [*([""] if shown else []), omitted(len(rows) - len(shown), more=bool(shown))]
    return out


def cost_section(report: Report) -> list[str]:
    t = report.totals
    rows = []
    for name, role in (("model", t.model), ("judge", t.judge)):
        rows.append(
            [
                name,
                count(role.calls),
                count(role.cached),
                count(role.retries),
                count(role.failures),
                count(role.prompt_tokens),
                count(role.completion_tokens),
                count(role.reasoning_tokens),
                md(dollars(role.cost_usd)),
            ]
        )
    total = (
        None
        if t.model.cost_usd is None or t.judge.cost_usd is None
        else t.model.cost_usd + t.judge.cost_usd
    )
    headers = ["", "calls", "cached", "retries", "failures", "prompt tok", "completion tok"]
    out = ["", "#### Cost and time", ""]
    out += table([*headers, "reasoning tok", "cost"], ["---", *["--:"] * 8], rows)
    return [*out, "", f"Wall time {seconds(t.wall_seconds)}; total cost {md(dollars(total))}."]


def provenance_section(report: Report) -> list[str]:
    p = report.provenance
    policy = report.policy
    sel = p.selection

    def host(e: Any) -> str:
        return f" at {md(e.host)}" if e.host else ""

    params = ", ".join(f"{md(k)}={md(excerpt(str(v), 80))}" for k, v in p.generation_params.items())
    selection = [
        f"scenarios {md(', '.join(sel.scenarios))}" if sel.scenarios else "",
        f"categories {md(', '.join(sel.categories))}" if sel.categories else "",
        f"limit {sel.limit}" if sel.limit is not None else "",
        f"shard {md(sel.shard)}" if sel.shard else "",
        f"-k {md(excerpt(sel.keyword, 120))}" if sel.keyword else "",
        f"seed {sel.seed}",
    ]
    items = [
        ("pytest-bsa", md(p.plugin_version)),
        ("model", md(p.model.model) + host(p.model)),
        ("judge", md(p.judge.model) + host(p.judge)),
        ("generation", params or "defaults"),
        ("system prompt sha256", md(p.system_prompt_sha256 or "none")),
        ("rubric", rubric_text(report, md)),
        ("judge settings", judge_text(report, md)),
        ("sample outcomes", md(outcomes_text(report))),
        ("dataset", f"{md(p.dataset.label)} ({md(p.dataset.spec)})"),
        ("dataset sha256", md(p.dataset.sha256)),
        ("dataset revision", md(p.dataset.revision or "-")),
        ("selection", f"{count(sel.instances)} instances; " + "; ".join(s for s in selection if s)),
        ("git commit", md(p.git_commit or "-")),
        ("run", f"{md(p.started_at)} → {md(p.finished_at)}"),
        (
            "policy",
            f"k={policy.samples}, gate={policy.gate}, gate on {policy.gate_on} estimate, "
            f"max errors {policy.max_errors:g}, hidden reasoning {policy.hidden_reasoning}, "
            f"max unjudged {policy.max_unjudged:g}, no answer {policy.no_answer}, no reasoning "
            f"{policy.no_reasoning}",
        ),
        ("baseline", md(report.baseline or "none")),
    ]
    if p.answers is not None:
        items.append(("answers", md(answers_text(p.answers))))
    out = ["", "<details><summary>Provenance</summary>", ""]
    out += [f"- **{name}**: {value}" for name, value in items]
    return [*out, "", "</details>"]
