"""Judging known model outputs with the run's engine (judge-check, rejudge): no model calls.

:func:`judge_only_engine` builds the same engine a run uses (transports, retries, the verdict
cache, judge panels and repeated asks) with a model transport that refuses every call, and
:func:`judge_outputs` sends it ``(instance, completion)`` pairs and collects the results.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pytest_bsa.config import Settings
from pytest_bsa.models import Completion, Instance, SampleResult
from pytest_bsa.rubrics import Rubric

JUDGE_ONLY_MODEL = "none"  # the model of a judge-only engine: never called


class JudgingError(ValueError):
    """The judge cannot be reached or set up; the message names the fix."""


def judge_settings(settings: Settings) -> Settings:
    """``settings`` with the model under test removed: only the judge's keys are chosen. Batch
    mode (a run's ``--bsa-batch``/``batch:``) does not apply: the judge is called directly."""
    return settings.model_copy(
        update={"model": JUDGE_ONLY_MODEL, "api_base": None, "api_key_env": None, "batch": "off"}
    )


@contextlib.contextmanager
def judge_only_engine(
    settings: Settings, rubric: Rubric, cache_dir: Path, *, keys: Any = None
) -> Iterator[Any]:
    """The run's engine with the judge of ``settings`` and no model (closed on exit)."""
    from pytest_bsa.engine.build import EndpointUnreachable, build_engine, key_choices
    from pytest_bsa.engine.cache import CacheError
    from pytest_bsa.engine.keys import MissingKey

    settings = judge_settings(settings)
    try:
        keys = keys if keys is not None else key_choices(settings)
        engine, simulator = build_engine(
            settings, cache_dir, keys=keys, rubric=rubric, judge_only=True
        )
    except (EndpointUnreachable, CacheError, MissingKey) as exc:
        raise JudgingError(str(exc)) from None
    try:
        yield engine
    finally:
        engine.close()
        if engine.cache is not None:
            engine.cache.close()
        if simulator is not None:
            simulator.stop()


def judge_outputs(
    engine: Any, items: Sequence[tuple[Instance, Completion, int]]
) -> list[SampleResult]:
    """Judge every ``(instance, completion, sample index)`` (concurrently, in order)."""
    futures = [
        engine.judge_output(instance, completion, index) for instance, completion, index in items
    ]
    return [future.result() for future in futures]
