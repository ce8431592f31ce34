"""Each gate of a run as its own pytest test report, so the terminal line, pytest's JUnit file
and the exit code tell the same story; and how many such reports a run will add."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from _pytest.reports import TestReport

from pytest_bsa.config import Settings
from pytest_bsa.evaluation import RunEvaluation
from pytest_bsa.gate import GateResult, with_unjudged_ceilings
from pytest_bsa.models import Instance
from pytest_bsa.reporting.view import REPORT_ONLY


def gate_count(settings: Settings, instances: Sequence[Instance], *, baseline: bool) -> int:
    """Gate reports the run adds after the tests: thresholds (with the unjudged-rate
    ceilings of every gated group), baseline comparisons, error budget."""
    scenarios = {i.scenario for i in instances}
    categories = {c for i in instances for c in i.categories}
    compared = None
    if baseline:
        compared = {"scenario": scenarios, "category": categories}
    t = with_unjudged_ceilings(settings.policy, baseline_groups=compared)
    tables = [
        t.overall,
        *t.scenarios.values(),
        *t.categories.values(),
        *t.subcategories.values(),
    ]
    count = 1 + sum(len(m.items()) for m in tables)
    if baseline:
        cfg = settings.baseline
        sizes = {"overall": 1, "scenario": len(scenarios), "category": len(categories)}
        count += len(cfg.metrics) * sum(sizes[level] for level in cfg.levels)
    return count


def report_gates(
    session: pytest.Session,
    evaluation: RunEvaluation,
    *,
    stopped: str | None,
    done: int,
    planned: int,
    counted: int,
) -> int:
    """Report every gate of ``evaluation`` (but the instances gate: the instances are the
    tests) after the run's tests; ``counted`` gate reports were already added to pytest's
    count, which ends exact. Returns how many gates were reported."""
    if stopped is not None and session.shouldfail:
        # The line pytest prints at the end: why, and how far the run got.
        session.shouldfail = f"bsa: stopped after {done} of {planned} instances: {stopped}"
    shown = [g for g in evaluation.gates if g.kind != "instances"]
    # The instances' own reports are in; count the gates exactly so progress ends at 100%.
    session.testscollected += len(shown) - counted
    log_gate_reports(session.config.hook, shown)
    budget = next(g for g in evaluation.gates if g.metric == "endpoint_errors")
    if budget.status == "passed":
        # Errored instances were reported as errors; the budget allows them.
        session.testsfailed = max(0, session.testsfailed - len(evaluation.errored))
    return len(shown)


def log_gate_reports(hook: Any, gates: Sequence[GateResult]) -> None:
    """Send one test report per gate through pytest's reporting hooks (``bsa::gate::<name>``):
    passed, failed, or skipped when not measurable or advisory (REPORT ONLY)."""
    for gate in gates:
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
