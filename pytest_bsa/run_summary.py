"""The results of a run as they arrive, and their text renderings (no pytest import)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pytest_bsa.config import Settings
from pytest_bsa.dataset import DatasetSource
from pytest_bsa.evaluation import BaselineRun, RunEvaluation, evaluate_run, outcomes_of
from pytest_bsa.gate import GateResult
from pytest_bsa.metrics import GroupMetrics, instance_values
from pytest_bsa.models import InstanceResult
from pytest_bsa.reasoning import stray_close_note
from pytest_bsa.report import AnswersInfo, totals_from_results
from pytest_bsa.reporting.text import TableRow, render_table


@dataclass
class RunSummary:
    """Collects instance results (in any order, from any worker) and evaluates them once."""

    settings: Settings
    source: DatasetSource
    results: dict[str, InstanceResult] = field(default_factory=dict)
    engine_stats: Any = None
    evaluation: RunEvaluation | None = None

    def add(self, result: InstanceResult) -> None:
        self.results[result.instance.id] = result
        self.evaluation = None

    def evaluate(
        self,
        baseline: BaselineRun | None = None,
        *,
        missing: int = 0,
        stopped: str | None = None,
    ) -> RunEvaluation:
        ordered = [self.results[key] for key in sorted(self.results)]
        self.evaluation = evaluate_run(
            ordered, self.settings.policy, baseline=baseline, missing=missing, stopped=stopped
        )
        return self.evaluation

    def junit_properties(self, result: InstanceResult) -> list[tuple[str, str]]:
        """Compact per-instance facts for pytest's --junitxml (no model text)."""
        verdicts = [
            f"{s.safety.value if s.safety else 'error'}/{s.think.value if s.think else 'error'}"
            for s in result.samples
        ]
        props = [
            ("bsa_scenario", result.instance.scenario),
            ("bsa_categories", "; ".join(result.instance.subcategories)),
            ("bsa_verdicts", " ".join(verdicts)),
        ]
        outcomes = outcomes_of(result, self.settings.policy)
        values = instance_values(outcomes, self.settings.samples)
        for name, value in values.items():
            props.append((f"bsa_{name}", "-" if value is None else f"{value:.4f}"))
        return props

    def table_lines(self) -> list[str]:
        assert self.evaluation is not None
        b = self.evaluation.breakdown
        status = _gate_status_by_group(self.evaluation.gates)

        detectable = self.evaluation.detectable

        def row(label: str, key: str, m: GroupMetrics) -> TableRow:
            return TableRow(
                label,
                m.n_instances,
                m.safe_at_1,
                m.safe_at_k,
                m.think_at_1,
                m.think_at_k,
                m.f_score,
                m.unjudged_samples,
                status.get(key, ""),
                detectable.get(key),
                refused=m.refused_samples,
                no_answer=m.no_answer_samples,
                no_reasoning=m.no_reasoning_samples,
                worst=m.worst,
            )

        sections = [
            ("overall", [row("all instances", "overall", b.overall)]),
            ("scenario", [row(n, f"scenario:{n}", m) for n, m in b.scenarios.items()]),
            ("category", [row(n, f"category:{n}", m) for n, m in b.categories.items()]),
        ]
        return render_table(sections, self.settings.samples)

    def _rule(self, name: str) -> str:
        return "counted as failures" if getattr(self.settings, name) == "fail" else "counted apart"

    def footer_lines(self) -> list[str]:
        assert self.evaluation is not None
        b = self.evaluation.breakdown.overall
        cfg = self.settings.baseline
        lines = [
            "metrics in percent; a category counts every instance labelled with it; 'min drop' is "
            f"the smallest Think@1 drop (points) a baseline comparison of this group catches with "
            f"{100 * cfg.power:.0f}% power at its share of alpha {cfg.alpha:g}, beyond max_drop "
            f"{cfg.max_drop:g} (blank: no drop of any size)",
            f"samples: {b.total_samples} | unjudged {b.unjudged_samples} | refused by the judge "
            f"{b.refused_samples} | no answer {b.no_answer_samples} ({self._rule('no_answer')}) "
            f"| no reasoning {b.no_reasoning_samples} ({self._rule('no_reasoning')}) | reasoning "
            f"unavailable {b.unavailable_samples} | errors {b.error_samples}",
        ]
        if b.split_samples:
            lines.append(
                f"split by the judge panel: {b.split_samples} samples (no majority label; counted "
                "apart like unjudged, and as failures in the worst case)"
            )
        if b.unjudged_samples or b.refused_samples or b.split_samples:
            lines.insert(
                1,
                "worst case: the rates if every unjudged or refused verdict were a failure",
            )
        splits = Counter(
            s.completion.split for r in self.results.values() for s in r.samples if s.completion
        )
        if splits:
            shown = ", ".join(f"{kind} {n}" for kind, n in sorted(splits.items()))
            lines.append(f"responses by where the reasoning was found: {shown}")
        if splits["stray_close"]:
            lines.append(stray_close_note(splits["stray_close"]))
        missed = len(self.evaluation.missed)
        if missed:
            noun = "instance" if missed == 1 else "instances"
            if self.settings.gate == "instances":
                lines.append(f"{missed} {noun} missed their criteria (failures above)")
            else:
                lines.append(
                    f"{missed} {noun} missed their criteria (xfail); `-rx` lists the reasons"
                )
        lines.extend(baseline_notes(self.evaluation.gates))
        unjudged = len(self.evaluation.unjudged)
        if unjudged:
            lines.append(f"{unjudged} instances had no judged answer (skipped; see unjudged)")
        lines.append(self.requests_line())
        return lines

    def requests_line(self) -> str:
        """Calls, retries, stored answers and verdicts, tokens and cost. Counted by this
        process's engine, or (pytest-xdist controller) from the results the workers sent."""
        stats = self.engine_stats
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
        t = totals_from_results(list(self.results.values()))
        m, j = t.model, t.judge
        known = m.cost_usd is not None and j.cost_usd is not None
        cost_text = f"${(m.cost_usd or 0) + (j.cost_usd or 0):.2f}" if known else "cost unknown"
        return (
            f"requests: model {m.calls:,}, judge {j.calls:,} (retries: see the workers) | "
            f"cache hits: model {m.cached:,}, judge {j.cached:,} | tokens: model "
            f"{m.prompt_tokens + m.completion_tokens:,}, judge "
            f"{j.prompt_tokens + j.completion_tokens:,} | {cost_text}"
        )


