"""The per-run object: owns settings, selection and engine, collects results, runs the gates.

Registered as a plugin by :mod:`pytest_bsa.plugin` only when the benchmark is active. Results
reach it through ``pytest_runtest_logreport``, so the same code aggregates a single process and
the controller of a pytest-xdist run (whose workers send their reports over).
"""

from __future__ import annotations

import hashlib
import time
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
)
from pytest_bsa.engine.pipeline import Pipeline, check_pipeline, is_pipeline, pipeline_identity
from pytest_bsa.evaluation import BaselineRun, verdict_of
from pytest_bsa.gate import InstanceVerdict, with_unjudged_ceilings
from pytest_bsa.items import MARKERS, BsaItem, BsaSuite
from pytest_bsa.models import Instance, InstanceResult
from pytest_bsa.report import (
    DatasetInfo,
    Endpoint,
    Provenance,
    Report,
    ReportError,
    RubricInfo,
    Selection,
    evaluation_fields,
    git_commit,
    now_iso,
    outcome_counts,
    served_models,
    totals_from_results,
)
from pytest_bsa.reporting.outputs import Outputs, endpoint_host, scrub_params, write_outputs
from pytest_bsa.reporting.progress import Progress
from pytest_bsa.rubrics import Rubric, RubricError, describe_rubric, load_rubric, verdict_hash
from pytest_bsa.rubrics.bsa import BSA_RUBRIC
from pytest_bsa.run_summary import RunSummary

_CLI_OPTIONS = {
    "model": "bsa_model",
    "api_base": "bsa_api_base",
    "api_key_env": "bsa_api_key_env",
    "judge": "bsa_judge",
    "judge_api_base": "bsa_judge_api_base",
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
    "cache_dir": "bsa_cache_dir",
    "cache": "bsa_cache",
    "simulate_script": "bsa_simulate_script",
    "gate_on": "bsa_gate_on",
    "hidden_reasoning": "bsa_hidden_reasoning",
    "baseline_path": "bsa_baseline",
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
}
_INI_OPTIONS = ("model", "judge", "dataset", "samples", "cache_dir")


def _read_layers(config: pytest.Config) -> tuple[dict[str, Any], FileConfig | None, str | None]:
    """CLI values, with ini values filling the gaps, and the config file."""
    values: dict[str, Any] = {key: config.getoption(opt) for key, opt in _CLI_OPTIONS.items()}
    for key in _INI_OPTIONS:
        if values.get(key) is None and (ini := config.getini(f"bsa_{key}")):
            values[key] = int(ini) if key == "samples" else ini
    values["scenarios"] = tuple(values["scenarios"] or ())
    values["categories"] = tuple(values["categories"] or ())
    values["params"] = dict(parse_param(p) for p in config.getoption("bsa_param") or ())
    values["prices"] = dict(parse_price(p) for p in config.getoption("bsa_price") or ())
    config_path = config.getoption("bsa_config") or config.getini("bsa_config") or None
    if config_path:
        path = Path(config_path).expanduser()
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        values["config_path"] = str(path)
        return values, load_file_config(path), str(path)
    found = load_pyproject_table(config.rootpath)
    if found is None:
        return values, None, None
    return values, found[0], found[1]


