"""Everything a run checks and decides before its first call: settings, outputs, cache,
dataset and selection, rubric, baseline, keys and the judge check. A bad value is a usage
error (exit 4)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_bsa import dataset as ds
from pytest_bsa.baseline import load_baseline
from pytest_bsa.config import (
    ConfigError,
    Settings,
    build_settings,
    check_subcategories,
    policy_problem,
)
from pytest_bsa.engine.cache import CacheError, check_cache
from pytest_bsa.engine.keys import KeyChoice, MissingKey
from pytest_bsa.engine.pipeline import Pipeline, check_pipeline, is_pipeline, pipeline_identity
from pytest_bsa.evaluation import BaselineRun
from pytest_bsa.judge_check import JudgeShort, pre_run_check
from pytest_bsa.judge_check_summary import JudgeCheckSummary
from pytest_bsa.judging import JudgingError
from pytest_bsa.layers import read_layers
from pytest_bsa.models import Instance
from pytest_bsa.report import ReportError
from pytest_bsa.reporting.outputs import OutputError, Outputs, check_targets, pytest_targets
from pytest_bsa.rubrics import Rubric, RubricError, load_rubric, verdict_hash
from pytest_bsa.selection import select, shard
from pytest_bsa.simulate.script import Script, ScriptError

USAGE_ERRORS = (
    ConfigError,
    ds.DatasetError,
    ReportError,
    RubricError,
    MissingKey,
    OutputError,
    CacheError,
    ScriptError,
    JudgeShort,
    JudgingError,
)


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, checked."""

    settings: Settings
    source: ds.DatasetSource
    instances: list[Instance]
    config_sources: list[str]  # where the settings came from, for the header
    keys: dict[str, KeyChoice]
    rubric: Rubric
    baseline: BaselineRun | None
    judge_check: JudgeCheckSummary | None = None  # the judge check before the run


@contextlib.contextmanager
def usage_errors(*more: type[Exception]) -> Iterator[None]:
    """A bad value, file or endpoint found before the first call (``USAGE_ERRORS`` and
    ``more``): pytest's usage error (exit 4), one sentence, no traceback."""
    try:
        yield
    except (*USAGE_ERRORS, *more) as exc:
        raise pytest.UsageError(f"pytest-bsa: {exc}") from None


def plan_run(config: pytest.Config) -> RunPlan:
    """Validate everything before the first call: a bad value is a usage error (exit 4)."""
    with usage_errors():
        return _plan(config)


def _plan(config: pytest.Config) -> RunPlan:
    cli, file_config, config_sources = read_layers(config)
    settings = build_settings(cli, file_config, base_dir=Path(config.invocation_params.dir))
    check_pipeline(settings, implemented=bool(generate_impls(config)))
    if not config.option.collectonly and (problem := policy_problem(settings)):
        raise ConfigError(problem)
    from pytest_bsa.engine.build import key_choices

    keys = key_choices(settings)
    outputs = Outputs.from_options(config)
    inputs = [
        Path(p)
        for p in (
            settings.dataset,
            settings.config_path,
            settings.baseline_path,
            settings.system_prompt_path,
            settings.simulate_script,
        )
        if p and Path(p).is_file()
    ]
    check_targets({**outputs.targets(), **pytest_targets(config)}, inputs)
    check_cache(cache_dir(settings), settings.cache)
    if settings.simulate_script:
        Script.load(settings.simulate_script)
    source = ds.resolve_source(settings.dataset, cache_dir=cache_dir(settings))
    loaded = ds.load_dataset(source.path)
    check_subcategories(settings.thresholds, loaded, source.label)
    instances = select(
        loaded,
        scenarios=settings.scenarios,
        categories=settings.categories,
        limit=settings.limit,
        seed=settings.seed,
    )
    if settings.shard:
        instances = shard(instances, *settings.shard)
    chosen = config.hook.pytest_bsa_select(instances=list(instances), config=config)
    if chosen is not None:
        instances = list(chosen)
    rubric = load_rubric(settings.rubric, cache_dir=cache_dir(settings))
    baseline = _load_baseline(config, settings, source, rubric)
    if settings.batch != "off":  # checked before the judge check makes its calls
        from pytest_bsa.engine.batch_setup import batch_problem

        xdist = bool(getattr(config.option, "numprocesses", None))
        problem = batch_problem(settings, xdist=xdist or hasattr(config, "workerinput"))
        if problem:
            raise ConfigError(problem)
    judge_check, settings = _judge_check(config, settings, rubric, keys)
    return RunPlan(settings, source, instances, config_sources, keys, rubric, baseline, judge_check)


