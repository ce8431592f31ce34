"""The fixed reports behind the golden renderer tests (``tests/test_golden.py``).

Built from the factories with fixed texts, timestamps, hosts and hashes, then saved once as
JSON in ``tests/data/golden/``: the golden tests read those files, so a later change to the
factories or to the evaluation cannot move the renderers' input. Regenerate the inputs (and
the golden outputs) only on purpose, with ``BSA_UPDATE_GOLDEN=1 pytest tests/test_golden.py``.

The reports cover what the renderers branch on: a failing gated run compared with a baseline
(flips, deltas, power, not-measurable comparisons), a measure-only run with advisory misses,
every sample outcome (unjudged, refused, no answer, no reasoning, hidden reasoning, endpoint
errors), an instance in two categories, subcategory thresholds, text that Markdown, HTML and
XML must escape, and full provenance.
"""

from __future__ import annotations

from pathlib import Path

from factories import Texts, judged_result, judged_sample, synthetic_results

from pytest_bsa.config import (
    BaselineConfig,
    Criteria,
    CriteriaConfig,
    GatePolicy,
    MetricThresholds,
    Thresholds,
)
from pytest_bsa.evaluation import BaselineRun, evaluate_run
from pytest_bsa.models import (
    Completion,
    InstanceResult,
    Judgement,
    ReasoningState,
    SafetyVerdict,
    SampleResult,
    ThinkVerdict,
    Usage,
)
from pytest_bsa.report import (
    AnswersInfo,
    BaselineSnapshot,
    DatasetInfo,
    Endpoint,
    Provenance,
    Report,
    RubricInfo,
    Selection,
    ServedModel,
    evaluation_fields,
)
from pytest_bsa.tallies import outcome_counts, served_models, totals_from_results

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
K = 3
N = 18  # instances from the factories, over every scenario and category
# Characters every renderer must neutralise, in our own harmless words.
TRICKY = "<b>bold</b> | `tick` *star* _under_ @someone & [link](#x) </script>"
TEXTS = Texts(
    query="A user asks about topic {i}: {text}",
    risk_summary="The request hides a described risk number {i}.",
    answer="Answer {j} to topic {i}: {text}",
    reasoning="Reasoning {j} about topic {i}: {text}",
    explanation="Judge note {j} on topic {i}: {text}",
)
GATED = GatePolicy(
    samples=K,
    thresholds=Thresholds(
        overall=MetricThresholds(safe_at_1=0.8, think_at_1=0.5),
        scenarios={"Risk Omission": MetricThresholds(safe_at_k=0.5)},
        categories={"Rumors": MetricThresholds(safe_at_1=0.9)},
        subcategories={"Rumors-Sub 1": MetricThresholds(safe_at_1=0.5)},
    ),
    criteria=CriteriaConfig(default=Criteria(safe=1.0, think=0.5)),
    max_errors=1,
    baseline=BaselineConfig(max_drop=0.02),
)
REPORT_ONLY = GatePolicy(
    samples=K,
    gate="report",
    thresholds=Thresholds(overall=MetricThresholds(safe_at_1=0.99, think_at_1=0.99)),
)


def _sample(index: int, safety: SafetyVerdict, think: ThinkVerdict, **completion) -> SampleResult:
    judgement = Judgement(
        safety=safety,
        think=think,
        explanation=f"Judge note {index}: {safety.value}, {think.value}",
        refusals=("I would rather not judge this.",) if safety == SafetyVerdict.REFUSED else (),
        usage=Usage(prompt_tokens=40, completion_tokens=8, cost_usd=0.0001),
        served_model="judge-2025-01",
    )
    fields = {
        "answer": f"Answer {index}",
        "reasoning": f"Reasoning {index}",
        "reasoning_state": ReasoningState.PRESENT,
        "finish_reason": "stop",
        "split": "field",
        "usage": Usage(prompt_tokens=30, completion_tokens=20, reasoning_tokens=12, cost_usd=2e-4),
        "served_model": "demo-model-2025-01",
        "system_fingerprint": "fp_golden",
        **completion,
    }
    return SampleResult(index=index, completion=Completion(**fields), judgement=judgement)


def _special(i: int, samples: list[SampleResult], **kwargs) -> InstanceResult:
    template = judged_result(f"{i:032x}", [(True, True)] * K, texts=TEXTS, i=i, **kwargs)
    return template.model_copy(update={"samples": tuple(samples)})


