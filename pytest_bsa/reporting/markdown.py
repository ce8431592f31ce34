"""The Markdown summary of a saved run, for ``$GITHUB_STEP_SUMMARY`` and PR comments (pure).

Verdict first, then failing gates, tables, a mermaid chart, flips, power advice, cost and
provenance. Model output (queries, answers, reasoning, judge explanations) is left out unless
``full=True``; every interpolated string is escaped; the text always fits in ``limit`` chars.
The helpers without a leading underscore are shared with :mod:`pytest_bsa.reporting.html`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_bsa.config import CEILING_METRICS
from pytest_bsa.models import InstanceResult, SafetyVerdict, ThinkVerdict
from pytest_bsa.reasoning import stray_close_note
from pytest_bsa.report import Report
from pytest_bsa.reporting.judge_sections import markdown_sections

RATE_COLUMNS: tuple[str, ...] = ("safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score")
SAFE_COLOR = "#2f6db5"  # chart colours, shared with the HTML report
THINK_COLOR = "#e0861a"
OMITTED = "see the JSON report"
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")  # a zero-width space keeps @name from pinging
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~"})
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


# ---------------------------------------------------------------- shared helpers (also HTML)


def metric_title(metric: str, k: int) -> str:
    """``safe_at_k`` -> ``Safe@5``; other names as they are."""
    titles = {
        "safe_at_1": "Safe@1",
        "safe_at_k": f"Safe@{k}",
        "think_at_1": "Think@1",
        "think_at_k": f"Think@{k}",
        "f_score": "F",
        "unjudged_rate": "unjudged rate",
        "error_rate": "error rate",
    }
    return titles.get(metric, metric)


def pct(value: float | None, digits: int = 1) -> str:
    """A rate in percent without the sign; ``-`` when not measurable."""
    return "-" if value is None else f"{100 * value:.{digits}f}"


def points(delta: float | None) -> str:
    """A change of a rate in signed percentage points (``-13.1``, ``+2.0``)."""
    return "-" if delta is None else f"{100 * delta:+.1f}"


def count(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def dollars(value: float | None) -> str:
    return "unknown (no price)" if value is None else f"${value:,.4f}"


_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def excerpt(text: str | None, width: int) -> str:
    """Whitespace-flattened text of at most ``width`` characters (``…`` marks a cut), without
    control characters (model output may carry NUL or ESC)."""
    flat = " ".join((text or "").translate(_CONTROL).split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def rubric_text(report: Report, esc: Callable[[object], str]) -> str:
    """The rubric, where it came from, its hashes and the verdict hash, escaped by ``esc``."""
    p = report.provenance
    text = f"{esc(p.rubric_version)}, rubric sha256 {esc(p.judge_prompt_hash)}"
    if p.rubric is not None:
        text += (
            f" ({esc(p.rubric.source)}; structured output {'on' if p.rubric.structured else 'off'})"
        )
    if p.verdict_hash:
        text += f"; verdict hash {esc(p.verdict_hash)}"
    return text


def judge_text(report: Report, esc: Callable[[object], str]) -> str:
    """The judge's parameters and the model names it was served as."""
    p = report.provenance
    params = ", ".join(f"{k}={v}" for k, v in p.judge_params.items()) or "provider defaults"
    served = ", ".join(p.judge.served) or "not reported"
    model_served = ", ".join(p.model.served) or "not reported"
    return (
        f"parameters {esc(params)}; judge served as {esc(served)}; model under test served as "
        f"{esc(model_served)}"
    )


def outcomes_text(report: Report) -> str:
    """Every sample outcome, counted, and the responses by where their reasoning was found."""
    o = report.outcomes

    def listed(counts: Mapping[str, int]) -> str:
        return ", ".join(f"{name.replace('_', ' ')} {n:,}" for name, n in counts.items()) or "-"

    stray = o.split.get("stray_close", 0)
    return (
        f"{o.samples:,} samples; answers: {listed(o.safety)}; reasoning: {listed(o.think)}; "
        f"reasoning found in: {listed(o.split)}; finish reasons: {listed(o.finish_reasons)}"
        + (f" ({stray_close_note(stray)})" if stray else "")
    )


def answers_text(answers: Any) -> str:
    """Where the model answers came from and what the endpoint said it served."""
    how = {"resume": "sampled in this run", "fresh": "sampled afresh", "reuse": "reused"}
    head = how[answers.mode] + (" (resumed an interrupted run)" if answers.resumed else "")
    served = ", ".join(
        f"{s.model or '?'} / {s.system_fingerprint or 'no fingerprint'} x{s.answers}"
        for s in answers.served
    )
    parts = [head, f"{answers.from_cache} from the cache", f"served: {served or '-'}"]
    if answers.note:
        parts.append(answers.note)
    return "; ".join(parts)


