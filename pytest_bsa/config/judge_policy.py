"""The judge's own settings: ``judge:`` written as a mapping, and the judge check before a
run (``--bsa-judge-check``, ``judge.min_kappa``; pure)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pytest_bsa.config.policy import StrictModel

JudgeOnShort = Literal["refuse", "advisory"]


class JudgeSection(StrictModel):
    """``judge:`` written as a mapping: the judge model and its calibration check."""

    model: str | None = None
    check: bool | None = None  # measure the judge on labelled cases before the run
    min_kappa: float | None = Field(None, ge=-1, le=1)  # implies check
    on_short: JudgeOnShort | None = None  # refuse (exit 4) or make every gate advisory
    labels: str | None = None  # "shipped" or a labelled CSV/JSONL file


class JudgeCheckPolicy(StrictModel):
    """The judge check before a run (``--bsa-judge-check``, ``judge.min_kappa``)."""

    run: bool = False
    min_kappa: float | None = None
    on_short: JudgeOnShort = "refuse"
    labels: str = "shipped"

    @property
    def active(self) -> bool:
        """A minimum kappa is only a gate when the judge is measured: it implies the check."""
        return self.run or self.min_kappa is not None
