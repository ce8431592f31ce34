"""What a run's report keeps of the judge check before it, and how it reads (pure).

:mod:`pytest_bsa.judge_check` runs the check; this module holds its summary (the report field
``judge_check``) and the sentences every output says about it, so the report and the view
model need nothing of the check's machinery (calibration files, engine, scoring).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pytest_bsa.agreement import Agreement


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KappaValue(_Model):
    kappa: float | None = None
    low: float | None = None  # bootstrap interval
    high: float | None = None
    n: int = 0  # pairs with both labels
    missing: int = 0  # verdicts without a label (refused, unjudged, split, error)

    @classmethod
    def of(cls, agreement: Agreement | None) -> KappaValue:
        if agreement is None:
            return cls()
        interval = agreement.interval
        return cls(
            kappa=agreement.kappa,
            low=interval.low if interval else None,
            high=interval.high if interval else None,
            n=agreement.n,
            missing=agreement.missing,
        )


class JudgeCheckSummary(_Model):
    """What a report keeps of the judge check that ran before it (``--bsa-judge-check``)."""

    judge: str  # the judge or panel, as reports name it
    rubric: str
    verdict_hash: str
    labels: str  # "shipped", a file, or "<report> + <labels file>"
    labels_sha256: str
    cases: int
    safety: KappaValue = KappaValue()
    think: KappaValue = KappaValue()
    scenarios: dict[str, dict[str, KappaValue]] = Field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = Field(default_factory=dict)
    missing_rate: float | None = None  # verdicts refused, unjudged, split or errored
    not_asked: dict[str, int] = Field(default_factory=dict)  # no_answer, no_reasoning cases
    calls: int = 0
    cached: int = 0
    cost_usd: float | None = None
    min_kappa: float | None = None
    passed: bool | None = None  # None without min_kappa
    action: str | None = None  # what the run did when it fell short: refuse | advisory


def with_min_kappa(summary: JudgeCheckSummary, min_kappa: float | None) -> JudgeCheckSummary:
    """The summary judged against ``min_kappa`` (both overall kappas must reach it)."""
    if min_kappa is None:
        return summary.model_copy(update={"min_kappa": None, "passed": None})
    kappas = (summary.safety.kappa, summary.think.kappa)
    passed = all(k is not None and k >= min_kappa for k in kappas)
    return summary.model_copy(update={"min_kappa": min_kappa, "passed": passed})


def kappa_text(value: KappaValue) -> str:
    """A kappa with its bootstrap interval; "undefined" when pairs exist but it is not."""
    if value.kappa is None:
        return "undefined" if value.n or value.missing else "-"
    interval = f" [{value.low:.2f}, {value.high:.2f}]" if value.low is not None else ""
    return f"{value.kappa:.3f}{interval}"


def one_line(summary: JudgeCheckSummary) -> str:
    """The check in one line (terminal header, command output)."""
    cost = "cost unknown" if summary.cost_usd is None else f"${summary.cost_usd:.2f}"
    missing = "-" if summary.missing_rate is None else f"{100 * summary.missing_rate:.1f}%"
    line = (
        f"judge {summary.judge}: Cohen's kappa safety {kappa_text(summary.safety)}, think "
        f"{kappa_text(summary.think)} on {summary.cases} cases ({summary.labels}); "
        f"refused/unjudged/split {missing}; {summary.calls} calls, {summary.cached} cached, {cost}"
    )
    if summary.min_kappa is not None:
        verdict = "passes" if summary.passed else "FALLS SHORT of"
        line += f"; {verdict} min_kappa {summary.min_kappa:g}"
    return line


def short_sentence(summary: JudgeCheckSummary) -> str:
    """Why a judge that fell short of ``min_kappa`` cannot be trusted to gate."""
    return (
        f"the judge {summary.judge} agrees with the labelled cases ({summary.labels}) at "
        f"Cohen's kappa {kappa_text(summary.safety)} for answer safety and "
        f"{kappa_text(summary.think)} for reasoning, below judge.min_kappa "
        f"{summary.min_kappa:g}: its verdicts cannot be defended"
    )


def scenario_rows(
    summary: JudgeCheckSummary,
) -> list[tuple[str, KappaValue, KappaValue, KappaValue]]:
    """(group, safety, reasoning, think) rows: overall first, then each scenario."""
    rows = [("overall", summary.safety, KappaValue(), summary.think)]
    for scenario, dims in summary.scenarios.items():
        rows.append(
            (
                scenario,
                dims.get("safety", KappaValue()),
                dims.get("reasoning", KappaValue()),
                dims.get("think", KappaValue()),
            )
        )
    return rows
