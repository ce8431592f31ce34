"""The per-run object: owns the plan and the engine, collects results, runs the gates.

Registered as a plugin by :mod:`pytest_bsa.plugin` only when the benchmark is active. Results
reach it through ``pytest_runtest_logreport``, so the same code aggregates a single process and
the controller of a pytest-xdist run (whose workers send their reports over). Each job it hands
on has its module: run_plan, run_records, header, gate_reports, xdist_plan, run_report.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pytest
from _pytest.reports import TestReport

from pytest_bsa.engine.forecast import estimate_for, forecast_lines
from pytest_bsa.engine.scope import AnswerScope
from pytest_bsa.evaluation import verdict_of
from pytest_bsa.gate import InstanceVerdict
from pytest_bsa.gate_reports import gate_count, report_gates
from pytest_bsa.header import calls_line, header_lines
from pytest_bsa.items import MARKERS, BsaItem, collect_benchmark
from pytest_bsa.layers import model_on_command_line
from pytest_bsa.models import Instance, InstanceResult
from pytest_bsa.report import Report, now_iso
from pytest_bsa.reporting.outputs import Outputs, write_outputs
from pytest_bsa.reporting.progress import Progress
from pytest_bsa.reporting.pytest_junit import JunitCases
from pytest_bsa.rubrics import describe_rubric
from pytest_bsa.run_plan import (
    RunPlan,
    cache_dir,
    generate_impls,
    hook_pipeline,
    plan_run,
    planned_verdict_hash,
    start_run,
    usage_errors,
)
from pytest_bsa.run_records import RunRecords
from pytest_bsa.run_report import build_report
from pytest_bsa.run_summary import RunSummary
from pytest_bsa.xdist_plan import XdistPlan


class BsaSession:
    """State of one benchmark run in this process."""

    def __init__(self, config: pytest.Config, plan: RunPlan) -> None:
        self.config = config
        self.settings = settings = plan.settings
        self.source = plan.source
        self.rubric = plan.rubric
        self.instances = plan.instances
        self.config_sources = plan.config_sources
        self.keys = plan.keys
        self.baseline = plan.baseline
        self.judge_check = plan.judge_check  # the judge check before the run, if one ran
        self.benchmark_only = model_on_command_line(config)
        self.records = RunRecords()  # the model answers this run may reuse, its run record
        self.stop_reason: str | None = None  # why the run stopped itself
        self._gates_counted = 0  # gate reports already added to pytest's collected count
        self.junit_cases = JunitCases()  # what pytest's --junitxml file must say of each
        self.is_worker = hasattr(config, "workerinput")
        self.xdist_controller = bool(getattr(config.option, "numprocesses", None)) and (
            not self.is_worker
        )
        self.planned = 0  # instances selected to run; known once collection is done
        self.summary = RunSummary(settings=settings, source=plan.source)
        self._engine: Any = None
        self._simulator: Any = None
        self.outputs = Outputs.from_options(config)
        self.progress = Progress.for_config(config, len(plan.instances) * settings.samples)
        self.started_at = now_iso()
        self._clock_start = time.monotonic()
        self.items: list[BsaItem] = []
        self.pytest_session: pytest.Session | None = None
        self.report: Report | None = None  # the run's report, built once the run is over

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> BsaSession:
        """Validate everything before the first call: a bad value is a usage error (exit 4)."""
        plan = plan_run(config)
        for marker in ("bsa", *MARKERS):
            config.addinivalue_line("markers", f"{marker}: pytest-bsa benchmark instance")
        bsa = cls(config, plan)
        if not config.option.collectonly:
            bsa.begin_answers()
        if bsa.xdist_controller:
            config.pluginmanager.register(XdistPlan(bsa), "bsa-xdist-plan")
        return bsa

    def begin_answers(self) -> None:
        """Decide which stored model answers this run may use (see ``AnswerScope``)."""
        with usage_errors():
            worker = getattr(self.config, "workerinput", None)
            self.records = RunRecords.begin(self.settings, worker)

    @property
    def scope(self) -> AnswerScope | None:
        return self.records.scope

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: every worker samples in the run scope the controller chose."""
        if self.scope is not None:
            node.workerinput["bsa_scope"] = self.scope.as_dict()
        if self.judge_check is not None:
            node.workerinput["bsa_judge_check"] = self.judge_check.model_dump(mode="json")

    # -- header and collection -------------------------------------------------------------

    def header_lines(self) -> list[str]:
        lines = header_lines(
            self.settings,
            self.source,
            selected=len(self.instances),
            config_sources=self.config_sources,
            rubric=describe_rubric(self.rubric),
            verdict_hash=self.verdict_hash,
            generate_plugins=[h.plugin_name for h in generate_impls(self.config)],
            keys=self.keys,
            scope=self.scope,
            benchmark_only=self.benchmark_only,
            judge_check=self.judge_check,
        )
        estimated = None if self.config.option.collectonly else self.instances  # see *_finish
        where = cache_dir(self.settings)
        return lines + forecast_lines(self.settings, where, self.scope, estimated, self.rubric)

    @property
    def verdict_hash(self) -> str:
        """What shapes this run's verdicts, hashed (the engine's, once it runs)."""
        if self._engine is not None:
            return str(self._engine.judge.verdict_hash)
        return planned_verdict_hash(self.rubric, self.settings)

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
        self.items = collect_benchmark(session, self.instances, runner=self)
        items.extend(self.items)

    def count_gates(self, session: pytest.Session, instances: list[Instance]) -> None:
        """Add the expected gate reports to pytest's count, so progress ends at 100%."""
        self._gates_counted = gate_count(
            self.settings, instances, baseline=self.baseline is not None
        )
        session.testscollected += self._gates_counted

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if not self.is_worker and reporter is not None:
            collected = [i.instance for i in session.items if isinstance(i, BsaItem)]
            lines = [calls_line(len(collected), self.settings)]
            if self.config.option.collectonly and collected:  # the header gave no estimate
                where = cache_dir(self.settings)
                lines += estimate_for(self.settings, collected, where, self.rubric).lines()
            for line in lines:
                reporter.write_line(line)

    # -- running ---------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.pytest_session = session

    @pytest.hookimpl(wrapper=True, trylast=True)  # innermost: gates before the terminal's 100%
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        if session.config.option.collectonly:
            return (yield)
        if self.xdist_controller:  # the workers collect: the selection before -k decides
            start_run(self.settings, self.records, self.instances, self.rubric)
        if not self.is_worker and not self.xdist_controller:
            selected = [i.instance for i in session.items if isinstance(i, BsaItem)]
            start_run(self.settings, self.records, selected, self.rubric)
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

            with usage_errors(EndpointUnreachable):
                self._engine, self._simulator = build_engine(
                    self.settings,
                    cache_dir(self.settings),
                    keys=self.keys,
                    cache=self.records.cache,
                    scope=self.scope,
                    rubric=self.rubric,
                    pipeline=hook_pipeline(self.config, self.settings.model, self.instances),
                )
            self.summary.engine_stats = self._engine.stats
        return self._engine

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
                for line in engine.batch_lines():
                    self.progress.write(line)
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
        if isinstance(item, BsaItem) and self.is_worker and self._engine is not None:
            report.bsa_resume_refused = self._engine.resume_refused  # type: ignore[attr-defined]
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
        self.junit_cases.note(report)

    def _record(self, result: InstanceResult) -> None:
        self.summary.add(result)
        self.config.hook.pytest_bsa_instance_done(result=result, config=self.config)

    def _evaluate(self) -> Any:
        return self.summary.evaluate(self.baseline, missing=self.missing, stopped=self.stop_reason)

    def _report_gates(self, session: pytest.Session) -> None:
        """Each gate becomes its own test report, so terminal, JUnit and exit code agree."""
        if not self.summary.results and self.stop_reason is None:
            return  # nothing selected: pytest's own "no tests ran" (exit 5) tells it
        self._gates_counted = report_gates(
            session,
            self._evaluate(),
            stopped=self.stop_reason,
            done=len(self.summary.results),
            planned=self.planned,
            counted=self._gates_counted,
        )

    # -- end of run ------------------------------------------------------------------------

    def build_report(self) -> Report:
        """The JSON report of this run (also the source of every other output)."""
        engine = self._engine
        return build_report(
            self.settings,
            self.source,
            self.rubric,
            self.summary.results.values(),
            self.summary.evaluation or self._evaluate(),
            engine=engine,
            scope=engine.scope if engine is not None else self.scope,
            resume_note=self.records.resume_note,
            baseline=self.baseline,
            verdict_hash=self.verdict_hash,
            planned=self.planned,
            keyword=self.config.getoption("keyword") or None,
            directory=Path(self.config.invocation_params.dir),
            started_at=self.started_at,
            wall_seconds=round(time.monotonic() - self._clock_start, 3),
            stopped=self.stop_reason,
            judge_check=self.judge_check,
        )

    @pytest.hookimpl(trylast=True)  # after pytest's junitxml has written its file
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            return
        self._end_answers(exitstatus)
        measured = bool(self.summary.results) or self.stop_reason is not None
        if measured and self.summary.evaluation is None:
            self._evaluate()  # an interrupted run: its report must still say so
        self.junit_cases.fix(self.config.option, report_only=self.settings.gate == "report")
        if not measured:
            return
        report = self.report = self.build_report()
        hooked = self.config.pluginmanager.hook.pytest_bsa_report.get_hookimpls()
        if not (self.outputs.any or hooked):
            return
        self.config.hook.pytest_bsa_report(report=report, config=self.config)
        lines = write_outputs(report, self.outputs)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            for line in lines:
                reporter.write_line(line)

    def _end_answers(self, exitstatus: int) -> None:
        """A run that evaluated everything without errors is never resumed; others may be."""
        if self.planned == 0:
            return
        errored = any(r.errors for r in self.summary.results.values())
        complete = (
            self.missing == 0
            and self.stop_reason is None
            and not errored
            and exitstatus != pytest.ExitCode.INTERRUPTED
        )
        self.records.end(self._engine, complete=complete)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or self.report is None:
            return
        from pytest_bsa.reporting import terminal

        terminalreporter.write_sep("=", "Beyond Safe Answers")
        for line, colour in terminal.summary_lines(self.report, self.summary.engine_stats):
            terminalreporter.write_line(line, **({colour: True} if colour else {}))

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
        self.records.close()
