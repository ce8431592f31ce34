"""A failing endpoint fails fast, once: final results, backpressure, the circuit breaker."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import Row, read_json, run_bsa, write_rows

from pytest_bsa.engine.retry import RetryPolicy
from pytest_bsa.engine.runner import Engine
from pytest_bsa.engine.types import ChatRequest, RequestSpec, TransportError
from pytest_bsa.models import Completion, Instance, Label
from pytest_bsa.simulate import Behaviour, Fault, Script

FAST = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.01, jitter=0.0)


def instance(i: int) -> Instance:
    return Instance(
        id=f"i{i:02d}",
        query=f"A neutral question {i}.",
        risk_summary="A described risk.",
        scenario="Risk Omission",
        labels=(Label(category="Rumors", subcategory="Other"),),
    )


class Dead:
    """Answers every request with a server error; counts the requests per sample."""

    def __init__(self) -> None:
        self.per_sample: Counter[tuple[str, str]] = Counter()

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        self.per_sample[request.headers["X-BSA-Instance"], request.headers["X-BSA-Sample"]] += 1
        raise TransportError("server", "HTTP 500", endpoint="http://dead:1", status=500)

    async def aclose(self) -> None:
        return None


def engine(transport, **kwargs) -> Engine:
    return Engine(
        model=RequestSpec("m", "http://dead:1/v1", {}),
        judge_spec=RequestSpec("j", None, {}),
        model_transport=transport,
        judge_transport=transport,
        samples=kwargs.pop("samples", 5),
        system_prompt=None,
        concurrency=kwargs.pop("concurrency", 4),
        timeout=5,
        retry=kwargs.pop("retry", FAST),
        **kwargs,
    )


def test_an_errored_instance_is_final_for_the_run() -> None:
    dead = Dead()
    run = engine(dead, samples=2)
    try:
        first = run.result(instance(0), timeout=30)
        again = run.result(instance(0), timeout=30)  # e.g. its test rerun
    finally:
        run.close()
    assert len(first.errors) == 2
    assert again is first
    assert set(dead.per_sample.values()) == {1 + FAST.max_retries}


def test_the_breaker_stops_the_run_and_backpressure_spares_the_endpoint() -> None:
    dead = Dead()
    run = engine(dead, breaker=3, concurrency=4)
    instances = [instance(i) for i in range(30)]
    try:
        run.submit(instances)
        results = [run.result(i, timeout=60) for i in instances]
    finally:
        run.close()
    assert run.stopped is not None
    assert "failed 3 calls in a row after all retries (circuit breaker, --bsa-breaker 3)" in (
        run.stopped
    )
    assert max(dead.per_sample.values()) <= 1 + FAST.max_retries
    # At most two concurrency windows of calls went out with their retries, not 150 samples.
    assert len(dead.per_sample) <= 2 * 4 - 1
    cut = [r for r in results if any(e.startswith("client: not run: ") for e in r.errors)]
    assert len(cut) >= 25
    assert run.cut >= {r.instance.id for r in cut}


class Flaky:
    """Fails the first ``n`` attempts of the whole run, then answers."""

    def __init__(self, n: int) -> None:
        self.left = n

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        if self.left > 0:
            self.left -= 1
            raise TransportError("server", "HTTP 503", status=503)
        return Completion(answer='{"explanation": "ok", "label": "Safe"}')

    async def aclose(self) -> None:
        return None


def test_a_blip_shorter_than_the_retries_stops_nothing() -> None:
    run = engine(Flaky(6), breaker=2, concurrency=4, samples=2)
    try:
        results = [run.result(instance(i), timeout=60) for i in range(6)]
    finally:
        run.close()
    assert run.stopped is None
    assert not any(r.errors for r in results)


# -- end to end: the acceptance case, at the default settings ---------------------------------

THIRTY = tuple(
    Row(f"dead-{i:02d}", "Risk Omission", ("Rumors-Fabricated News",)) for i in range(30)
)


def test_an_endpoint_answering_500_to_everything_stops_the_run_once(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    """30 instances x 5 samples, default retries, concurrency and breaker (about 40 s of
    backoff; the time is measured in benchmarks/README.md, never asserted here)."""
    sim = simulator(Script(default=Behaviour(), faults=(Fault(kind="server_error", status=500),)))
    result = run_bsa(
        pytester, f"--bsa-dataset={write_rows(pytester, THIRTY)}", "--bsa-report=r.json",
        cache_dir=cache_dir, sim=sim,
    )  # fmt: skip
    assert result.ret == 1
    stats = sim.stats()
    per_sample = [roles["model"] for s in stats["samples"].values() for roles in s.values()]
    assert max(per_sample) <= 1 + 6  # no sample asked more than 1 + max_retries times
    # Backpressure: samples stop being started once a window of attempts failed in a row (the
    # 16 in flight, and the few that took a freed slot before the streak was complete).
    assert len(per_sample) <= 2 * 16 - 1 < 30 * 5
    assert stats["roles"]["judge"]["requests"] == 0
    # One line says why the run stopped and how far it got; one gate fails with it.
    stop = [line for line in result.outlines if line.startswith("!")]
    assert len(stop) == 1
    assert re.search(
        r"bsa: stopped after \d+ of 30 instances: the model endpoint http://127\.0\.0\.1:\d+ "
        r"failed 5 calls in a row after all retries \(circuit breaker, --bsa-breaker 5\)",
        stop[0],
    )
    result.stdout.fnmatch_lines(
        ["GATE FAILED overall::completeness: * instances were not evaluated (the run stopped: *"]
    )
    assert "not run" not in result.stdout.str()
    data = read_json(pytester.path / "r.json")
    assert data["complete"] is False and "circuit breaker" in data["stopped"]
    assert data["exit_code"] == 1
