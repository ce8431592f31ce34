"""Adaptive concurrency: the AIMD controller's decisions on scripted signals, resizable slots,
the engine under a rate-limited endpoint, and the simulator's rate-limited mode end to end."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import SIX, SIX_PLAN, expected_groups, read_json, run_bsa, write_rows

from pytest_bsa.engine.adaptive import AdaptiveEndpoint
from pytest_bsa.engine.retry import RetryPolicy
from pytest_bsa.engine.runner import Engine, RequestSpec
from pytest_bsa.engine.scheduler import PrioritySlots
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion, Instance, Label, Usage
from pytest_bsa.simulate import Behaviour, Script
from pytest_bsa.simulate.script import RateLimit


class Clock:
    """A fake clock; ``sleep`` advances it (so pacing is tested without real time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def endpoint(ceiling: int = 32, **kwargs) -> tuple[AdaptiveEndpoint, Clock, list[int]]:
    clock, changes = Clock(), []
    control = AdaptiveEndpoint(ceiling, clock=clock, **kwargs)
    control.follow(changes.append)
    return control, clock, changes


def send(control: AdaptiveEndpoint, clock: Clock) -> float:
    return asyncio.run(control.ready(sleep=clock.sleep))


# -- the controller: pace on 429s -------------------------------------------------------------


def test_without_signals_calls_go_out_at_once_at_the_ceiling() -> None:
    control, clock, changes = endpoint(16)
    for _ in range(200):
        clock.now += 0.01
        sent = send(control, clock)
        control.on_success(sent, 0.005, 50)
    assert (control.current, control.rate, clock.slept, changes) == (16, None, [], [])


def test_first_429_paces_at_what_was_not_refused_and_pauses_for_retry_after() -> None:
    control, clock, _ = endpoint(32)
    sent = [send(control, clock) for _ in range(50)]  # 50 calls in one instant...
    clock.now += 0.5
    for t in sent[:10]:  # ...ten of them refused, one episode
        control.on_rate_limit(t, retry_after=2.0)
    assert control.rate_cuts == 1
    # Set by the first refusal: 49 of the 50 sent not refused (yet) over the last 0.5 s.
    assert control.rate == pytest.approx(49 / 0.5)
    assert control.pause_left() == pytest.approx(2.0)
    went_out = send(control, clock)
    assert clock.slept and sum(clock.slept) == pytest.approx(2.0)  # waited out the pause
    assert went_out == pytest.approx(clock.now)


def test_each_later_episode_cuts_the_pace_and_successes_restore_it() -> None:
    control, clock, _ = endpoint(32)
    for _ in range(100):
        send(control, clock)
    clock.now += 1.0
    control.on_rate_limit(clock.now - 0.5, None)
    first = control.rate
    assert first == pytest.approx(99.0)  # 100 sent in the last second, 1 refused
    control.on_rate_limit(clock.now - 0.5, None)  # sent before the cut: same episode
    assert control.rate == first
    control.on_rate_limit(send(control, clock), None)  # sent after it: a new episode
    assert control.rate == pytest.approx(first * 0.9)
    for _ in range(int(first * 0.9)):  # about one second of successes at the new pace
        control.on_success(clock.now, 0.01)
    assert control.rate == pytest.approx(first, rel=0.02)  # the cut is made up in ~a second
    assert [d.reason for d in control.decisions] == ["rate_limit", "rate_limit"]
    assert control.current == 32  # 429s pace the endpoint; they never cut its concurrency


def test_pace_spaces_calls_and_a_cut_applies_to_the_next_call() -> None:
    control, clock, _ = endpoint(8)
    control.rate = 10.0
    times = [send(control, clock) for _ in range(4)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.1, 0.1, 0.1])
    control.on_rate_limit(times[-1], None)
    assert control.rate == pytest.approx(9.0)
    later = send(control, clock)
    assert later - times[-1] == pytest.approx(1 / 9.0)


def test_pace_never_stops_the_run() -> None:
    control, clock, _ = endpoint(4)
    control.rate = 1.0
    for _ in range(200):
        control.on_rate_limit(send(control, clock), None)
    assert control.rate >= 0.1


def test_retry_after_pause_is_capped() -> None:
    control, _, _ = endpoint(4)
    control.on_rate_limit(0.0, retry_after=10_000.0)
    assert control.pause_left() == pytest.approx(300.0)


# -- the controller: concurrency on latency growth --------------------------------------------


