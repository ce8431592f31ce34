"""Backoff, Retry-After, giving up, and client-side rate limits (fake clock and sleep)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_bsa.engine.ratelimit import RateLimiter
from pytest_bsa.engine.retry import RetryPolicy, call_with_retries
from pytest_bsa.engine.types import ErrorKind, TransportError


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def failing(errors: list[TransportError], result: str = "done") -> Callable[[], object]:
    """A call that raises each of ``errors`` in turn, then returns ``result``."""
    remaining = list(errors)
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if remaining:
            raise remaining.pop(0)
        return result

    call.calls = calls  # type: ignore[attr-defined]
    return call


def err(kind: ErrorKind, retry_after: float | None = None) -> TransportError:
    return TransportError(kind, f"{kind} happened", endpoint="http://h:1", retry_after=retry_after)


def run_retries(
    call: Callable[[], object], policy: RetryPolicy, **kwargs: object
) -> tuple[object, FakeTime]:
    fake = FakeTime()
    result = asyncio.run(
        call_with_retries(call, policy, sleep=fake.sleep, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]
    )
    return result, fake


def test_delays_grow_and_success_is_returned() -> None:
    seen: list[tuple[str, int, float]] = []
    call = failing([err("server"), err("timeout"), err("connection"), err("bad_response")])
    result, fake = run_retries(
        call, RetryPolicy(), on_retry=lambda e, n, d: seen.append((e.kind, n, d))
    )
    assert result == "done"
    assert len(call.calls) == 5  # type: ignore[attr-defined]
    assert [n for _, n, _ in seen] == [1, 2, 3, 4]
    assert [d for _, _, d in seen] == fake.sleeps
    assert all(a < b for a, b in itertools.pairwise(fake.sleeps))
    assert 0.5 <= fake.sleeps[0] <= 0.75


def test_without_jitter_backoff_doubles_up_to_max_delay() -> None:
    policy = RetryPolicy(max_retries=6, base_delay=1.0, max_delay=10.0, jitter=0.0)
    _, fake = run_retries(failing([err("server")] * 6), policy)
    assert fake.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=60.0, jitter=0.5)
    _, fake = run_retries(failing([err("rate_limit", retry_after=7.0)]), policy)
    assert 7.0 <= fake.sleeps[0] <= 7.0 + 0.25
    _, fake = run_retries(failing([err("rate_limit", retry_after=0.01)]), policy)
    assert fake.sleeps[0] >= 0.5  # the backoff is longer than the hint: backoff wins


def test_retry_after_beyond_max_delay_is_honoured_up_to_300_s() -> None:
    policy = RetryPolicy(max_delay=60.0)
    _, fake = run_retries(failing([err("rate_limit", retry_after=120.0)]), policy)
    assert 120.0 <= fake.sleeps[0] < 121.0
    _, fake = run_retries(failing([err("rate_limit", retry_after=3600.0)]), policy)
    assert fake.sleeps == [300.0]


def test_gives_up_after_max_retries_and_says_how_many_attempts() -> None:
    last = err("server")
    call = failing([err("server"), err("timeout"), err("rate_limit", 1.0), last])
    with pytest.raises(TransportError) as info:
        run_retries(call, RetryPolicy(max_retries=3))
    assert len(call.calls) == 4  # type: ignore[attr-defined]
    error = info.value
    assert error.kind == "server"
    assert error.endpoint == "http://h:1"
    assert "gave up after 4 attempts" in error.message
    assert error.__cause__ is last


def test_zero_retries_makes_one_attempt() -> None:
    with pytest.raises(TransportError, match="gave up after 1 attempt\\)"):
        run_retries(failing([err("connection")]), RetryPolicy(max_retries=0))


@pytest.mark.parametrize("kind", ["auth", "client"])
def test_never_retries_auth_or_client_errors(kind: ErrorKind) -> None:
    original = err(kind)
    call = failing([original])
    fake = FakeTime()
    with pytest.raises(TransportError) as info:
        asyncio.run(call_with_retries(call, RetryPolicy(), sleep=fake.sleep))  # type: ignore[arg-type]
    assert info.value is original
    assert len(call.calls) == 1  # type: ignore[attr-defined]
    assert fake.sleeps == []


def test_other_exceptions_propagate_unretried() -> None:
    calls: list[int] = []

    async def call() -> None:
        calls.append(1)
        raise KeyError("bug")

    fake = FakeTime()
    with pytest.raises(KeyError):
        asyncio.run(call_with_retries(call, RetryPolicy(), sleep=fake.sleep))
    assert calls == [1]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": -1}, {"base_delay": -1.0}, {"jitter": 1.5}],
    ids=["negative retries", "negative delay", "jitter above 1"],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@given(
    retries=st.integers(1, 12),
    base=st.floats(0.01, 5.0),
    cap=st.floats(0.1, 100.0),
    jitter=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_backoff_never_exceeds_max_delay_and_never_shrinks(
    retries: int, base: float, cap: float, jitter: float, seed: int
) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=cap, jitter=jitter)
    rng = random.Random(seed)
    delays = [policy.delay(n, None, rng) for n in range(1, retries + 1)]
    assert all(0 <= d <= cap for d in delays)
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(delays))


# -- rate limits ----------------------------------------------------------------------------


def test_no_limits_never_waits() -> None:
    fake = FakeTime()
    limiter = RateLimiter(None, None, clock=fake, sleep=fake.sleep)

    async def scenario() -> None:
        for _ in range(100):
            await limiter.acquire(10_000)

    asyncio.run(scenario())
    assert fake.sleeps == []


def test_requests_per_minute_spaces_calls() -> None:
    fake = FakeTime()
    limiter = RateLimiter(60, None, clock=fake, sleep=fake.sleep)
    admitted: list[float] = []

    async def scenario() -> None:
        for _ in range(5):
            await limiter.acquire()
            admitted.append(fake.now)

    asyncio.run(scenario())
    assert admitted == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])


def test_waiters_are_served_in_arrival_order() -> None:
    fake = FakeTime()
    limiter = RateLimiter(120, None, clock=fake, sleep=fake.sleep)
    admitted: list[tuple[int, float]] = []

    async def caller(number: int) -> None:
        await limiter.acquire()
        admitted.append((number, fake.now))

    async def scenario() -> None:
        tasks = []
        for number in range(6):
            tasks.append(asyncio.create_task(caller(number)))
            await asyncio.sleep(0)  # arrive one after another
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert [n for n, _ in admitted] == list(range(6))
    # One second's allowance (two calls) goes at once; then one call every half second.
    assert [t for _, t in admitted] == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5, 2.0])


def test_tokens_per_minute_lets_a_large_request_borrow() -> None:
    fake = FakeTime()
    limiter = RateLimiter(None, 600, clock=fake, sleep=fake.sleep)  # 10 tokens/s, burst 10

    async def scenario() -> list[float]:
        times = []
        for tokens in (30, 5, 0):
            await limiter.acquire(tokens)
            times.append(fake.now)
        return times

    # 30 tokens go at once (the bucket was full) and leave a debt of 20: the next 5 wait 2.5 s.
    # A call with no token estimate is limited by requests only, and there is no rpm limit.
    assert asyncio.run(scenario()) == pytest.approx([0.0, 2.5, 2.5])


def test_cancelled_waiter_consumes_nothing() -> None:
    fake = FakeTime()
    limiter = RateLimiter(60, None, clock=fake, sleep=fake.sleep)

    async def scenario() -> float:
        await limiter.acquire()
        stuck = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        stuck.cancel()
        await asyncio.gather(stuck, return_exceptions=True)
        await limiter.acquire()
        return fake.now

    assert asyncio.run(scenario()) == pytest.approx(1.0)  # 2.0 had the cancelled call counted


@settings(max_examples=50, deadline=None)
@given(
    rpm=st.one_of(st.none(), st.floats(1, 10_000)),
    tpm=st.floats(100, 1_000_000),
    sizes=st.lists(st.integers(0, 5000), min_size=1, max_size=30),
)
def test_admitted_tokens_never_outrun_the_bucket(
    rpm: float | None, tpm: float, sizes: list[int]
) -> None:
    fake = FakeTime()
    limiter = RateLimiter(rpm, tpm, clock=fake, sleep=fake.sleep)
    admitted: list[float] = []

    async def scenario() -> None:
        for tokens in sizes:
            await limiter.acquire(tokens)
            admitted.append(fake.now)

    asyncio.run(scenario())
    burst = max(1.0, tpm / 60.0)
    for i, when in enumerate(admitted):
        if sizes[i] > 0:  # a call without a token estimate is not held back by tpm
            assert sum(sizes[:i]) <= burst + tpm / 60.0 * when + 1e-6 * tpm
        if rpm:
            assert i <= max(1.0, rpm / 60.0) + rpm / 60.0 * when + 1e-6


def test_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rpm"):
        RateLimiter(0, None)
    with pytest.raises(ValueError, match="tpm"):
        RateLimiter(None, -5)