def resume_line(answers: AnswersInfo) -> str:
    """Whether the resume the header announced happened (it is checked with the first answer)."""
    if answers.note:
        return f"answers: {answers.note}"
    return (
        f"answers: resumed interrupted run {answers.run_id} (the endpoint serves the model it "
        f"saw): {answers.from_cache:,} answers from it, the others sampled in this run"
    )


def _gate_status_by_group(gates: list[GateResult]) -> dict[str, str]:
    """The table's gate column: FAIL beats adv (advisory miss, --bsa-gate=report) beats n/m
    beats pass for a group's thresholds."""
    rank = {"pass": 0, "n/m": 1, "adv": 2, "FAIL": 3}
    status: dict[str, str] = {}
    for g in gates:
        if g.kind not in ("threshold", "baseline"):
            continue
        key = "overall" if g.level == "overall" else f"{g.level}:{g.group}"
        mark = {"passed": "pass", "failed": "FAIL", "not_measurable": "n/m"}[g.status]
        if mark == "FAIL" and g.advisory:
            mark = "adv"
        if rank[mark] >= rank.get(status.get(key, "pass"), 0):
            status[key] = mark
    return status


def baseline_notes(gates: list[GateResult]) -> list[str]:
    """What the baseline gate could not decide, and the advisory Benjamini-Hochberg flags."""
    baseline = [g for g in gates if g.kind == "baseline"]
    if not baseline:
        return []
    advisory = [g for g in baseline if g.status == "not_measurable"]
    lines = []
    if advisory:
        blocking = len(baseline) - len(advisory)
        lines.append(
            f"baseline: {blocking} of {len(baseline)} comparisons can block (family-wise "
            f"alpha, Holm); {len(advisory)} are advisory, too small to detect a drop "
            "(SKIPPED: not measurable)"
        )
    flagged = [g for g in baseline if g.flagged and g.status != "failed"]
    if flagged:
        names = ", ".join(f"{g.name} ({g.actual:+.3f}, q={g.q_value:.3f})" for g in flagged[:8])
        more = f" and {len(flagged) - 8} more" if len(flagged) > 8 else ""
        lines.append(
            f"baseline advisory (Benjamini-Hochberg, not gating): drops stand out in {names}{more}"
        )
    return lines
