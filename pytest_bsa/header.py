"""The run's header lines in the terminal: what is measured, against what, how (pure)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from pytest_bsa.config import Settings
from pytest_bsa.dataset import DatasetSource
from pytest_bsa.engine.keys import KeyChoice
from pytest_bsa.engine.pipeline import is_pipeline
from pytest_bsa.engine.scope import AnswerScope
from pytest_bsa.judge_check_summary import JudgeCheckSummary, one_line, short_sentence
from pytest_bsa.reporting.outputs import endpoint_host
from pytest_bsa.reporting.view import REPORT_ONLY


def header_lines(
    settings: Settings,
    source: DatasetSource,
    *,
    selected: int,
    config_sources: Sequence[str],
    rubric: str,
    verdict_hash: str,
    generate_plugins: Sequence[str],
    keys: Mapping[str, KeyChoice],
    scope: AnswerScope | None,
    benchmark_only: bool,
    judge_check: JudgeCheckSummary | None = None,
) -> list[str]:
    """``rubric`` is its one-line description; ``generate_plugins`` name the plugins that
    implement ``pytest_bsa_generate``; ``judge_check`` is the check that ran before the run."""
    s = settings
    sha = source.sha256[:12]
    judge = s.judge + (f" @ {endpoint_host(s.judge_api_base)}" if s.judge_api_base else "")
    model = s.model + (f" @ {endpoint_host(s.api_base)}" if s.api_base else "")
    gate = s.gate + (
        f" ({REPORT_ONLY}: thresholds and baseline are advisory)" if s.gate == "report" else ""
    )
    lines = [
        f"bsa: model {model} | judge {judge}",
        f"bsa: dataset {source.label} sha256 {sha}… | {selected} instances "
        f"selected x {s.samples} samples | seed {s.seed} | gate {gate}",
        f"bsa: config {'; '.join(config_sources)}" if config_sources else "bsa: no config file",
    ]
    lines.append(f"bsa: rubric {rubric} | verdict hash {verdict_hash}")
    lines.extend(judge_lines(s, judge_check))
    if is_pipeline(s.model):
        where = ", ".join(sorted(set(generate_plugins)))
        lines.append(f"bsa: {s.model} answers through pytest_bsa_generate in {where}")
    elif generate_plugins:
        lines.append(
            "bsa: pytest_bsa_generate is implemented but unused: the model under test is "
            f"{s.model} (pass --bsa-model=pipeline:NAME to use it)"
        )
    if keys:
        lines.append("bsa: keys: " + "; ".join(k.describe() for k in keys.values()))
    if s.think_tags == "template":
        lines.append(
            "bsa: think tags: the chat template opens <think> (--bsa-think-tags=template): "
            "a response's content up to its first </think> is reasoning"
        )
    if scope is not None:
        lines.append(f"bsa: answers: {scope_text(scope)}")
    if not benchmark_only:
        lines.append(
            "bsa: the model is set in a file, not on the command line: the project's own "
            "tests run too"
        )
    return lines


def judge_lines(settings: Settings, check: JudgeCheckSummary | None) -> list[str]:
    """The judge panel, repeated asks, a named system prompt and the judge check."""
    lines = []
    if len(settings.judge_models) > 1:
        lines.append(
            f"bsa: judge panel of {len(settings.judge_models)}: "
            f"{', '.join(settings.judge_models)} (each verdict the majority; ties are split)"
        )
    if settings.judge_samples > 1:
        lines.append(
            f"bsa: judge asked {settings.judge_samples} times per verdict (the majority "
            "counts; unstable verdicts are listed)"
        )
    if settings.system_prompt_source and settings.system_prompt_source != "file":
        lines.append(f"bsa: system prompt {settings.system_prompt_source}")
    if check is not None:
        lines.append(f"bsa: judge check: {one_line(check)}")
        if check.action == "advisory":
            lines.append(
                f"bsa: REPORT ONLY: {short_sentence(check)}; every threshold and baseline gate "
                "is advisory (judge.on_short: advisory)"
            )
    return lines


def calls_line(n: int, settings: Settings) -> str:
    """What the collected run will ask of the endpoints (each judge of a panel, each ask)."""
    k = settings.samples
    asks = 2 * len(settings.judge_models) * settings.judge_samples
    return (
        f"bsa: {n} instances x {k} samples = {n * k} model calls and about {asks * n * k} "
        "judge calls (fewer with stored answers and verdicts, more if the judge must be "
        "re-asked)"
    )


def scope_text(scope: AnswerScope) -> str:
    """Where this run's model answers come from (``--bsa-answers``)."""
    if scope.mode == "reuse":
        return "reusing any stored answer to the same request (--bsa-answers=reuse)"
    if scope.resumed:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(scope.started_at or 0))
        return (
            f"resuming interrupted run {scope.run_id} of {when} (same settings) if the "
            "endpoint still serves the model it saw: checked with the first answer, the "
            "summary says which (--bsa-answers=fresh starts over)"
        )
    return f"sampled afresh (run {scope.run_id})"
