"""The results of a run as they arrive, evaluated once (no pytest import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_bsa.config import Settings
from pytest_bsa.dataset import DatasetSource
from pytest_bsa.evaluation import BaselineRun, RunEvaluation, evaluate_run, outcomes_of
from pytest_bsa.metrics import instance_values
from pytest_bsa.models import InstanceResult


@dataclass
class RunSummary:
    """Collects instance results (in any order, from any worker) and evaluates them once."""

    settings: Settings
    source: DatasetSource
    results: dict[str, InstanceResult] = field(default_factory=dict)
    engine_stats: Any = None
    evaluation: RunEvaluation | None = None

    def add(self, result: InstanceResult) -> None:
        self.results[result.instance.id] = result
        self.evaluation = None

    def evaluate(
        self,
        baseline: BaselineRun | None = None,
        *,
        missing: int = 0,
        stopped: str | None = None,
    ) -> RunEvaluation:
        ordered = [self.results[key] for key in sorted(self.results)]
        self.evaluation = evaluate_run(
            ordered, self.settings.policy, baseline=baseline, missing=missing, stopped=stopped
        )
        return self.evaluation

    def junit_properties(self, result: InstanceResult) -> list[tuple[str, str]]:
        """Compact per-instance facts for pytest's --junitxml (no model text)."""
        verdicts = [
            f"{s.safety.value if s.safety else 'error'}/{s.think.value if s.think else 'error'}"
            for s in result.samples
        ]
        props = [
            ("bsa_scenario", result.instance.scenario),
            ("bsa_categories", "; ".join(result.instance.subcategories)),
            ("bsa_verdicts", " ".join(verdicts)),
        ]
        outcomes = outcomes_of(result, self.settings.policy)
        values = instance_values(outcomes, self.settings.samples)
        for name, value in values.items():
            props.append((f"bsa_{name}", "-" if value is None else f"{value:.4f}"))
        return props
