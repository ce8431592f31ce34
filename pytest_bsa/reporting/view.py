"""The view model every report shares: rows, gate summaries, flips, power and formatting.

Markdown, HTML, terminal and JUnit renderers build what they show from a saved
:class:`~pytest_bsa.report.Report` through this module (pure, no pytest): the numbers, labels,
gate marks and sentences are decided once here, and each renderer only lays them out and
escapes them for its format.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_bsa.config import CEILING_METRICS
from pytest_bsa.evaluation import outcomes_of, verdict_of
from pytest_bsa.metrics import INTERVAL_METRICS, instance_values
from pytest_bsa.models import SCENARIOS, InstanceResult, SafetyVerdict, SampleResult, ThinkVerdict
from pytest_bsa.names import slug
from pytest_bsa.report import InstanceStatus, Report

__all__ = [  # what the renderers use besides the names defined here
    "InstanceResult",
    "SampleResult",
    "slug",
]

RATE_COLUMNS: tuple[str, ...] = INTERVAL_METRICS  # safe_at_1 ... f_score, in table order
REPORT_ONLY = "REPORT ONLY"  # the mark of a measure-only run (--bsa-gate=report)
SAFE_COLOR = "#2f6db5"  # chart colours of Safe@1 and Think@1 (Markdown and HTML)
THINK_COLOR = "#e0861a"


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


def one_line(text: object) -> str:
    """``text`` on one line: whitespace runs flattened, control characters dropped (model
    output may carry NUL or ESC)."""
    return " ".join(str(text).translate(_CONTROL).split())


def excerpt(text: str | None, width: int) -> str:
    """:func:`one_line` text of at most ``width`` characters (``…`` marks a cut)."""
    flat = one_line(text or "")
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

    return (
        f"{o.samples:,} samples; answers: {listed(o.safety)}; reasoning: {listed(o.think)}; "
        f"reasoning found in: {listed(o.split)}; finish reasons: {listed(o.finish_reasons)}"
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
    detectable: float | None = None  # smallest Think@1 drop a baseline comparison catches

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
                detectable=report.detectable.get(key),
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


def flip_value(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


# ---------------------------------------------------------------- instances


def instance_statuses(report: Report) -> dict[str, InstanceStatus]:
    """Every instance's status: the saved one, else decided here with the report's policy."""
    saved = {s.id: s for s in report.statuses}
    policy = report.policy
    for result in report.instances:
        iid = result.instance.id
        if iid in saved:
            continue
        if result.errors:
            saved[iid] = InstanceStatus(id=iid, status="error")
            continue
        verdict = verdict_of(result, policy)
        status = "met" if verdict.met else "missed" if verdict.judged else "unjudged"
        saved[iid] = InstanceStatus(id=iid, status=status, reasons=verdict.reasons)
    return saved


def instance_rates(report: Report, result: InstanceResult) -> dict[str, float | None]:
    """One instance's Safe@1, Safe@k, Think@1, Think@k under the report's policy."""
    return instance_values(outcomes_of(result, report.policy), report.k)


def scenarios_present(report: Report) -> list[str]:
    """The scenarios of the report's instances, in the benchmark's order."""
    return [s for s in SCENARIOS if any(r.instance.scenario == s for r in report.instances)]


def worth_an_excerpt(sample: SampleResult) -> bool:
    """A sample a reader of a miss wants to see: an error, an answer not judged safe, or
    reasoning judged incorrect or not judged."""
    j = sample.judgement
    return bool(sample.error) or (
        j is not None
        and (
            j.safety is not SafetyVerdict.SAFE
            or j.think in (ThinkVerdict.INCORRECT, ThinkVerdict.UNJUDGED)
        )
    )


_WIDTH = 100


def _sample_lines(sample: SampleResult) -> list[str]:
    head = f"  sample {sample.index}: "
    if sample.error:
        return [head + f"ERROR {sample.error}"]
    j = sample.judgement
    if j is None:
        return [head + "not judged"]
    think = j.think.value + (f" ({j.think_label})" if j.think_label else "")
    lines = [head + f"answer {j.safety.value} ({j.safety_label or '-'}), reasoning {think}"]
    if j.explanation:
        lines.extend(
            textwrap.wrap(
                j.explanation, _WIDTH, initial_indent="    judge: ", subsequent_indent="           "
            )
        )
    return lines


def describe_failure(result: InstanceResult, summary: str) -> str:
    """What a person needs to see for a missed or errored instance: no traceback."""
    i = result.instance
    flat = " ".join(i.risk_summary.split())
    risk = flat if len(flat) <= 160 else flat[:159] + "…"
    lines = [
        f"BSA instance {i.id} ({i.scenario}; {', '.join(i.subcategories)})",
        f"  {summary}",
        f"  risk: {risk}",
    ]
    for sample in result.samples:
        lines.extend(_sample_lines(sample))
    return "\n".join(lines)
