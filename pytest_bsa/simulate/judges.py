"""Simulated judges of known quality, and the truth they start from.

The truth of a judge request is the label a careful judge gives it:

- for a case of the shipped calibration set (natural text without simulator markers), the
  case's expected label, found from the request's data (the text under judgement and the
  request it answers: :func:`calibration_truth`);
- otherwise, what the honest simulated judge decides (the simulator markers, else the keyword
  heuristic of :mod:`pytest_bsa.simulate.verdicts`).

A script's ``judges:`` gives a quality per judge model name (the requested ``model``, e.g.
``j1`` for ``--bsa-judge openai/j1``); other names judge honestly::

    judges:
      strong: {}                  # perfect: the truth
      noisy: {flip: 0.2}          # a wrong label on exactly 20% of the verdicts
      lenient: {toward_safe: 0.5} # half of the Unsafe answers labelled Safe
      shy: {refuse: 0.1}          # refuses 10% of the verdicts (also when asked again)
      wobbly: {unstable: 0.3}     # 30% of verdicts change between repeated asks at temperature > 0

Which verdicts a share ``p`` applies to is decided like this: the verdicts of one kind are
numbered ``j = 0, 1, 2, ...`` and verdict ``j`` is picked when ``floor((j+1)p) > floor(jp)``,
so exactly ``floor(n p)`` of the first ``n`` are picked. For calibration cases ``j`` is the
case's rank (by a hash of the seed, the judge's name, the property and the case) among the
shipped cases that send that kind of text, so the share is exact over the set and every run and
process picks the same cases; different judges pick different cases. Other requests are
numbered in the order their text first arrives (per judge, property and kind) and remembered:
a verdict is identified by what the judge is shown (request, risk, text), as the verdict cache
identifies it, so equal texts, re-asks and reruns against the same simulator get the same
verdict. A changed label is drawn
from the other labels by a hash (for Safe/Unsafe: the other one). Unstable verdicts give their
truth on even asks and another label on odd ones (``X-BSA-Judge-Replicate``), only when the
request's temperature is above 0 (absent counts as the provider's default, 1).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from math import floor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pytest_bsa.models import SAFETY_LABELS, THINK_LABELS
from pytest_bsa.simulate.chance import unit_hash
from pytest_bsa.simulate.verdicts import JudgeRequest

PROPERTIES = ("refuse", "toward_safe", "flip", "unstable")


class JudgeQuality(BaseModel):
    """How a scripted judge departs from the truth (all shares in [0, 1]; none: perfect)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flip: float = Field(0.0, ge=0, le=1)
    toward_safe: float = Field(0.0, ge=0, le=1)
    refuse: float = Field(0.0, ge=0, le=1)
    unstable: float = Field(0.0, ge=0, le=1)


def picked(j: int, share: float) -> bool:
    """Whether verdict number ``j`` is among an exact ``share`` of them."""
    return floor((j + 1) * share) > floor(j * share)


@dataclass(frozen=True)
class Truth:
    """What a careful judge says about one request, and who it is."""

    label: str
    key: str  # identifies the verdict: the calibration case or the sample, and the kind
    credit: tuple[bool, bool] | None = None  # Cognitive Shortcut: Query A, Query B
    calibration: bool = False  # a case of the shipped calibration set


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class _Case:
    key: str
    query: str
    risk_summary: str
    scenario: str
    label: str
    credit: tuple[bool, bool] | None


@cache
def _calibration_index() -> dict[str, dict[str, list[_Case]]]:
    """kind -> text under judgement -> the shipped cases sending it (non-empty texts only)."""
    from pytest_bsa.calibration import load_shipped

    index: dict[str, dict[str, list[_Case]]] = {"safety": {}, "reasoning": {}}
    for case in load_shipped().cases:
        for kind, text, label in (
            ("safety", case.answer, case.safety_label),
            ("reasoning", case.reasoning, case.reasoning_label),
        ):
            if label is None or not text.strip():
                continue
            credit = None
            if kind == "reasoning" and case.query_a is not None and case.query_b is not None:
                credit = (case.query_a, case.query_b)
            key = "\x1f".join((kind, case.scenario, case.query, case.risk_summary, text))
            cases = index[kind].setdefault(text, [])
            if all(c.key != key for c in cases):
                cases.append(
                    _Case(key, case.query, case.risk_summary, case.scenario, label, credit)
                )
    return index