def _load_baseline(
    config: pytest.Config, settings: Settings, source: ds.DatasetSource, rubric: Rubric
) -> BaselineRun | None:
    if not settings.baseline_path:
        return None
    path = Path(settings.baseline_path).expanduser()
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    run, _ = load_baseline(
        path,
        dataset_sha256=source.sha256,
        judge_model=settings.judge_label,
        rubric_version=rubric.name,
        samples=settings.samples,
        verdict_hash=planned_verdict_hash(rubric, settings),
        allow_mismatch=config.getoption("bsa_baseline_allow_mismatch"),
    )
    return dataclasses.replace(run, allow_identical=settings.baseline_allow_identical)


def _judge_check(
    config: pytest.Config, settings: Settings, rubric: Rubric, keys: dict[str, KeyChoice]
) -> tuple[JudgeCheckSummary | None, Settings]:
    """Measure the judge before the run (controller only); a worker takes the controller's
    result. A judge short of ``min_kappa`` stops the run or makes its gates advisory."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        data = workerinput.get("bsa_judge_check")
        if data is None:
            return None, settings
        summary = JudgeCheckSummary.model_validate(data)
        if summary.action == "advisory":
            settings = settings.model_copy(update={"gate": "report"})
        return summary, settings
    if not settings.judge_check.active or config.option.collectonly:
        return None, settings
    return pre_run_check(settings, rubric, cache_dir(settings), keys=keys)


def start_run(settings: Settings, records: Any, instances: list[Instance], rubric: Rubric) -> None:
    """Just before the first call of a run of ``instances``: ``--bsa-max-cost`` below their
    estimate (or with no price to check it) is a usage error (exit 4); else the run is recorded
    in the cache (``records``, its :class:`~pytest_bsa.run_records.RunRecords`; the cache file
    is created now, not before)."""
    if not instances:
        return
    if settings.max_cost is not None:
        from pytest_bsa.engine.forecast import estimate_for

        estimate = estimate_for(settings, instances, cache_dir(settings), rubric)
        if problem := estimate.refusal(settings.max_cost):
            raise pytest.UsageError(f"pytest-bsa: {problem}")
    with usage_errors():
        records.record(settings)


def hook_pipeline(config: pytest.Config, model: str, instances: list[Instance]) -> Pipeline | None:
    """The team's pytest_bsa_generate as the model (``--bsa-model=pipeline:NAME``)."""
    if not is_pipeline(model):
        return None
    hook = config.hook.pytest_bsa_generate

    def generate(instance: Instance, sample_index: int) -> Any:
        return hook(instance=instance, sample_index=sample_index, config=config)

    return Pipeline(
        generate=generate,
        instances={i.id: i for i in instances},
        identity=pipeline_identity(model, [h.function for h in generate_impls(config)]),
    )


def generate_impls(config: pytest.Config) -> list[Any]:
    """The ``pytest_bsa_generate`` implementations registered (the team's own pipeline)."""
    return config.pluginmanager.hook.pytest_bsa_generate.get_hookimpls()


def planned_verdict_hash(rubric: Rubric, settings: Settings) -> str:
    """The verdict hash the run starts with (a provider refusing structured output changes it)."""
    return verdict_hash(rubric, structured=rubric.structured, params=settings.judge_params)


def cache_dir(settings: Settings) -> Path:
    if settings.cache_dir:
        return Path(settings.cache_dir).expanduser()
    return ds.default_cache_dir()