class BsaSession:
    """State of one benchmark run in this process."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        source: ds.DatasetSource,
        instances: list[Instance],
        config_source: str | None,
        rubric: Rubric = BSA_RUBRIC,
    ) -> None:
        self.config = config
        self.settings = settings
        self.source = source
        self.rubric = rubric
        self.instances = instances
        self.config_source = config_source
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

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> BsaSession:
        try:
            cli, file_config, config_source = _read_layers(config)
            settings = build_settings(cli, file_config, base_dir=Path(config.invocation_params.dir))
            check_pipeline(settings, implemented=bool(_generate_impls(config)))
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
        except (ConfigError, ds.DatasetError, ReportError, RubricError) as exc:
            raise pytest.UsageError(f"pytest-bsa: {exc}") from None
        for marker in ("bsa", *MARKERS):
            config.addinivalue_line("markers", f"{marker}: pytest-bsa benchmark instance")
        bsa = cls(config, settings, source, instances, config_source, rubric)
        bsa.baseline = baseline
        if bsa.xdist_controller:
            config.pluginmanager.register(_XdistPlan(bsa), "bsa-xdist-plan")
        return bsa

    # -- header and collection -------------------------------------------------------------

    def header_lines(self) -> list[str]:
        s = self.settings
        sha = self.source.sha256[:12]
        judge = s.judge + (f" @ {endpoint_host(s.judge_api_base)}" if s.judge_api_base else "")
        model = s.model + (f" @ {endpoint_host(s.api_base)}" if s.api_base else "")
        lines = [
            f"bsa: model {model} | judge {judge}",
            f"bsa: dataset {self.source.label} sha256 {sha}… | {len(self.instances)} instances "
            f"selected x {s.samples} samples | seed {s.seed} | gate {s.gate}",
        ]
        lines.append(
            f"bsa: rubric {describe_rubric(self.rubric)} | verdict hash {self.verdict_hash}"
        )
        if self.config_source:
            lines.append(f"bsa: config {self.config_source}")
        impls = _generate_impls(self.config)
        if is_pipeline(s.model):
            where = ", ".join(sorted({h.plugin_name for h in impls}))
            lines.append(f"bsa: {s.model} answers through pytest_bsa_generate in {where}")
        elif impls:
            lines.append(
                "bsa: pytest_bsa_generate is implemented but unused: the model under test is "
                f"{s.model} (pass --bsa-model=pipeline:NAME to use it)"
            )
        return lines

    @property
    def verdict_hash(self) -> str:
        """What shapes this run's verdicts, hashed (the engine's, once it runs)."""
        if self._engine is not None:
            return str(self._engine.judge.verdict_hash)
        return _planned_verdict_hash(self.rubric, self.settings)

    @pytest.hookimpl
    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        """Without path arguments, a benchmark run collects only the benchmark."""
        if config.args_source is not pytest.Config.ArgsSource.ARGS:
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

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.is_worker or reporter is None:
            return
        n = sum(isinstance(i, BsaItem) for i in session.items)
        k = self.settings.samples
        reporter.write_line(
            f"bsa: {n} instances x {k} samples = {n * k} model calls and about {2 * n * k} "
            "judge calls (fewer with cache hits, more if the judge must be re-asked)"
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
                # The gate reports come after the tests: count them so progress ends at 100%.
                session.testscollected += self.gate_count(selected)
        result = yield
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
                    self.settings, _cache_dir(self.settings), self.rubric, self._pipeline()
                )
            except EndpointUnreachable as exc:
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
        """Wait for an instance, writing a progress line now and then while the run works."""
        future = self.engine.future(instance)
        while True:
            try:
                return future.result(timeout=self.progress.interval)
            except FutureTimeout:
                self.progress.emit(self.engine.stats)

    def instance_verdict(self, result: InstanceResult) -> InstanceVerdict:
        return verdict_of(result, self.settings.policy)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, TestReport, TestReport]:
        report = yield
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
        """On the pytest-xdist controller: the workers' results arrive with their reports."""
        data = getattr(report, "bsa_result", None)
        if data is not None and not self.is_worker:
            self._record(InstanceResult.model_validate(data))

    def _record(self, result: InstanceResult) -> None:
        self.summary.add(result)
        self.config.hook.pytest_bsa_instance_done(result=result, config=self.config)

    def _report_gates(self, session: pytest.Session) -> None:
        """Each gate becomes its own test report, so terminal, JUnit and exit code agree."""
        if not self.summary.results:
            return  # nothing selected: pytest's own "no tests ran" (exit 5) tells it
        evaluation = self.summary.evaluate(self.baseline, missing=self.missing)
        hook = self.config.hook
        for gate in evaluation.gates:
            if gate.kind == "instances":
                continue  # the failing instances already failed as tests
            nodeid = f"bsa::gate::{gate.name}"
            location = ("bsa", None, f"gate {gate.name}")
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

    def build_report(self) -> Report:
        """The JSON report of this run (also the source of every other output)."""
        evaluation = self.summary.evaluation or self.summary.evaluate(
            self.baseline, missing=self.missing
        )
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
                model=s.judge, host=endpoint_host(s.judge_api_base), served=judge_served
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
        )
        return Report(
            provenance=provenance,
            policy=s.policy,
            totals=totals,
            outcomes=outcome_counts(results),
            instances=results,
            baseline=self.baseline.label if self.baseline else None,
            complete=self.missing == 0,
            **evaluation_fields(evaluation),
        )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        hooked = self.config.pluginmanager.hook.pytest_bsa_report.get_hookimpls()
        if self.is_worker or not self.summary.results or not (self.outputs.any or hooked):
            return
        report = self.build_report()
        self.config.hook.pytest_bsa_report(report=report, config=self.config)
        lines = write_outputs(report, self.outputs)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            for line in lines:
                reporter.write_line(line)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        evaluation = self.summary.evaluation
        if self.is_worker or evaluation is None:
            return
        terminalreporter.write_sep("=", "Beyond Safe Answers")
        for line in self.summary.table_lines():
            terminalreporter.write_line(line)
        for line in self.summary.footer_lines():
            terminalreporter.write_line(line)
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
            session.testscollected += self.bsa.gate_count(self.selected)
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
        judge_model=settings.judge,
        rubric_version=rubric.name,
        samples=settings.samples,
        verdict_hash=_planned_verdict_hash(rubric, settings),
        allow_mismatch=config.getoption("bsa_baseline_allow_mismatch"),
    )
    return run


def _generate_impls(config: pytest.Config) -> list[Any]:
    return config.pluginmanager.hook.pytest_bsa_generate.get_hookimpls()


def _planned_verdict_hash(rubric: Rubric, settings: Settings) -> str:
    """The verdict hash the run starts with (a provider refusing structured output changes it)."""
    return verdict_hash(rubric, structured=rubric.structured, params=settings.judge_params)


def _cache_dir(settings: Settings) -> Path:
    if settings.cache_dir:
        return Path(settings.cache_dir).expanduser()
    return ds.default_cache_dir()
