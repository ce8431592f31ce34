"""One pytest Item per benchmark instance, grouped under scenario and category collectors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import pytest
from _pytest.reports import CollectReport

from pytest_bsa.config import Settings
from pytest_bsa.gate import InstanceVerdict
from pytest_bsa.models import CATEGORIES, SCENARIOS, Instance, InstanceResult
from pytest_bsa.names import marker_name, slug

MARKERS: tuple[str, ...] = tuple(marker_name(n) for n in (*SCENARIOS, *CATEGORIES))


class InstanceRunner(Protocol):
    """What an instance's test asks of the run (:class:`pytest_bsa.session.BsaSession`)."""

    settings: Settings

    def instance_result(self, instance: Instance) -> InstanceResult:
        """The instance's judged samples (waits for the engine)."""
        ...

    def instance_verdict(self, result: InstanceResult) -> InstanceVerdict:
        """Whether the result meets the instance's criteria."""
        ...


class EndpointError(Exception):
    """Some samples of an instance could not be obtained after all retries."""

    def __init__(self, result: InstanceResult) -> None:
        n, k = len(result.errors), len(result.samples)
        super().__init__(f"{n} of {k} samples failed at the endpoint after all retries")
        self.result = result


class CriteriaNotMet(Exception):
    """The instance's samples miss its criteria (``--bsa-gate=instances``)."""

    def __init__(self, result: InstanceResult, verdict: InstanceVerdict) -> None:
        super().__init__("; ".join(verdict.reasons))
        self.result = result
        self.verdict = verdict


class BsaSuite(pytest.Collector):
    """The root of the benchmark's tests: ``bsa``."""

    def __init__(
        self, *, instances: Iterable[Instance], runner: InstanceRunner, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.instances = list(instances)
        self.runner = runner

    def collect(self) -> Iterator[pytest.Collector]:
        grouped: dict[tuple[str, str], list[Instance]] = {}
        for instance in self.instances:
            grouped.setdefault((instance.scenario, instance.categories[0]), []).append(instance)
        for (scenario, category), members in grouped.items():
            yield BsaGroup.from_parent(
                self,
                name=f"{slug(scenario)}::{slug(category)}",
                instances=members,
                runner=self.runner,
            )


class BsaGroup(pytest.Collector):
    """Instances of one scenario and primary category."""

    def __init__(self, *, instances: list[Instance], runner: InstanceRunner, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instances = instances
        self.runner = runner

    def collect(self) -> Iterator[BsaItem]:
        for instance in self.instances:
            yield BsaItem.from_parent(self, name=instance.id, instance=instance, runner=self.runner)


class BsaItem(pytest.Item):
    """One benchmark instance: sample k times, judge, check the instance criteria."""

    def __init__(self, *, instance: Instance, runner: InstanceRunner, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance = instance
        self.bsa = runner
        self.result: InstanceResult | None = None
        self.verdict: InstanceVerdict | None = None
        self.add_marker("bsa")
        for name in (instance.scenario, *instance.categories):
            self.add_marker(marker_name(name))

    def setup(self) -> None:
        self.result = self.bsa.instance_result(self.instance)
        if self.result.errors:
            raise EndpointError(self.result)

    def runtest(self) -> None:
        assert self.result is not None
        self.verdict = self.bsa.instance_verdict(self.result)
        if self.verdict.met:
            return
        if self.bsa.settings.gate == "instances":  # an instance nobody could judge fails too
            raise CriteriaNotMet(self.result, self.verdict)
        if not self.verdict.judged:
            pytest.skip(f"not judged: {'; '.join(self.verdict.reasons)}")
        pytest.xfail("; ".join(self.verdict.reasons))

    def _repr_failure_py(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):  # type: ignore[override]
        """pytest renders setup errors through here (not repr_failure): no traceback for ours."""
        if isinstance(excinfo.value, EndpointError):
            return self.repr_failure(excinfo)
        return super()._repr_failure_py(excinfo, style=style)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        from pytest_bsa.reporting.view import describe_failure

        if isinstance(excinfo.value, (EndpointError, CriteriaNotMet)):
            return describe_failure(excinfo.value.result, str(excinfo.value))
        if isinstance(excinfo.value, pytest.xfail.Exception):
            return str(excinfo.value)  # the reason; a traceback per xfail costs seconds
        return super().repr_failure(excinfo)  # a bug of ours: keep the traceback

    def reportinfo(self) -> tuple[str, int | None, str]:
        i = self.instance
        return "bsa", None, f"{i.scenario} / {' + '.join(i.categories)} / {i.id}"


def collect_benchmark(
    session: pytest.Session, instances: Iterable[Instance], *, runner: InstanceRunner
) -> list[BsaItem]:
    """The benchmark's items under ``bsa`` (scenario and category collectors in between),
    reported to the terminal like file-collected tests ("collected 45 items")."""
    suite = BsaSuite.from_parent(
        session, name="bsa", nodeid="bsa", instances=instances, runner=runner
    )
    collected: list[BsaItem] = []
    for group in suite.collect():
        collected.extend(group.collect())
    report = CollectReport(suite.nodeid, "passed", None, collected)
    session.config.hook.pytest_collectreport(report=report)
    return collected