def is_failed(report: Report) -> bool:
    return report.exit_code != 0 or bool(failed_gates(report))


def failed_gates(report: Report) -> list[dict[str, Any]]:
    """Gates that failed the run (a measure-only run's advisory misses are not among them)."""
    return [g for g in report.gates if g.get("status") == "failed" and not g.get("advisory")]


def advisory_misses(report: Report) -> list[dict[str, Any]]:
    """Thresholds and baseline comparisons a measure-only run missed (not enforced)."""
    return [g for g in report.gates if g.get("status") == "failed" and g.get("advisory")]


def group_key(level: str, group: str) -> str:
    return "overall" if level == "overall" else f"{level}:{group}"


def baseline_deltas(report: Report) -> dict[tuple[str, str], float]:
    """``(group key, metric) -> current - baseline`` from the baseline gates that measured it."""
    deltas = {}
    for g in report.gates:
        if g.get("kind") == "baseline" and g.get("actual") is not None:
            deltas[group_key(g["level"], g["group"]), g["metric"]] = float(g["actual"])
    return deltas


def gate_marks(report: Report) -> dict[str, str]:
    """The tables' gate column per group key: ``FAIL`` beats ``adv`` (an advisory miss of a
    measure-only run) beats ``n/m`` beats ``pass``."""
    rank = {"pass": 0, "n/m": 1, "adv": 2, "FAIL": 3}
    marks: dict[str, str] = {}
    for g in report.gates:
        if g.get("kind") not in ("threshold", "baseline"):
            continue
        key = group_key(g["level"], g["group"])
        mark = {"passed": "pass", "failed": "FAIL"}.get(g.get("status", ""), "n/m")
        if mark == "FAIL" and g.get("advisory"):
            mark = "adv"
        if rank[mark] >= rank[marks.get(key, "pass")]:
            marks[key] = mark
    return marks


@dataclass(frozen=True)
class GroupRow:
    """One line of a metrics table."""

    key: str  # "overall", "scenario:<name>", ...
    label: str
    n: int
    rates: Mapping[str, float | None]
    intervals: Mapping[str, Sequence[float]]
    unjudged: int
    gate: str  # "pass", "FAIL", "n/m" or ""
    deltas: Mapping[str, float]  # metric -> current - baseline
    refused: int = 0
    no_answer: int = 0
    no_reasoning: int = 0
    worst: Mapping[str, float | None] = field(default_factory=dict)  # unjudged as failures

    def worst_differs(self, metric: str) -> bool:
        """The worst case of ``metric`` is worth showing beside its rate."""
        worst = self.worst.get(metric)
        return (
            worst is not None
            and (self.unjudged or self.refused) > 0
            and (
                self.rates.get(metric) is None or abs(worst - (self.rates.get(metric) or 0)) > 5e-4
            )
        )


COUNT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("unjudged", "unjudged"),
    ("refused", "refused"),
    ("no_answer", "no answer"),
    ("no_reasoning", "no reasoning"),
)
WORST_NOTE = (
    "(worst x): the rate if every unjudged or refused verdict were a failure; the unjudged, "
    "refused, no answer and no reasoning columns count samples."
)


def group_rows(report: Report, level: str) -> list[GroupRow]:
    """The rows of one level (``overall``, ``scenario``, ``category``, ``subcategory``)."""
    marks = gate_marks(report)
    deltas = baseline_deltas(report)
    rows = []
    for key, metrics in report.groups.items():
        if level == "overall":
            if key != "overall":
                continue
            label = "all instances"
        else:
            prefix, _, label = key.partition(":")
            if prefix != level:
                continue
        rows.append(
            GroupRow(
                key=key,
                label=label,
                n=int(metrics.get("n_instances", 0)),
                rates={m: metrics.get(m) for m in RATE_COLUMNS},
                intervals=metrics.get("intervals") or {},
                unjudged=int(metrics.get("unjudged_samples", 0)),
                gate=marks.get(key, ""),
                deltas={m: d for (k, m), d in deltas.items() if k == key},
                refused=int(metrics.get("refused_samples", 0)),
                no_answer=int(metrics.get("no_answer_samples", 0)),
                no_reasoning=int(metrics.get("no_reasoning_samples", 0)),
                worst=metrics.get("worst") or {},
            )
        )
    return rows


@dataclass(frozen=True)
class GateNumbers:
    actual: str
    required: str
    interval: str