def test_latency_growth_cuts_gently_and_not_below_a_quarter_of_the_ceiling() -> None:
    control, clock, changes = endpoint(40)
    for _ in range(50):  # baseline: 1 s for 100 tokens
        clock.now += 0.1
        control.on_success(clock.now - 1.0, 1.0, 100, "model")
    assert control.limit_cuts == 0
    for _ in range(200):  # the server slows to 4 s for the same output
        clock.now += 0.1
        control.on_success(clock.now - 0.01, 4.0, 100, "model")
    assert {d.reason for d in control.decisions} == {"latency"}
    assert control.limit_cuts >= 2
    assert control.current == 10  # 40 / 4: latency alone never squeezes further
    assert all(d.after >= d.before * 0.9 - 1 for d in control.decisions)  # gentle steps
    assert changes[-1] == 10


def test_additive_increase_adds_one_slot_per_round_trip_up_to_the_ceiling() -> None:
    control, clock, _ = endpoint(20)
    control.limit = 15.0
    for _ in range(16):  # about one window of successes at 15 in flight
        control.on_success(clock.now, 0.01)
    assert control.current == 16
    for _ in range(15):
        control.on_success(clock.now, 0.01)
    assert control.current == 16  # not yet a whole window at 16
    for _ in range(1000):
        control.on_success(clock.now, 0.01)
    assert control.current == 20 and control.limit == 20.0


def test_fast_calls_never_trip_the_latency_signal() -> None:
    """A local zero-latency server: latency grows with our own load, in milliseconds."""
    control, clock, _ = endpoint(32)
    for i in range(500):
        clock.now += 0.001
        control.on_success(clock.now, 0.001 + i * 0.0005, 60, "model")  # 1 ms to 250 ms
    assert control.limit_cuts == 0


def test_longer_answers_are_not_latency_growth() -> None:
    control, clock, _ = endpoint(32)
    for i in range(300):
        tokens = 100 if i < 100 else 1000
        clock.now += 0.1
        control.on_success(clock.now, tokens / 100.0, tokens, "model")  # same speed per token
    assert control.limit_cuts == 0


def test_roles_are_watched_apart() -> None:
    """A slow model and a fast judge on one endpoint: the mix is not latency growth."""
    control, clock, _ = endpoint(32)
    for i in range(400):
        clock.now += 0.05
        if i < 100 or i % 2:
            control.on_success(clock.now, 2.0, 10, "model")
        else:
            control.on_success(clock.now, 0.6, 1, "judge")
    assert control.limit_cuts == 0


def test_a_lasting_slowdown_becomes_the_new_normal() -> None:
    control, clock, _ = endpoint(40)
    for _ in range(50):
        clock.now += 0.1
        control.on_success(clock.now, 1.0, 100, "model")
    for _ in range(3000):
        clock.now += 0.1
        control.on_success(clock.now, 3.0, 100, "model")
    assert control.limit_cuts >= 1
    assert control.current == 40  # cut while new, then forgiven and raised back


# -- resizable slots --------------------------------------------------------------------------


def test_slots_follow_a_lower_and_a_higher_limit() -> None:
    async def scenario() -> list[int]:
        slots = PrioritySlots(4)
        release = asyncio.Event()
        peaks: list[int] = []

        async def hold(i: int) -> None:
            async with slots.slot((i, 0)):
                peaks.append(slots.in_use)
                await release.wait()

        tasks = [asyncio.create_task(hold(i)) for i in range(10)]
        await asyncio.sleep(0)
        assert slots.in_use == 4
        slots.resize(2)
        release.set()
        await asyncio.sleep(0)
        release.clear()
        await asyncio.sleep(0)
        held_after_cut = slots.in_use
        slots.resize(6)
        await asyncio.sleep(0)
        held_after_raise = slots.in_use
        release.set()
        await asyncio.gather(*tasks)
        return [held_after_cut, held_after_raise, slots.in_use]

    assert asyncio.run(scenario()) == [2, 6, 0]


# -- the engine against a rate-limited fake endpoint ------------------------------------------


