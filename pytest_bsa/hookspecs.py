"""Extension points of pytest-bsa, implemented in a ``conftest.py`` or a plugin.

They are registered only when the benchmark is active (``--bsa-model``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_bsa.models import Instance, InstanceResult
    from pytest_bsa.report import Report


@pytest.hookspec(firstresult=True)
def pytest_bsa_select(instances: list[Instance], config: pytest.Config) -> list[Instance] | None:
    """Narrow or reorder the selected instances before they become tests.

    Called after ``--bsa-scenario``/``--bsa-category``/``--bsa-limit``/``--bsa-shard``. Return
    the list to use, or ``None`` to keep it. Example (``conftest.py``)::

        def pytest_bsa_select(instances, config):
            return [i for i in instances if "Query A" not in i.risk_summary]
    """


@pytest.hookspec(firstresult=True)
def pytest_bsa_generate(instance: Instance, sample_index: int, config: pytest.Config) -> Any:
    """Answer one sample with your own pipeline: used with ``--bsa-model=pipeline:NAME``.

    Called once per instance and sample (``sample_index`` 0..k-1) instead of a model endpoint:
    a plain function runs in worker threads (up to ``--bsa-concurrency`` at once), an
    ``async def`` on the run's event loop. Return the answer text (a leading ``<think>`` block
    is split off as reasoning; a bare ``</think>`` stays answer text unless
    ``--bsa-think-tags=template``), or ``pytest_bsa.Generation(answer, reasoning)`` (or a
    mapping with ``answer`` and ``reasoning``) when your chain exposes its reasoning. An
    exception is retried like an endpoint error; the cache, progress, judge, gates and reports
    work as for any model.
    Example (``conftest.py``)::

        from pytest_bsa import Generation
        from myapp.chain import support_chain

        def pytest_bsa_generate(instance, sample_index, config):
            result = support_chain.invoke({"question": instance.query})
            return Generation(answer=result["answer"], reasoning=result["plan"])
    """


def pytest_bsa_instance_done(result: InstanceResult, config: pytest.Config) -> None:
    """One instance was sampled and judged (called in the process that aggregates).

    Example: stream results to your own store::

        def pytest_bsa_instance_done(result, config):
            store.append(result.model_dump(mode="json"))
    """


def pytest_bsa_report(report: Report, config: pytest.Config) -> Any:
    """The run's report, before any file is written. Example: post it to a dashboard::

    def pytest_bsa_report(report, config):
        requests.post(DASHBOARD, json=report.model_dump(mode="json"))
    """