def gate_numbers(gate: Mapping[str, Any]) -> GateNumbers:
    """A gate's actual value, requirement and interval in words a reader compares at a glance."""
    kind = gate.get("kind", "threshold")
    actual = gate.get("actual")
    required = float(gate.get("required", 0.0))
    interval = gate.get("interval")
    if kind == "baseline":
        ci = f"{points(interval[0])} to {points(interval[1])} pts" if interval else "-"
        shown = f"{points(actual)} pts" if actual is not None else "-"
        if gate.get("status") == "not_measurable":
            shown = "not measurable" + (f" ({shown})" if actual is not None else "")
        return GateNumbers(shown, f"no significant drop > {pct(required)} pts", ci)
    if kind == "errors":
        shown = "-" if actual is None else f"{count(actual)} errored"
        return GateNumbers(shown, f"≤ {count(required)}", "-")
    if kind == "instances":
        shown = "-" if actual is None else f"{pct(actual)}% met"
        return GateNumbers(shown, "every instance met", "-")
    relation = "≤" if gate.get("metric") in CEILING_METRICS else "≥"
    shown = "not measurable" if actual is None else f"{pct(actual)}%"
    ci = f"{pct(interval[0])}–{pct(interval[1])}%" if interval else "-"
    return GateNumbers(shown, f"{relation} {pct(required)}%", ci)


@dataclass(frozen=True)
class PowerRow:
    category: str
    n: int
    drop: float | None  # smallest detectable Think@1 drop (a rate, 0.1 = 10 points)
    limit: float = 0.20  # the policy's baseline.power_drop: a larger drop cannot block

    @property
    def too_small(self) -> bool:
        return self.drop is None or self.drop > self.limit + 1e-9


def power_rows(report: Report) -> list[PowerRow]:
    limit = report.policy.baseline.power_drop
    return [
        PowerRow(
            name, int(report.groups.get(f"category:{name}", {}).get("n_instances", 0)), drop, limit
        )
        for name, drop in report.power.items()
    ]


def power_basis(report: Report) -> str:
    """How the detectable drops were computed, in one clause."""
    cfg = report.policy.baseline
    return (
        f"{pct(cfg.power, 0)}% power at a category test's share of α = {cfg.alpha:g} in the "
        f"family-wise baseline gate, beyond the allowed max_drop of {pct(cfg.max_drop, 0)} points"
    )


def status_by_id(report: Report) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``id -> (status, reasons)``; instances without a saved status show ``-``."""
    return {s.id: (s.status, s.reasons) for s in report.statuses}


def flip_metric(flip: Mapping[str, Any], k: int) -> str:
    """A flip's metric, e.g. ``Think@5``, with the category whose own credit it is."""
    name = f"{'Safe' if flip['dimension'] == 'safe' else 'Think'}@{k}"
    return f"{name} ({flip['category']})" if flip.get("category") else name


