"""The per-run object: owns settings, selection and engine, collects results, runs the gates.

Registered as a plugin by :mod:`pytest_bsa.plugin` only when the benchmark is active. Results
reach it through ``pytest_runtest_logreport``, so the same code aggregates a single process and
the controller of a pytest-xdist run (whose workers send their reports over).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shlex
import time
from collections import Counter
from collections.abc import Generator
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pytest
from _pytest.reports import CollectReport, TestReport

from pytest_bsa import dataset as ds
from pytest_bsa.baseline import load_baseline
from pytest_bsa.config import (
    ConfigError,
    FileConfig,
    Settings,
    build_settings,
    check_subcategories,
    load_file_config,
    load_pyproject_table,
    parse_param,
    parse_price,
    policy_problem,
    rebase_paths,
)
from pytest_bsa.engine.cache import AnswerScope, CacheError, check_cache
from pytest_bsa.engine.keys import KeyChoice, MissingKey
from pytest_bsa.engine.pipeline import Pipeline, check_pipeline, is_pipeline, pipeline_identity
from pytest_bsa.evaluation import BaselineRun, verdict_of
from pytest_bsa.gate import InstanceVerdict, with_unjudged_ceilings
from pytest_bsa.items import MARKERS, BsaItem, BsaSuite
from pytest_bsa.judge_check import JudgeCheckSummary, JudgeShort, pre_run_check
from pytest_bsa.judging import JudgingError
from pytest_bsa.models import Instance, InstanceResult
from pytest_bsa.panel_stats import panel_summary
from pytest_bsa.report import (
    AnswersInfo,
    BaselineSnapshot,
    DatasetInfo,
    Endpoint,
    Provenance,
    Report,
    ReportError,
    RubricInfo,
    Selection,
    ServedModel,
    evaluation_fields,
    git_commit,
    now_iso,
    outcome_counts,
    served_models,
    totals_from_results,
)
from pytest_bsa.reporting.judge_sections import judge_header_lines, judge_terminal_lines
from pytest_bsa.reporting.outputs import (
    OutputError,
    Outputs,
    check_targets,
    endpoint_host,
    pytest_targets,
    scrub_params,
    write_outputs,
)
from pytest_bsa.reporting.progress import Progress
from pytest_bsa.rubrics import Rubric, RubricError, describe_rubric, load_rubric, verdict_hash
from pytest_bsa.rubrics.bsa import BSA_RUBRIC
from pytest_bsa.run_summary import RunSummary, resume_line
from pytest_bsa.simulate.script import Script, ScriptError

REPORT_ONLY = "REPORT ONLY"

_CLI_OPTIONS = {
    "model": "bsa_model",
    "api_base": "bsa_api_base",
    "api_key_env": "bsa_api_key_env",
    "judges": "bsa_judge",
    "judge_api_base": "bsa_judge_api_base",
    "judge_api_key_env": "bsa_judge_api_key_env",
    "dataset": "bsa_dataset",
    "scenarios": "bsa_scenario",
    "categories": "bsa_category",
    "limit": "bsa_limit",
    "seed": "bsa_seed",
    "samples": "bsa_samples",
    "temperature": "bsa_temperature",
    "max_tokens": "bsa_max_tokens",
    "system_prompt_path": "bsa_system_prompt",
    "gate": "bsa_gate",
    "max_errors": "bsa_max_errors",
    "concurrency": "bsa_concurrency",
    "timeout": "bsa_timeout",
    "max_retries": "bsa_max_retries",
    "breaker": "bsa_breaker",
    "answers": "bsa_answers",
    "cache_dir": "bsa_cache_dir",
    "cache": "bsa_cache",
    "simulate_script": "bsa_simulate_script",
    "gate_on": "bsa_gate_on",
    "hidden_reasoning": "bsa_hidden_reasoning",
    "baseline_path": "bsa_baseline",
    "baseline_allow_identical": "bsa_baseline_allow_identical",
    "shard": "bsa_shard",
    "rpm": "bsa_rpm",
    "tpm": "bsa_tpm",
    "max_cost": "bsa_max_cost",
    "rubric": "bsa_rubric",
    "judge_temperature": "bsa_judge_temperature",
    "judge_max_tokens": "bsa_judge_max_tokens",
    "judge_reasoning_effort": "bsa_judge_reasoning_effort",
    "top_p": "bsa_top_p",
    "max_unjudged": "bsa_max_unjudged",
    "no_answer": "bsa_no_answer",
    "no_reasoning": "bsa_no_reasoning",
    "think_tags": "bsa_think_tags",
    "judge_samples": "bsa_judge_samples",
    "judge_check_run": "bsa_judge_check",
    "judge_check_min_kappa": "bsa_judge_min_kappa",
    "judge_check_on_short": "bsa_judge_on_short",
    "judge_check_labels": "bsa_judge_labels",
}
_INI_OPTIONS = ("model", "judge", "dataset", "samples", "cache_dir")


def _ini_samples(config: pytest.Config, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"bsa_samples = {text!r} in {config.inipath} is not a positive whole number; "
            "write e.g. bsa_samples = 5"
        )
    return value


def _read_layers(config: pytest.Config) -> tuple[dict[str, Any], FileConfig | None, list[str]]:
    """CLI values, with ini values filling the gaps, the config file, and where they came
    from (for the header)."""
    values: dict[str, Any] = {key: config.getoption(opt) for key, opt in _CLI_OPTIONS.items()}
    values["judges"] = list(values["judges"] or ()) or None  # --bsa-judge, repeatable
    values["judge_check_run"] = values["judge_check_run"] or None
    sources: list[str] = []
    from_ini = []
    for key in _INI_OPTIONS:
        if key == "judge" and values["judges"]:
            continue
        if values.get(key) is None and (ini := config.getini(f"bsa_{key}")):
            if key == "samples":
                values[key] = _ini_samples(config, ini)
            elif key in _INI_PATHS:
                values[key] = _ini_path(config, ini, _INI_PATHS[key])
            else:
                values[key] = ini
            from_ini.append(f"bsa_{key}")
    values["scenarios"] = tuple(values["scenarios"] or ())
    values["categories"] = tuple(values["categories"] or ())
    values["params"] = dict(parse_param(p) for p in config.getoption("bsa_param") or ())
    values["prices"] = dict(parse_price(p) for p in config.getoption("bsa_price") or ())
    if not values["baseline_allow_identical"]:
        values["baseline_allow_identical"] = None
    config_path = config.getoption("bsa_config")
    if not config_path and (config_path := config.getini("bsa_config")):
        from_ini.append("bsa_config")
        config_path = _ini_path(config, config_path)
    if not config.getoption("bsa_report") and config.getini("bsa_report"):
        from_ini.append("bsa_report")  # read by Outputs.from_options
    if from_ini:
        sources.append(f"{', '.join(from_ini)} from {config.inipath}")
    if config_path:
        path = Path(config_path).expanduser()
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        values["config_path"] = str(path)
        return values, load_file_config(path), [str(path), *sources]
    where = _pyproject_dir(config)
    found = load_pyproject_table(where)
    if found is None:
        return values, None, sources
    return values, rebase_paths(found[0], where), [found[1], *sources]


# Path-valued ini options and the words they take that are not paths.
_INI_PATHS: dict[str, tuple[str, ...]] = {"dataset": ("sample", "hf"), "cache_dir": ()}


def _ini_path(config: pytest.Config, value: str, keywords: tuple[str, ...] = ()) -> str:
    """An ini value that is a relative path, resolved against the ini file's directory (as
    pytest resolves its own ini paths), so that pytest started from a subdirectory finds it."""
    path = Path(value).expanduser()
    if value in keywords or path.is_absolute() or config.inipath is None:
        return value
    return str(config.inipath.parent / path)


def _pyproject_dir(config: pytest.Config) -> Path:
    """Where ``[tool.bsa]`` is read: the directory of pytest's ini file, else its rootdir."""
    inipath = config.inipath
    return inipath.parent if inipath is not None else config.rootpath