def calibration_case(req: JudgeRequest) -> _Case | None:
    """The shipped case a judge request is about, or None: its text under judgement is a data
    value, and its request and risk summary are data values too (or, in a filled template
    whose slots the simulator cannot all name, JSON string literals in the request)."""
    from pytest_bsa.rubrics.untrusted import json_literal

    values = set((req.data or {}).values())
    index = _calibration_index()[req.kind]
    for value in values:
        for case in index.get(value, ()):
            parts = (case.query, case.risk_summary)
            if all(p in values or json_literal(p) in req.text for p in parts):
                return case
    return None


@cache
def _ranks(seed: int, judge: str, prop: str, kind: str, unsafe_only: bool) -> dict[str, int]:
    keys = [
        c.key
        for cases in _calibration_index()[kind].values()
        for c in cases
        if not unsafe_only or c.label == "Unsafe"
    ]
    ordered = sorted(keys, key=lambda k: unit_hash(seed, judge, prop, k))
    return {key: rank for rank, key in enumerate(ordered)}


# --------------------------------------------------------------------------- the judges


class JudgeBook:
    """The scripted judges of one simulator: their qualities and the verdicts they gave."""

    def __init__(self, qualities: Mapping[str, JudgeQuality], seed: int) -> None:
        self.qualities = dict(qualities)
        self.seed = seed
        self._lock = threading.Lock()
        self._numbers: dict[tuple[str, str, str], dict[str, int]] = {}

    def quality(self, judge: str) -> JudgeQuality | None:
        return self.qualities.get(judge)

    def _number(self, judge: str, prop: str, kind: str, key: str) -> int:
        with self._lock:
            numbers = self._numbers.setdefault((judge, prop, kind), {})
            return numbers.setdefault(key, len(numbers))

    def _picked(self, judge: str, prop: str, req: JudgeRequest, truth: Truth, share: float) -> bool:
        if share <= 0:
            return False
        if share >= 1:
            return True
        if truth.calibration:
            unsafe_only = prop == "toward_safe"
            ranks = _ranks(self.seed, judge, prop, req.kind, unsafe_only)
            return picked(ranks[truth.key], share)
        return picked(self._number(judge, prop, req.kind, truth.key), share)

    def decide(
        self, judge: str, req: JudgeRequest, truth: Truth, *, replicate: int, temperature: float
    ) -> tuple[str | None, tuple[bool, bool] | None]:
        """(label, credit) the judge ``judge`` gives; label None means it refuses."""
        quality = self.qualities.get(judge, JudgeQuality())
        labels = SAFETY_LABELS if req.kind == "safety" else THINK_LABELS[req.scenario]
        if self._picked(judge, "refuse", req, truth, quality.refuse):
            return None, None
        label, credit = truth.label, truth.credit
        lenient = req.kind == "safety" and label == "Unsafe"
        if lenient and self._picked(judge, "toward_safe", req, truth, quality.toward_safe):
            label = "Safe"
        if self._picked(judge, "flip", req, truth, quality.flip):
            label = self._other(judge, label, labels, truth.key)
        wobbles = temperature > 0 and replicate % 2 == 1
        if wobbles and self._picked(judge, "unstable", req, truth, quality.unstable):
            label = self._other(judge, label, labels, truth.key + "\x1freplicate")
        if label != truth.label:
            credit = None
        return label, credit

    def _other(self, judge: str, label: str, labels: tuple[str, ...], key: str) -> str:
        others = [x for x in labels if x != label]
        return others[int(unit_hash(self.seed, judge, "other", key) * len(others))]


def truth_of(req: JudgeRequest, honest: tuple[str, str]) -> Truth:
    """The truth of a request: its calibration case's label, else the honest verdict. A verdict
    is identified by what the judge is shown (like the verdict cache), never by which sample
    it came from: equal texts get equal verdicts."""
    case = calibration_case(req)
    if case is not None:
        return Truth(case.label, case.key, case.credit, calibration=True)
    shown = sorted(req.data.values()) if req.data else [req.text]
    key = "\x1f".join((req.kind, req.scenario, *shown))
    return Truth(honest[0], key)


def temperature_of(body: Mapping[str, Any]) -> float:
    """The request's temperature (absent: the provider's default, taken as 1)."""
    value = body.get("temperature")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 1.0
    return float(value)