def flip_value(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


# ---------------------------------------------------------------- Markdown escaping


def md(text: object) -> str:
    """Inline Markdown text: one line, Markdown and HTML neutralised, no @-mentions."""
    flat = " ".join(str(text).translate(_CONTROL).split())
    return _MENTION.sub("@\u200b", html.escape(flat.translate(_MD_SPECIAL), quote=False))


def _mermaid_label(text: str, width: int = 18) -> str:
    kept = "".join(c for c in text if c.isalnum() or c in " &/.,+-")
    return excerpt(kept, width) or "?"


def _table(
    headers: Sequence[str], align: Sequence[str], rows: Iterable[Sequence[str]]
) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out.extend("| " + " | ".join(cells) + " |" for cells in rows)
    return out


def _omitted(hidden: int, what: str = "rows", *, more: bool = True) -> str:
    noun = what[:-1] if hidden == 1 else what
    return f"_… {count(hidden)} {'more ' if more else ''}{noun} omitted; {OMITTED}._"


def _capped_table(
    headers: Sequence[str], align: Sequence[str], shown: Sequence[Sequence[str]], total: int
) -> list[str]:
    """A table of the rows shown, and a visible note for the ``total - len(shown)`` left out."""
    out = _table(headers, align, shown) if shown else []
    if total > len(shown):
        out += [""] if out else []
        out.append(_omitted(total - len(shown), more=bool(shown)))
    return out


# ---------------------------------------------------------------- sections


@dataclass(frozen=True)
class _Caps:
    """How many rows each list may show; halved until the text fits the limit."""

    gates: int = 40
    categories: int = 60
    subcategories: int = 60
    flips: int = 15
    missed: int = 30
    excerpts: int = 10
    excerpt_chars: int = 280
    power: int = 60
    provenance: int = 1  # 0 leaves the section out
    cost: int = 1

    def shrunk(self) -> _Caps | None:
        """Halve the first list that still shows rows, least important first."""
        for name in _SHRINK_ORDER:
            value = getattr(self, name)
            if value:
                return replace(self, **{name: value // 2})
        return None


_SHRINK_ORDER = (
    "excerpts",
    "subcategories",
    "missed",
    "flips",
    "provenance",
    "power",
    "cost",
    "gates",
    "categories",
)


def _verdict(report: Report) -> str:
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


def _gates_section(report: Report, caps: _Caps) -> list[str]:
    failed = failed_gates(report)
    out: list[str] = []
    advisory = advisory_misses(report)
    if advisory:
        out += ["", f"#### REPORT ONLY: advisory misses ({len(advisory)}, not enforced)", ""]
        out += _capped_table(
            ["gate", "actual", "required", "95% CI", "why"],
            ["---", "--:", "--:", "--:", "---"],
            _gate_rows(advisory[: caps.gates]),
            len(advisory),
        )
    if failed:
        out += ["", f"#### Failing gates ({len(failed)})", ""]
        out += _capped_table(
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
        out += ["", _omitted(len(gates) - cap, "gates")]
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
    return _capped_table(headers, ["---", *["--:"] * (len(headers) - 2), ":-:"], body, len(rows))


def _tables_section(report: Report, caps: _Caps) -> list[str]:
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


def _chart_section(report: Report, caps: _Caps) -> list[str]:
    rows = [r for r in group_rows(report, "category") if r.rates.get("safe_at_1") is not None]
    rows = rows[: min(caps.categories, 20)]
    if not rows:
        return []
    safe = [f"{100 * (r.rates['safe_at_1'] or 0):.1f}" for r in rows]
    think_values = [r.rates.get("think_at_1") for r in rows]
    labels = ", ".join(f'"{_mermaid_label(_SHORT_CATEGORY.get(r.label, r.label))}"' for r in rows)
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


def _flips_section(report: Report, caps: _Caps, by_id: Mapping[str, InstanceResult]) -> list[str]:
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
        dimension = md(flip_metric(f, report.k))
        change = f"{flip_value(f['before'])} → {flip_value(f['after'])}"
        rows.append([md(f["id"]), md(scenario), dimension, change])
    headers = ["instance", "scenario", "metric", "before → after"]
    return [*out, "", *_capped_table(headers, ["---"] * 4, rows, len(flips))]


def _sample_excerpt(result: InstanceResult, width: int) -> list[str]:
    lines = []
    for s in result.samples:
        bad = s.error or (
            s.judgement is not None
            and (
                s.judgement.safety is not SafetyVerdict.SAFE
                or s.judgement.think in (ThinkVerdict.INCORRECT, ThinkVerdict.UNJUDGED)
            )
        )
        if not bad:
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


def _missed_section(
    report: Report, caps: _Caps, by_id: Mapping[str, InstanceResult], full: bool
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
    out += _capped_table(
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
        out += [_omitted(len(shown) - caps.excerpts, "instances"), ""]
    return [*out, "</details>"]


def _power_section(report: Report, caps: _Caps) -> list[str]:
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
        out += [*([""] if shown else []), _omitted(len(rows) - len(shown), more=bool(shown))]
    return out


def _cost_section(report: Report) -> list[str]:
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
    out += _table([*headers, "reasoning tok", "cost"], ["---", *["--:"] * 8], rows)
    return [*out, "", f"Wall time {seconds(t.wall_seconds)}; total cost {md(dollars(total))}."]


def _provenance_section(report: Report) -> list[str]:
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
    out += _table(headers, ["---", *["--:"] * (len(headers) - 1)], rows)
    return [*out, "", note]


def _render(report: Report, full: bool, caps: _Caps, baseline: Report | None = None) -> str:
    by_id = {r.instance.id: r for r in report.instances}
    parts: list[Callable[[], list[str]]] = [
        lambda: [_verdict(report)],
        lambda: comparison_section(report, baseline),
        lambda: _gates_section(report, caps),
        lambda: _tables_section(report, caps),
        lambda: _chart_section(report, caps),
        lambda: _flips_section(report, caps, by_id),
        lambda: _missed_section(report, caps, by_id, full),
        lambda: _power_section(report, caps),
        lambda: markdown_sections(report, caps.categories),
        lambda: _cost_section(report) if caps.cost else [],
        lambda: _provenance_section(report) if caps.provenance else [],
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
    caps = _Caps()
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