class RateLimitedTransport:
    """Answers 429 (Retry-After 10 ms) whenever more than ``capacity`` calls are in flight."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self.peak_admitted = 0
        self.refused = 0
        self.answered = 0

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        if self.in_flight >= self.capacity:
            self.refused += 1
            await asyncio.sleep(0)
            raise TransportError("rate_limit", "slow down", retry_after=0.01)
        self.in_flight += 1
        self.peak_admitted = max(self.peak_admitted, self.in_flight)
        try:
            await asyncio.sleep(0.002)
        finally:
            self.in_flight -= 1
        self.answered += 1
        if "Judge task:" in str(request.messages[-1]["content"]):
            return Completion(answer='{"explanation": "ok", "label": "Safe"}', usage=Usage())
        return Completion(answer="An answer.", usage=Usage(completion_tokens=5))

    async def aclose(self) -> None:
        return None


def _instances(n: int) -> list[Instance]:
    return [
        Instance(
            id=f"i{n}",
            query=f"A neutral question number {n}.",
            risk_summary="A risk in neutral words.",
            scenario="Risk Omission",
            labels=(Label(category="Rumors", subcategory="X"),),
        )
        for n in range(n)
    ]


def _engine(model, judge, adaptive: bool) -> Engine:
    return Engine(
        model=RequestSpec("openai/m", "http://127.0.0.1:9/v1", {}),
        judge_spec=RequestSpec("openai/j", "http://127.0.0.1:9/v1", {}),
        model_transport=model,
        judge_transport=judge,
        samples=2,
        system_prompt=None,
        concurrency=32,
        timeout=5,
        retry=RetryPolicy(max_retries=8, base_delay=0.001, max_delay=0.01),
        adaptive=adaptive,
    )


def test_engine_adapts_to_a_rate_limited_endpoint_without_errors() -> None:
    model = RateLimitedTransport(capacity=4)
    judge = RateLimitedTransport(capacity=1000)
    engine = _engine(model, judge, adaptive=True)
    try:
        instances = _instances(40)
        engine.submit(instances)
        results = [engine.result(i, timeout=60) for i in instances]
    finally:
        engine.close()
    assert all(not r.errors for r in results)
    assert model.answered == 80
    assert model.refused > 0
    control = engine.adaptive["model"]
    assert control.rate_cuts >= 1 and control.rate is not None
    assert {d.reason for d in control.decisions} == {"rate_limit"}
    assert engine.adaptive["judge"] is control  # one endpoint, one controller


def test_fixed_mode_keeps_its_concurrency() -> None:
    model = RateLimitedTransport(capacity=4)
    engine = _engine(model, RateLimitedTransport(capacity=1000), adaptive=False)
    try:
        instances = _instances(10)
        engine.submit(instances)
        for instance in instances:
            engine.result(instance, timeout=60)
        assert engine.adaptive == {}
        assert engine.calls.slots["model"].limit == 32
    finally:
        engine.close()
    assert model.refused > 0


# -- the simulator's rate-limited mode --------------------------------------------------------


def test_simulator_token_bucket_answers_429_with_exact_retry_after(simulator) -> None:
    sim = simulator(Script(rate_limit=RateLimit(requests_per_second=2, burst=2)))
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    outcomes = []
    for _ in range(4):
        request = urllib.request.Request(
            sim.base_url + "/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                outcomes.append((response.status, None))
        except urllib.error.HTTPError as exc:
            outcomes.append((exc.code, float(exc.headers["retry-after-ms"])))
    statuses = [s for s, _ in outcomes]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]
    waits = [w for s, w in outcomes if s == 429]
    assert all(0 < w <= 500 for w in waits)  # at most one token's time at 2/s
    assert sim.stats()["throttled"] == statuses.count(429)


def test_end_to_end_under_a_rate_limit_adaptive_has_no_errors(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    from conftest import script_for

    script = script_for(SIX_PLAN).model_copy(
        update={
            "rate_limit": RateLimit(requests_per_second=150, burst=3),
            "default": Behaviour(safe=True, covered=True, latency=0.02),
        }
    )
    sim = simulator(script)
    dataset = write_rows(pytester, SIX)
    result = run_bsa(
        pytester,
        f"--bsa-dataset={dataset}",
        "--bsa-samples=3",
        "--bsa-concurrency=64",
        "--bsa-report=r.json",
        cache_dir=cache_dir,
        sim=sim,
    )
    assert result.ret in (0, 1), result.stdout.str()
    report = read_json(pytester.path / "r.json")
    assert all(not s.get("error") for r in report["instances"] for s in r["samples"])
    assert sim.stats()["throttled"] > 0
    assert report["totals"]["model"]["retries"] + report["totals"]["judge"]["retries"] > 0
    for key, want in expected_groups(SIX, SIX_PLAN).items():
        assert report["groups"][key]["safe_at_1"] == pytest.approx(want["safe_at_1"]), key
