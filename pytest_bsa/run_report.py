"""Building a run's report: provenance, totals, answers and the Report itself (pure).

The session hands in what it knows at the end of the run (settings, results, the engine's
counters); :func:`build_report` makes the :class:`pytest_bsa.report.Report`, counting the
samples with :mod:`pytest_bsa.tallies`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pytest_bsa.config import Settings
from pytest_bsa.dataset import DatasetSource
from pytest_bsa.engine.scope import AnswerScope
from pytest_bsa.evaluation import BaselineRun, RunEvaluation
from pytest_bsa.judge_check_summary import JudgeCheckSummary
from pytest_bsa.models import InstanceResult
from pytest_bsa.panel_stats import panel_summary
from pytest_bsa.report import (
    AnswersInfo,
    BaselineSnapshot,
    DatasetInfo,
    Endpoint,
    Provenance,
    Report,
    RoleTotals,
    RubricInfo,
    Selection,
    ServedModel,
    Totals,
    evaluation_fields,
    git_commit,
    now_iso,
)
from pytest_bsa.reporting.outputs import endpoint_host, scrub_params
from pytest_bsa.rubrics import Rubric
from pytest_bsa.tallies import outcome_counts, served_models, totals_from_results


def run_totals(
    results: Sequence[InstanceResult], stats: Any, *, wall_seconds: float, stopped: bool
) -> Totals:
    """Calls, tokens and cost from the saved samples, with the engine's retry counts (``stats``;
    None under pytest-xdist, whose workers retry). A stopped run spent money on instances it
    did not evaluate: then every call the engine made counts."""
    totals = totals_from_results(results)
    retries = (stats.model.retries, stats.judge.retries) if stats else (None, None)
    totals = totals.model_copy(
        update={
            # Retries happen inside workers under pytest-xdist: unknown (None) here.
            "model": totals.model.model_copy(update={"retries": retries[0]}),
            "judge": totals.judge.model_copy(update={"retries": retries[1]}),
            "wall_seconds": wall_seconds,
        }
    )
    if stats is not None and stopped:
        totals = totals.model_copy(
            update={
                role: _spent(getattr(totals, role), getattr(stats, role))
                for role in ("model", "judge")
            }
        )
    return totals


def _spent(totals: RoleTotals, counters: Any) -> RoleTotals:
    """Role totals with calls, tokens and cost as the engine counted them (all calls made)."""
    return totals.model_copy(
        update={
            "calls": counters.calls,
            "failures": counters.failures,
            "prompt_tokens": counters.prompt_tokens,
            "completion_tokens": counters.completion_tokens,
            "reasoning_tokens": counters.reasoning_tokens,
            "cost_usd": counters.cost_usd if counters.cost_known else None,
        }
    )


def answers_info(
    results: Sequence[InstanceResult], mode: str, scope: AnswerScope | None, note: str | None
) -> AnswersInfo:
    """Where the answers came from, and what the endpoint said it served. ``note`` says why
    an interrupted run was not resumed."""
    served: Counter[tuple[str | None, str | None]] = Counter()
    from_cache = 0
    for result in results:
        for sample in result.samples:
            completion = sample.completion
            if completion is not None:
                served[completion.served_model, completion.system_fingerprint] += 1
                from_cache += completion.cached
    return AnswersInfo(
        mode=mode,  # type: ignore[arg-type]
        run_id=scope.run_id if scope is not None else None,
        resumed=bool(scope and scope.resumed and not note),
        note=note,
        from_cache=from_cache,
        served=tuple(
            ServedModel(model=m, system_fingerprint=f, answers=n)
            for (m, f), n in sorted(served.items(), key=lambda kv: -kv[1])
        ),
    )


def provenance(
    settings: Settings,
    source: DatasetSource,
    rubric: Rubric,
    results: Sequence[InstanceResult],
    *,
    structured: bool,
    verdict_hash: str,
    planned: int,
    keyword: str | None,
    directory: Path,
    started_at: str,
    answers: AnswersInfo,
) -> Provenance:
    """What was measured, how and when. ``planned`` counts the instances selected to run,
    ``keyword`` is pytest's ``-k``, ``directory`` where pytest was started (its git commit)."""
    s = settings
    prompt_sha = hashlib.sha256(s.system_prompt.encode()).hexdigest() if s.system_prompt else None
    model_served, judge_served = served_models(results)
    return Provenance(
        dataset=DatasetInfo(
            spec=source.spec, label=source.label, sha256=source.sha256, revision=source.revision
        ),
        selection=Selection(
            scenarios=s.scenarios,
            categories=s.categories,
            limit=s.limit,
            seed=s.seed,
            shard=f"{s.shard[0]}/{s.shard[1]}" if s.shard else None,
            keyword=keyword,
            instances=max(planned, len(results)),
        ),
        model=Endpoint(model=s.model, host=endpoint_host(s.api_base), served=model_served),
        judge=Endpoint(
            model=s.judge_label, host=endpoint_host(s.judge_api_base), served=judge_served
        ),
        generation_params=scrub_params(s.generation_params),
        system_prompt_sha256=prompt_sha,
        rubric_version=rubric.name,
        judge_prompt_hash=rubric.sha256[:16],
        rubric=RubricInfo(
            name=rubric.name,
            source=rubric.source,
            sha256=rubric.sha256,
            files=dict(rubric.files),
            structured=structured,
        ),
        judge_params=scrub_params(s.judge_params),
        verdict_hash=verdict_hash,
        git_commit=git_commit(directory),
        started_at=started_at,
        finished_at=now_iso(),
        answers=answers,
        system_prompt_source=s.system_prompt_source,
        judge_samples=s.judge_samples,
    )


def build_report(
    settings: Settings,
    source: DatasetSource,
    rubric: Rubric,
    results: Iterable[InstanceResult],
    evaluation: RunEvaluation,
    *,
    engine: Any,
    scope: AnswerScope | None,
    baseline: BaselineRun | None,
    verdict_hash: str,
    planned: int,
    keyword: str | None,
    directory: Path,
    started_at: str,
    wall_seconds: float,
    stopped: str | None,
    judge_check: JudgeCheckSummary | None = None,
    resume_note: str | None = None,
) -> Report:
    """The JSON report of a run (also the source of every other output). ``engine`` is the
    one this process ran (None on the pytest-xdist controller), ``scope`` the run's answers,
    ``judge_check`` the check of the judge before the run, ``resume_note`` why a pytest-xdist
    worker refused the announced resume."""
    ordered = tuple(sorted(results, key=lambda r: r.instance.id))
    prov = provenance(
        settings,
        source,
        rubric,
        ordered,
        structured=engine.judge.structured if engine else rubric.structured,
        verdict_hash=verdict_hash,
        planned=planned,
        keyword=keyword,
        directory=directory,
        started_at=started_at,
        answers=answers_info(
            ordered,
            settings.answers,
            scope,
            (engine.resume_refused if engine else None) or resume_note,
        ),
    )
    return Report(
        provenance=prov,
        policy=settings.policy,
        totals=run_totals(
            ordered,
            engine.stats if engine is not None else None,
            wall_seconds=wall_seconds,
            stopped=stopped is not None,
        ),
        outcomes=outcome_counts(ordered),
        instances=ordered,
        baseline=baseline.label if baseline else None,
        baseline_run=BaselineSnapshot.of(baseline, settings.policy) if baseline else None,
        complete=max(planned - len(ordered), 0) == 0 and stopped is None,
        stopped=stopped,
        judge_panel=panel_summary(ordered),
        judge_check=judge_check,
        **evaluation_fields(evaluation),
    )