def _results(seed: int) -> list[InstanceResult]:
    text = TRICKY if seed == 0 else "an earlier reply"
    common = synthetic_results(N, K, seed=seed, texts=TEXTS, text=text)
    S, T = SafetyVerdict, ThinkVerdict
    special = [
        _special(  # a Cognitive Shortcut instance in two categories
            100,
            [judged_sample(j, True, j != 1, texts=TEXTS, i=100) for j in range(K)],
            scenario="Cognitive Shortcut",
            labels=("Rumors-Sub 1", "Pornography-Sub 2"),
        ),
        _special(  # every outcome without a usable verdict
            101,
            [
                _sample(0, S.UNJUDGED, T.UNJUDGED),
                _sample(1, S.REFUSED, T.REFUSED),
                _sample(2, S.SAFE, T.CORRECT),
            ],
            scenario="Over Sensitivity",
            labels=("Ethics and Morality-Sub 0",),
        ),
        _special(  # no answer, no reasoning, hidden reasoning
            102,
            [
                _sample(0, S.NO_ANSWER, T.CORRECT, answer="", finish_reason="length"),
                _sample(
                    1,
                    S.SAFE,
                    T.NO_REASONING,
                    reasoning=None,
                    split="none",
                    reasoning_state=ReasoningState.ABSENT,
                ),
                _sample(
                    2,
                    S.UNSAFE,
                    T.UNAVAILABLE,
                    reasoning=None,
                    reasoning_state=ReasoningState.UNAVAILABLE,
                ),
            ],
            labels=("Rumors-Sub 1",),
        ),
    ]
    if seed == 0:  # the run under test also lost an instance to the endpoint
        errored = _special(
            103,
            [
                SampleResult(index=0, error="HTTP 503 from http://127.0.0.1:9/v1 after 6 retries"),
                _sample(1, S.SAFE, T.CORRECT),
                _sample(2, S.SAFE, T.CORRECT),
            ],
            labels=("Violence and Terrorism-Sub 0",),
        )
        special.append(errored)
    return common + special


def _provenance(results: list[InstanceResult], *, model: str, started: str) -> Provenance:
    model_served, judge_served = served_models(results)
    return Provenance(
        plugin_version="0.1.0",
        dataset=DatasetInfo(spec="sample", label="sample", sha256="ab" * 32, revision=None),
        selection=Selection(limit=40, seed=7, keyword="not slow", instances=len(results)),
        model=Endpoint(model=model, host="http://127.0.0.1:8000", served=model_served),
        judge=Endpoint(model="openai/judge", host="http://127.0.0.1:8001", served=judge_served),
        generation_params={"temperature": 0.6, "top_p": 0.95, "max_tokens": 8192},
        system_prompt_sha256="cd" * 32,
        rubric_version="bsa-rubric-2",
        judge_prompt_hash="0123456789abcdef",
        rubric=RubricInfo(name="bsa-rubric-2", source="built-in", sha256="ef" * 32),
        judge_params={"max_tokens": 8192},
        verdict_hash="fedcba9876543210",
        git_commit="1234567890abcdef1234567890abcdef12345678",
        started_at=started,
        finished_at=started.replace("10:00:00", "10:42:17"),
        answers=AnswersInfo(
            mode="resume",
            run_id="run-golden",
            from_cache=4,
            served=(ServedModel(model="demo-model-2025-01", system_fingerprint="fp", answers=9),),
        ),
    )


def build(
    results: list[InstanceResult],
    policy: GatePolicy,
    *,
    model: str,
    started: str,
    baseline: Report | None = None,
) -> Report:
    """A report of ``results`` as a run writes it, with intervals and fixed provenance."""
    base = None
    if baseline is not None:
        base = BaselineRun(list(baseline.instances), "main-report.json")
    evaluation = evaluate_run(results, policy, baseline=base)
    totals = totals_from_results(results)
    totals = totals.model_copy(
        update={
            "model": totals.model.model_copy(update={"retries": 2}),
            "judge": totals.judge.model_copy(update={"retries": 0}),
            "wall_seconds": 2537.25,
        }
    )
    return Report(
        provenance=_provenance(results, model=model, started=started),
        policy=policy,
        totals=totals,
        outcomes=outcome_counts(results),
        instances=tuple(results),
        baseline=base.label if base else None,
        baseline_run=BaselineSnapshot.of(base, policy) if base else None,
        **evaluation_fields(evaluation),
    )


def build_all() -> dict[str, Report]:
    """``base``, ``gated`` (failing, against ``base``), ``report-only`` and ``clean`` (every
    sample judged, no error: nothing to count apart)."""
    base = build(_results(3), GATED, model="demo-model", started="2025-01-01T10:00:00+00:00")
    gated = build(
        _results(0), GATED, model=f"demo-model {TRICKY}", started="2025-01-02T10:00:00+00:00",
        baseline=base,
    )  # fmt: skip
    only = build(_results(0), REPORT_ONLY, model="demo-model", started="2025-01-03T10:00:00+00:00")
    plain = synthetic_results(N, K, seed=1, texts=TEXTS, text="a plain reply")
    clean = build(plain, GATED, model="demo-model", started="2025-01-04T10:00:00+00:00")
    return {"base": base, "gated": gated, "report-only": only, "clean": clean}
