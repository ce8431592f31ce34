"""A report without model output, for artifacts others can download (pure).

Answers and reasoning are emptied; verdicts, labels, judge explanations, reasoning states, usage
and metrics stay, so the redacted report still re-gates, merges and serves as a baseline.
"""

from __future__ import annotations

from pytest_bsa.models import InstanceResult
from pytest_bsa.report import Report


def _redacted(result: InstanceResult) -> InstanceResult:
    samples = tuple(
        s
        if s.completion is None
        else s.model_copy(
            update={"completion": s.completion.model_copy(update={"answer": "", "reasoning": None})}
        )
        for s in result.samples
    )
    return result.model_copy(update={"samples": samples})


def redact_model_outputs(report: Report) -> Report:
    """``report`` with every model answer and reasoning trace removed, marked ``redacted``."""
    return report.model_copy(
        update={"instances": tuple(_redacted(r) for r in report.instances), "redacted": True}
    )