def model_on_command_line(config: pytest.Config) -> bool:
    """Whether ``--bsa-model`` was typed (command line or ``PYTEST_ADDOPTS``), as opposed to
    set in a file (``bsa_model``, or ``addopts`` in the ini file)."""
    args = [
        *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
        *(str(a) for a in config.invocation_params.args),
    ]
    return any(a == "--bsa-model" or a.startswith("--bsa-model=") for a in args)


class BsaSession:
    """State of one benchmark run in this process."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        source: ds.DatasetSource,
        instances: list[Instance],
        config_sources: list[str],
        keys: dict[str, KeyChoice] | None = None,
        rubric: Rubric = BSA_RUBRIC,
    ) -> None:
        self.config = config
        self.settings = settings
        self.source = source
        self.rubric = rubric
        self.instances = instances
        self.config_sources = config_sources
        self.keys = keys or {}
        self.benchmark_only = model_on_command_line(config)
        self.scope: AnswerScope | None = None  # the model answers this run may reuse
        self._cache: Any = None  # the controller's cache handle (run records)
        self.stop_reason: str | None = None  # why the run stopped itself
        self._gates_counted = 0  # gate reports already added to pytest's collected count
        self._junit_cases: dict[str, tuple[str, str] | None] = {}
        self.is_worker = hasattr(config, "workerinput")
        self.xdist_controller = bool(getattr(config.option, "numprocesses", None)) and (
            not self.is_worker
        )
        self.planned = 0  # instances selected to run; known once collection is done
        self.summary = RunSummary(settings=settings, source=source)
        self._engine: Any = None
        self._simulator: Any = None
        self.baseline: BaselineRun | None = None
        self.outputs = Outputs.from_options(config)
        self.progress = Progress.for_config(config, len(instances) * settings.samples)
        self.started_at = now_iso()
        self._clock_start = time.monotonic()
        self.items: list[BsaItem] = []
        self.pytest_session: pytest.Session | None = None
        self.judge_check: JudgeCheckSummary | None = None  # the check before the run
        # Why an announced resume was refused (the served model changed): this process's
        # engine knows, or a pytest-xdist worker's report brings it.
        self.resume_note: str | None = None

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> BsaSession:
        """Validate everything before the first call: a bad value is a usage error (exit 4)."""
        try:
            cli, file_config, config_sources = _read_layers(config)
            settings = build_settings(cli, file_config, base_dir=Path(config.invocation_params.dir))
            check_pipeline(settings, implemented=bool(_generate_impls(config)))
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
            check_cache(_cache_dir(settings), settings.cache)
            if settings.simulate_script:
                Script.load(settings.simulate_script)
            source = ds.resolve_source(settings.dataset, cache_dir=_cache_dir(settings))
            loaded = ds.load_dataset(source.path)
            check_subcategories(settings.thresholds, loaded, source.label)
            instances = ds.select(
                loaded,
                scenarios=settings.scenarios,
                categories=settings.categories,
                limit=settings.limit,
                seed=settings.seed,
            )
            if settings.shard:
                instances = ds.shard(instances, *settings.shard)
            chosen = config.hook.pytest_bsa_select(instances=list(instances), config=config)
            if chosen is not None:
                instances = list(chosen)
            rubric = load_rubric(settings.rubric, cache_dir=_cache_dir(settings))
            baseline = _load_baseline(config, settings, source, rubric)
            judge_check, settings = _judge_check(config, settings, rubric, keys)
        except (
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
        ) as exc:
            raise pytest.UsageError(f"pytest-bsa: {exc}") from None
        for marker in ("bsa", *MARKERS):
            config.addinivalue_line("markers", f"{marker}: pytest-bsa benchmark instance")
        bsa = cls(config, settings, source, instances, config_sources, keys, rubric)
        bsa.baseline = baseline
        bsa.judge_check = judge_check
        if not config.option.collectonly:
            bsa.begin_answers()
        if bsa.xdist_controller:
            config.pluginmanager.register(_XdistPlan(bsa), "bsa-xdist-plan")
        return bsa

    def begin_answers(self) -> None:
        """Decide which stored model answers this run may use (see ``AnswerScope``)."""
        workerinput = getattr(self.config, "workerinput", None)
        if workerinput is not None:
            data = workerinput.get("bsa_scope")
            self.scope = AnswerScope.from_dict(data) if data else None
            return
        if self.settings.cache == "off":
            return
        from pytest_bsa.engine.build import open_cache, run_fingerprint

        try:
            self._cache = open_cache(self.settings, _cache_dir(self.settings))
            fingerprint = run_fingerprint(self.settings)
            self.scope = self._cache.begin_run(fingerprint, self.settings.answers)
        except CacheError as exc:
            raise pytest.UsageError(f"pytest-bsa: {exc}") from None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: every worker samples in the run scope the controller chose."""
        if self.scope is not None:
            node.workerinput["bsa_scope"] = self.scope.as_dict()
        if self.judge_check is not None:
            node.workerinput["bsa_judge_check"] = self.judge_check.model_dump(mode="json")

    # -- header and collection -------------------------------------------------------------

    def header_lines(self) -> list[str]:
        s = self.settings
        sha = self.source.sha256[:12]
        judge = s.judge + (f" @ {endpoint_host(s.judge_api_base)}" if s.judge_api_base else "")
        model = s.model + (f" @ {endpoint_host(s.api_base)}" if s.api_base else "")
        gate = s.gate + (
            f" ({REPORT_ONLY}: thresholds and baseline are advisory)" if s.gate == "report" else ""
        )
        lines = [
            f"bsa: model {model} | judge {judge}",
            f"bsa: dataset {self.source.label} sha256 {sha}… | {len(self.instances)} instances "
            f"selected x {s.samples} samples | seed {s.seed} | gate {gate}",
            f"bsa: config {'; '.join(self.config_sources)}"
            if self.config_sources
            else "bsa: no config file",
        ]
        lines.append(
            f"bsa: rubric {describe_rubric(self.rubric)} | verdict hash {self.verdict_hash}"
        )
        lines.extend(judge_header_lines(s, self.judge_check))
        impls = _generate_impls(self.config)
        if is_pipeline(s.model):
            where = ", ".join(sorted({h.plugin_name for h in impls}))
            lines.append(f"bsa: {s.model} answers through pytest_bsa_generate in {where}")
        elif impls:
            lines.append(
                "bsa: pytest_bsa_generate is implemented but unused: the model under test is "
                f"{s.model} (pass --bsa-model=pipeline:NAME to use it)"
            )
        if self.keys:
            lines.append("bsa: keys: " + "; ".join(k.describe() for k in self.keys.values()))
        if s.think_tags == "template":
            lines.append(
                "bsa: think tags: the chat template opens <think> (--bsa-think-tags=template): "
                "a response's content up to its first </think> is reasoning"
            )
        if self.scope is not None:
            lines.append(f"bsa: answers: {self._scope_text()}")
        if not self.benchmark_only:
            lines.append(
                "bsa: the model is set in a file, not on the command line: the project's own "
                "tests run too"
            )
        return lines

    @property
    def verdict_hash(self) -> str:
        """What shapes this run's verdicts, hashed (the engine's, once it runs)."""
        if self._engine is not None:
            return str(self._engine.judge.verdict_hash)
        return _planned_verdict_hash(self.rubric, self.settings)

    def _scope_text(self) -> str:
        scope = self.scope
        assert scope is not None
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

    @pytest.hookimpl
    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        """``--bsa-model`` typed without path arguments collects only the benchmark; a model set
        in a file runs the project's tests too (a failing unit test is never hidden)."""
        if self.benchmark_only and config.args_source is not pytest.Config.ArgsSource.ARGS:
            return True
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        suite = BsaSuite.from_parent(session, name="bsa", nodeid="bsa", instances=self.instances)
        collected: list[pytest.Item] = []
        for group in suite.collect():
            collected.extend(group.collect())
        self.items = [i for i in collected if isinstance(i, BsaItem)]
        items.extend(collected)
        # Let the terminal count them like file-collected tests ("collected 45 items").
        report = CollectReport(suite.nodeid, "passed", None, collected)
        config.hook.pytest_collectreport(report=report)

    def gate_count(self, instances: list[Instance]) -> int:
        """Gate reports the run adds after the tests: thresholds (with the unjudged-rate
        ceilings of every gated group), baseline comparisons, error budget."""
        scenarios = {i.scenario for i in instances}
        categories = {c for i in instances for c in i.categories}
        compared = None
        if self.baseline is not None:
            compared = {"scenario": scenarios, "category": categories}
        t = with_unjudged_ceilings(self.settings.policy, baseline_groups=compared)
        tables = [
            t.overall,
            *t.scenarios.values(),
            *t.categories.values(),
            *t.subcategories.values(),
        ]
        count = 1 + sum(len(m.items()) for m in tables)
        if self.baseline is not None:
            cfg = self.settings.baseline
            sizes = {"overall": 1, "scenario": len(scenarios), "category": len(categories)}
            count += len(cfg.metrics) * sum(sizes[level] for level in cfg.levels)
        return count

    def count_gates(self, session: pytest.Session, instances: list[Instance]) -> None:
        """Add the expected gate reports to pytest's count, so progress ends at 100%."""
        self._gates_counted = self.gate_count(instances)
        session.testscollected += self._gates_counted

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.is_worker or reporter is None:
            return
        n = sum(isinstance(i, BsaItem) for i in session.items)
        k = self.settings.samples
        asks = 2 * len(self.settings.judge_models) * self.settings.judge_samples
        reporter.write_line(
            f"bsa: {n} instances x {k} samples = {n * k} model calls and about {asks * n * k} "
            "judge calls (fewer with stored answers and verdicts, more if the judge must be "
            "re-asked)"
        )

    # -- running ---------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.pytest_session = session

    @pytest.hookimpl(wrapper=True, trylast=True)  # innermost: gates before the terminal's 100%
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        if session.config.option.collectonly:
            return (yield)
        if not self.is_worker and not self.xdist_controller:
            selected = [i.instance for i in session.items if isinstance(i, BsaItem)]
            self.planned = len(selected)
            self.progress.total_samples = len(selected) * self.settings.samples
            if selected:
                self.engine.submit(selected)  # prefetch everything, in test order
                self.count_gates(session, selected)
        try:
            result = yield
        except session.Failed:
            if self.stop_reason is None or self.is_worker:
                raise
            self._report_gates(session)  # the run stopped itself: its gates say why it failed
            raise
        if not self.is_worker and not session.shouldfail and not session.shouldstop:
            self._report_gates(session)
        return result

    @property
    def missing(self) -> int:
        """Selected instances without a result so far."""
        return max(self.planned - len(self.summary.results), 0)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """On a pytest-xdist worker the queue is not known ahead: prefetch the next test."""
        if self.is_worker and isinstance(item, BsaItem):
            upcoming = [i.instance for i in (item, nextitem) if isinstance(i, BsaItem)]
            self.engine.submit(upcoming)

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from pytest_bsa.engine.build import EndpointUnreachable, build_engine

            try:
                self._engine, self._simulator = build_engine(
                    self.settings,
                    _cache_dir(self.settings),
                    keys=self.keys,
                    cache=self._cache,
                    scope=self.scope,
                    rubric=self.rubric,
                    pipeline=self._pipeline(),
                )
            except (EndpointUnreachable, CacheError) as exc:
                raise pytest.UsageError(f"pytest-bsa: {exc}") from None
            self.summary.engine_stats = self._engine.stats
        return self._engine

    def _pipeline(self) -> Pipeline | None:
        """The team's pytest_bsa_generate as the model (``--bsa-model=pipeline:NAME``)."""
        if not is_pipeline(self.settings.model):
            return None
        hook, config = self.config.hook.pytest_bsa_generate, self.config

        def generate(instance: Instance, sample_index: int) -> Any:
            return hook(instance=instance, sample_index=sample_index, config=config)

        return Pipeline(
            generate=generate,
            instances={i.id: i for i in self.instances},
            identity=pipeline_identity(
                self.settings.model, [h.function for h in _generate_impls(config)]
            ),
        )

    def instance_result(self, instance: Instance) -> InstanceResult:
        """Wait for an instance, writing a progress line now and then while the run works.

        When the run stopped itself (cost limit, circuit breaker), an instance whose samples
        the stop cut is not evaluated: it is skipped with the reason and pytest stops after it.
        """
        engine = self.engine
        future = engine.future(instance)
        while True:
            try:
                result = future.result(timeout=self.progress.interval)
                break
            except FutureTimeout:
                self.progress.emit(engine.stats)
        if engine.stopped is not None:
            self.stop(engine.stopped)
            if instance.id in engine.cut:
                pytest.skip(f"not run: {engine.stopped}")
        return result

    def stop(self, reason: str) -> None:
        """Stop pytest after the current test, with one line saying why (exit code 1)."""
        self.stop_reason = reason
        if self.pytest_session is not None and not self.pytest_session.shouldfail:
            self.pytest_session.shouldfail = f"bsa: stopped: {reason}"

    def instance_verdict(self, result: InstanceResult) -> InstanceVerdict:
        return verdict_of(result, self.settings.policy)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, TestReport, TestReport]:
        report = yield
        if isinstance(item, BsaItem) and self.stop_reason is not None:
            report.bsa_stopped = self.stop_reason  # type: ignore[attr-defined]
        refused = self._engine.resume_refused if self._engine is not None else None
        if isinstance(item, BsaItem) and self.is_worker and refused:
            report.bsa_resume_refused = refused  # type: ignore[attr-defined]
        attach = call.when == "call" or (call.when == "setup" and report.failed)
        if isinstance(item, BsaItem) and item.result is not None and attach:
            if self.is_worker:  # the result travels to the controller with the report
                report.bsa_result = item.result.model_dump(mode="json")  # type: ignore[attr-defined]
            else:
                self._record(item.result)
            # pytest's --junitxml writes the item's properties from the teardown report.
            item.user_properties.extend(self.summary.junit_properties(item.result))
        return report

    def pytest_runtest_logreport(self, report: TestReport) -> None:
        """Results (from pytest-xdist workers too) and what pytest's JUnit file needs."""
        if self.is_worker:
            return
        data = getattr(report, "bsa_result", None)
        if data is not None and self.xdist_controller:
            self._record(InstanceResult.model_validate(data))
        stopped = getattr(report, "bsa_stopped", None)
        if stopped is not None and self.stop_reason is None:
            self.stop_reason = stopped
        refused = getattr(report, "bsa_resume_refused", None)
        if refused is not None and self.resume_note is None:
            self.resume_note = refused
        nodeid = report.nodeid
        if nodeid.startswith("bsa::") and not nodeid.startswith("bsa::gate::"):
            if report.when == "setup":
                self._junit_cases.setdefault(nodeid, None)
            if report.when == "call" and hasattr(report, "wasxfail"):
                message = f"missed its criteria: {report.wasxfail}"
                self._junit_cases[nodeid] = (message, str(report.longrepr or message))

    def _record(self, result: InstanceResult) -> None:
        self.summary.add(result)
        self.config.hook.pytest_bsa_instance_done(result=result, config=self.config)

    def _evaluate(self) -> Any:
        return self.summary.evaluate(self.baseline, missing=self.missing, stopped=self.stop_reason)

    def _report_gates(self, session: pytest.Session) -> None:
        """Each gate becomes its own test report, so terminal, JUnit and exit code agree."""
        if not self.summary.results and self.stop_reason is None:
            return  # nothing selected: pytest's own "no tests ran" (exit 5) tells it
        evaluation = self._evaluate()
        if self.stop_reason is not None and session.shouldfail:
            # The line pytest prints at the end: why, and how far the run got.
            done = len(self.summary.results)
            session.shouldfail = (
                f"bsa: stopped after {done} of {self.planned} instances: {self.stop_reason}"
            )
        hook = self.config.hook
        shown = [g for g in evaluation.gates if g.kind != "instances"]
        # The instances' own reports are in; count the gates exactly so progress ends at 100%.
        session.testscollected += len(shown) - self._gates_counted
        self._gates_counted = len(shown)
        for gate in shown:
            nodeid = f"bsa::gate::{gate.name}"
            location = ("bsa", None, f"gate {gate.name}")
            if gate.advisory and gate.status == "failed":
                why = f"{REPORT_ONLY} (advisory, not enforced): {gate.sentence}"
                outcome, longrepr = "skipped", ("bsa", 0, why)
            else:
                outcome, longrepr = {
                    "passed": ("passed", None),
                    "failed": ("failed", gate.sentence),
                    "not_measurable": ("skipped", ("bsa", 0, f"not measurable: {gate.sentence}")),
                }[gate.status]
            hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
            for when in ("setup", "call", "teardown"):
                report = TestReport(
                    nodeid,
                    location,
                    {"bsa": 1, "gate": 1},
                    outcome if when == "call" else "passed",
                    longrepr if when == "call" else None,
                    when,
                    user_properties=[("bsa_gate", gate.sentence)] if when == "call" else [],
                )
                hook.pytest_runtest_logreport(report=report)
            hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)
        budget = next(g for g in evaluation.gates if g.metric == "endpoint_errors")
        if budget.status == "passed":
            # Errored instances were reported as errors; the budget allows them.
            session.testsfailed = max(0, session.testsfailed - len(evaluation.errored))

    # -- end of run ------------------------------------------------------------------------

    def answers_info(self, results: tuple[InstanceResult, ...]) -> AnswersInfo | None:
        """Where the answers came from, and what the endpoint said it served."""
        served: Counter[tuple[str | None, str | None]] = Counter()
        from_cache = 0
        for result in results:
            for sample in result.samples:
                completion = sample.completion
                if completion is not None:
                    served[completion.served_model, completion.system_fingerprint] += 1
                    from_cache += completion.cached
        scope = self._engine.scope if self._engine is not None else self.scope
        note = self._engine.resume_refused if self._engine is not None else None
        note = note or self.resume_note
        return AnswersInfo(
            mode=self.settings.answers,
            run_id=scope.run_id if scope is not None else None,
            resumed=bool(scope and scope.resumed and not note),
            note=note,
            from_cache=from_cache,
            served=tuple(
                ServedModel(model=m, system_fingerprint=f, answers=n)
                for (m, f), n in sorted(served.items(), key=lambda kv: -kv[1])
            ),
        )

    def build_report(self) -> Report:
        """The JSON report of this run (also the source of every other output)."""
        evaluation = self.summary.evaluation or self._evaluate()
        s = self.settings
        prompt_sha = (
            hashlib.sha256(s.system_prompt.encode()).hexdigest() if s.system_prompt else None
        )
        results = tuple(self.summary.results[key] for key in sorted(self.summary.results))
        totals = totals_from_results(results)
        stats = self._engine.stats if self._engine is not None else None
        retries = (stats.model.retries, stats.judge.retries) if stats else (None, None)
        totals = totals.model_copy(
            update={
                # Retries happen inside workers under pytest-xdist: unknown (None) here.
                "model": totals.model.model_copy(update={"retries": retries[0]}),
                "judge": totals.judge.model_copy(update={"retries": retries[1]}),
                "wall_seconds": round(time.monotonic() - self._clock_start, 3),
            }
        )
        if stats is not None and self.stop_reason is not None:
            # A stopped run spent money on instances it did not evaluate: count every call.
            totals = totals.model_copy(
                update={
                    role: _spent(getattr(totals, role), getattr(stats, role))
                    for role in ("model", "judge")
                }
            )
        model_served, judge_served = served_models(results)
        rubric = self.rubric
        structured = self._engine.judge.structured if self._engine else rubric.structured
        provenance = Provenance(
            dataset=DatasetInfo(
                spec=self.source.spec,
                label=self.source.label,
                sha256=self.source.sha256,
                revision=self.source.revision,
            ),
            selection=Selection(
                scenarios=s.scenarios,
                categories=s.categories,
                limit=s.limit,
                seed=s.seed,
                shard=f"{s.shard[0]}/{s.shard[1]}" if s.shard else None,
                keyword=self.config.getoption("keyword") or None,
                instances=max(self.planned, len(results)),
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
            verdict_hash=self.verdict_hash,
            git_commit=git_commit(Path(self.config.invocation_params.dir)),
            started_at=self.started_at,
            finished_at=now_iso(),
            answers=self.answers_info(results),
            system_prompt_source=s.system_prompt_source,
            judge_samples=s.judge_samples,
        )
        return Report(
            provenance=provenance,
            policy=s.policy,
            totals=totals,
            outcomes=outcome_counts(results),
            instances=results,
            baseline=self.baseline.label if self.baseline else None,
            baseline_run=BaselineSnapshot.of(self.baseline, s.policy) if self.baseline else None,
            complete=self.missing == 0 and self.stop_reason is None,
            stopped=self.stop_reason,
            judge_panel=panel_summary(results),
            judge_check=self.judge_check,
            **evaluation_fields(evaluation),
        )

    @pytest.hookimpl(trylast=True)  # after pytest's junitxml has written its file
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            return
        self._end_answers(session, exitstatus)
        measured = bool(self.summary.results) or self.stop_reason is not None
        if measured and self.summary.evaluation is None:
            self._evaluate()  # an interrupted run: its report must still say so
        self._fix_junitxml()
        hooked = self.config.pluginmanager.hook.pytest_bsa_report.get_hookimpls()
        if not measured or not (self.outputs.any or hooked):
            return
        report = self.build_report()
        self.config.hook.pytest_bsa_report(report=report, config=self.config)
        lines = write_outputs(report, self.outputs)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            for line in lines:
                reporter.write_line(line)

    def _end_answers(self, session: pytest.Session, exitstatus: int) -> None:
        """A run that evaluated everything without errors is never resumed; others may be."""
        cache = self._cache if self._cache is not None else getattr(self._engine, "cache", None)
        scope = self._engine.scope if self._engine is not None else self.scope
        if cache is None or scope is None or self.planned == 0:
            return
        errored = any(r.errors for r in self.summary.results.values())
        complete = (
            self.missing == 0
            and self.stop_reason is None
            and not errored
            and exitstatus != pytest.ExitCode.INTERRUPTED
        )
        # The run's outcome is already decided; a run record left 'running' only resumes.
        with contextlib.suppress(CacheError):
            cache.end_run(scope.run_id, complete=complete)

    def _fix_junitxml(self) -> None:
        """pytest's --junitxml: missed instances as measured misses, names with scenario and
        category, REPORT ONLY said in every suite's properties."""
        path = getattr(self.config.option, "xmlpath", None)
        if not path or not (self._junit_cases or self.settings.gate == "report"):
            return
        from pytest_bsa.reporting.pytest_junit import rewrite

        file = Path(os.path.abspath(os.path.expanduser(os.path.expandvars(path))))
        if not file.is_file():
            return
        properties = {"bsa_verdict": REPORT_ONLY} if self.settings.gate == "report" else None
        rewrite(
            file,
            self._junit_cases,
            prefix=getattr(self.config.option, "junitprefix", None),
            properties=properties,
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        evaluation = self.summary.evaluation
        if self.is_worker or evaluation is None:
            return
        terminalreporter.write_sep("=", "Beyond Safe Answers")
        for line in self.summary.table_lines():
            terminalreporter.write_line(line)
        for line in self.summary.footer_lines():
            terminalreporter.write_line(line)
        if self.scope is not None and self.scope.resumed:  # the header announced a resume
            info = self.answers_info(tuple(self.summary.results.values()))
            if info is not None:
                terminalreporter.write_line(resume_line(info), yellow=bool(info.note))
        for line in judge_terminal_lines(
            panel_summary(list(self.summary.results.values())), self.judge_check
        ):
            terminalreporter.write_line(line)
        if self.settings.gate == "report":
            misses = evaluation.advisory_misses
            why = "measured without a gate policy (--bsa-gate=report)"
            if self.judge_check is not None and self.judge_check.action == "advisory":
                why = "the judge fell short of judge.min_kappa (judge.on_short: advisory)"
            terminalreporter.write_line(
                f"{REPORT_ONLY}: {why}; {len(misses)} advisory threshold or baseline misses",
                yellow=True,
            )
            for gate in misses:
                terminalreporter.write_line(f"ADVISORY {gate.name}: {gate.sentence}", yellow=True)
        for gate in evaluation.failed_gates:
            terminalreporter.write_line(f"GATE FAILED {gate.name}: {gate.sentence}", red=True)

    def close(self) -> None:
        # Release the samples (10,000 in a full run) before pytest's final garbage collection.
        self.summary.results.clear()
        for item in self.items:
            item.result = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._simulator is not None:
            self._simulator.stop()
            self._simulator = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None


class _XdistPlan:
    """On the pytest-xdist controller (which collects nothing): how many instances will run."""

    def __init__(self, bsa: BsaSession) -> None:
        self.bsa = bsa
        self.selected: list[Instance] = []
        self.counted = False

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        wanted = {i.rsplit("::", 1)[1] for i in ids if i.startswith("bsa::")}
        self.selected = [i for i in self.bsa.instances if i.id in wanted]
        self.bsa.planned = len(self.selected)
        self.bsa.progress.total_samples = self.bsa.planned * self.bsa.settings.samples

    def pytest_runtest_logreport(self, report: TestReport) -> None:
        """xdist sets the collected count after the collection hook: add the gates once."""
        session = self.bsa.pytest_session
        if not self.counted and session is not None and self.selected:
            self.bsa.count_gates(session, self.selected)
            self.counted = True


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
        verdict_hash=_planned_verdict_hash(rubric, settings),
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
    return pre_run_check(settings, rubric, _cache_dir(settings), keys=keys)


def _spent(totals: Any, counters: Any) -> Any:
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


def _generate_impls(config: pytest.Config) -> list[Any]:
    return config.pluginmanager.hook.pytest_bsa_generate.get_hookimpls()


def _planned_verdict_hash(rubric: Rubric, settings: Settings) -> str:
    """The verdict hash the run starts with (a provider refusing structured output changes it)."""
    return verdict_hash(rubric, structured=rubric.structured, params=settings.judge_params)


def _cache_dir(settings: Settings) -> Path:
    if settings.cache_dir:
        return Path(settings.cache_dir).expanduser()
    return ds.default_cache_dir()
