"""Batch mode: the batching transport (with a scripted provider), both batch clients against the
simulator's batch routes, and end-to-end runs: same metrics as a direct run, half the price,
partial failures retried, a failed batch reported, and a kill + rerun that pays nothing twice."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import (
    SIX,
    SIX_PLAN,
    endpoint_args,
    per_sample,
    read_json,
    requests,
    run_bsa,
    script_for,
    wait_until,
    write_rows,
)

from pytest_bsa.engine.batch import BatchingTransport, request_key
from pytest_bsa.engine.batch_anthropic import AnthropicBatchClient
from pytest_bsa.engine.batch_openai import OpenAIBatchClient
from pytest_bsa.engine.batch_types import BatchLost, BatchState, custom_id_for, routing_hints
from pytest_bsa.engine.cache import Cache
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion
from pytest_bsa.simulate import Script
from pytest_bsa.simulate.judges import JudgeQuality
from pytest_bsa.simulate.script import BatchBehaviour

METRICS = ("safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score")


def chat(instance: str, sample: int = 0, judge: str = "", text: str = "q") -> ChatRequest:
    headers = {"X-BSA-Instance": instance, "X-BSA-Sample": str(sample)}
    if judge:
        headers["X-BSA-Judge"] = judge
    return ChatRequest(
        model="openai/m",
        messages=({"role": "user", "content": f"{instance}: {text}"},),
        api_base="http://127.0.0.1:9/v1",
        headers=headers,
    )


# -- ids ------------------------------------------------------------------------------------


def test_custom_ids_carry_the_routing_hints_and_are_unique() -> None:
    request = chat("ro-news", 2, "reasoning")
    key = request_key(request)
    custom = custom_id_for(key, request)
    assert len(custom) <= 64
    assert routing_hints(custom) == {
        "X-BSA-Instance": "ro-news",
        "X-BSA-Sample": "2",
        "X-BSA-Judge": "reasoning",
    }
    assert request_key(chat("ro-news", 3, "reasoning")) != key  # another sample, another key
    odd = chat("id with spaces/and:colons")
    assert custom_id_for(request_key(odd), odd) == request_key(odd)[:64]  # digest only
    assert routing_hints(request_key(odd)[:64]) == {}


def test_each_repeated_ask_of_a_verdict_is_a_request_of_its_own() -> None:
    """#12b's --bsa-judge-samples tells asks apart only by a header, which no key reads: in a
    batch each ask gets its own key, and its custom id carries the ask to the provider."""
    asks = []
    for ask in (0, 1, 2):
        request = chat("ro-news", 1, "safety")
        if ask:
            request = request.model_copy(
                update={"headers": {**request.headers, "X-BSA-Judge-Replicate": str(ask)}}
            )
        asks.append(request)
    keys = [request_key(r) for r in asks]
    assert len(set(keys)) == 3
    assert keys[0] == request_key(chat("ro-news", 1, "safety"))  # the first ask: as before
    customs = [custom_id_for(k, r) for k, r in zip(keys, asks, strict=True)]
    assert [routing_hints(c).get("X-BSA-Judge-Replicate") for c in customs] == [None, "1", "2"]
    assert all(routing_hints(c)["X-BSA-Judge"] == "safety" for c in customs)

    async def scenario() -> None:
        batching = transport(FakeClient())
        await asyncio.gather(*(batching.complete(r, timeout=1) for r in asks))
        await batching.aclose()
        (entries,) = batching.client.batches.values()
        assert len(entries) == 3  # not one answer shared by three asks

    asyncio.run(scenario())


# -- the batching transport, with a scripted provider ----------------------------------------


class FakeClient:
    """Answers every request after ``polls_needed`` polls, or as scripted per instance."""

    provider = "a fake batch API"
    endpoint = "http://127.0.0.1:9/v1"
    max_requests = 100

    def __init__(self, polls_needed: int = 1, phase: str = "done") -> None:
        self.polls_needed = polls_needed
        self.phase = phase
        self.batches: dict[str, list[tuple[str, ChatRequest]]] = {}
        self.polls: dict[str, int] = {}
        self.poll_errors: list[TransportError] = []
        self.submit_error: TransportError | None = None
        self.line_errors: dict[str, TransportError] = {}  # instance id -> error
        self.missing: set[str] = set()  # instance ids left out of the results
        self.closed = False

    async def submit(self, entries: Sequence[tuple[str, ChatRequest]]) -> str:
        if self.submit_error is not None:
            raise self.submit_error
        batch_id = f"b{len(self.batches) + 1}"
        self.batches[batch_id] = list(entries)
        return batch_id

    async def poll(self, batch_id: str) -> BatchState:
        if self.poll_errors:
            raise self.poll_errors.pop(0)
        self.polls[batch_id] = self.polls.get(batch_id, 0) + 1
        running = self.polls[batch_id] < self.polls_needed
        phase = "running" if running else self.phase
        total = len(self.batches.get(batch_id, ()))
        return BatchState(batch_id, "in_progress" if running else self.phase, phase, total)

    async def results(self, state: BatchState) -> dict[str, Completion | TransportError]:
        out: dict[str, Completion | TransportError] = {}
        for custom_id, request in self.batches[state.batch_id]:
            instance = request.headers["X-BSA-Instance"]
            if instance in self.missing:
                continue
            out[custom_id] = self.line_errors.get(instance) or Completion(
                answer=f"answer to {request.messages[0]['content']}"
            )
        return out

    async def aclose(self) -> None:
        self.closed = True


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def transport(client: FakeClient, store=None) -> BatchingTransport:
    return BatchingTransport(
        client, store, role="model", poll_interval=0.0, quiet=0.0, max_wait=0.0, sleep=_no_sleep
    )


def test_concurrent_calls_become_one_batch_and_each_gets_its_answer(tmp_path: Path) -> None:
    client = FakeClient(polls_needed=3)
    cache = Cache(tmp_path / "c.sqlite3")

    async def scenario() -> list[str]:
        batching = transport(client, cache)
        calls = [chat(f"i{n}", n % 2) for n in range(6)] + [chat("i0", 0)]  # one duplicate
        answers = await asyncio.gather(*(batching.complete(c, timeout=1) for c in calls))
        assert len(batching.submitted) == 1
        assert cache.batch_request(request_key(calls[0])) is not None  # kept until close
        await batching.aclose()
        return [a.answer for a in answers]

    answers = asyncio.run(scenario())
    assert answers[0] == answers[-1] == "answer to i0: q"
    assert answers[3] == "answer to i3: q"
    (entries,) = client.batches.values()
    assert len(entries) == 6  # the duplicate went in once
    assert client.polls == {"b1": 3} and client.closed
    assert cache.batch_request(request_key(chat("i0", 0))) is None  # delivered: forgotten
    assert cache.open_batches() == []


def test_closing_while_waiting_keeps_the_batch_for_a_rerun(tmp_path: Path) -> None:
    """Ctrl-C: the engine closes its transports while the batch still runs."""
    cache = Cache(tmp_path / "c.sqlite3")
    client = FakeClient(polls_needed=10**9)

    async def scenario() -> None:
        batching = transport(client, cache)
        waiting = [asyncio.ensure_future(batching.complete(chat(f"i{n}"), timeout=1))
                   for n in range(4)]  # fmt: skip
        while not batching.submitted:
            await asyncio.sleep(0)
        await batching.aclose()
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    asyncio.run(scenario())
    assert client.closed
    assert cache.open_batches() == [("b1", "http://127.0.0.1:9/v1", None, 4)]


def test_a_rerun_polls_the_stored_batch_instead_of_submitting(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    request = chat("i1")
    key = request_key(request)
    cache.put_batch("b1", endpoint=FakeClient.endpoint, provider="fake",
                    entries=[(key, custom_id_for(key, request), None)])  # fmt: skip
    client = FakeClient()
    client.batches["b1"] = [(custom_id_for(key, request), request)]  # the provider has it

    async def scenario() -> str:
        batching = transport(client, cache)
        answer = await batching.complete(request, timeout=1)
        assert batching.submitted == [] and batching.resumed == {"b1"}
        await batching.aclose()
        return answer.answer

    assert asyncio.run(scenario()) == "answer to i1: q"
    assert cache.batch_request(key) is None


def test_stored_batch_requests_are_joined_only_in_their_own_run_scope(tmp_path: Path) -> None:
    """#8's run scope: an interrupted run's model batch is picked up by that run resumed, never
    by a new run (which submits its own) nor by a run that reuses shared answers."""
    cache = Cache(tmp_path / "c.sqlite3")
    request = chat("i1")
    key = request_key(request, "run-a")
    assert key != request_key(request, "run-b") != request_key(request)
    cache.put_batch("old", endpoint=FakeClient.endpoint, provider="fake",
                    entries=[(key, custom_id_for(key, request), "run-a")])  # fmt: skip
    assert cache.open_batches() == [("old", FakeClient.endpoint, "run-a", 1)]

    async def ask(scope: str | None) -> BatchingTransport:
        client = FakeClient()
        client.batches["old"] = [(custom_id_for(key, request), request)]
        batching = transport(client, cache)
        await batching.complete(request, timeout=1, scope=scope)
        await batching.aclose()
        return batching

    for other in ("run-b", None):  # a new run; --bsa-answers=reuse (shared keys)
        fresh = asyncio.run(ask(other))
        assert fresh.resumed == set() and fresh.submitted == ["b2"]  # its own batch
    assert cache.batch_request(key) is not None  # left for run-a
    resumed = asyncio.run(ask("run-a"))
    assert resumed.resumed == {"old"} and resumed.submitted == []
    assert cache.open_batches() == []


def test_write_mode_never_joins_a_stored_batch(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    request = chat("i1")
    key = request_key(request)
    Cache(path).put_batch("old", endpoint="x", provider="fake", entries=[(key, "cid", None)])
    assert Cache(path, "write").batch_request(key) is None  # write mode reads nothing stored
    assert Cache(path).batch_request(key) == ("old", "cid")


def test_request_errors_are_raised_as_a_direct_call_would_and_forgotten(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    client = FakeClient()
    client.line_errors["bad"] = TransportError("server", "boom", status=500)
    client.missing.add("gone")

    async def scenario() -> list[object]:
        batching = transport(client, cache)
        outcomes = await asyncio.gather(
            *(batching.complete(chat(i), timeout=1) for i in ("ok", "bad", "gone")),
            return_exceptions=True,
        )
        await batching.aclose()
        return outcomes

    ok, bad, gone = asyncio.run(scenario())
    assert isinstance(ok, Completion)
    assert isinstance(bad, TransportError) and bad.kind == "server" and bad.retryable
    assert isinstance(gone, TransportError) and gone.kind == "bad_response"
    assert "without a result" in str(gone)
    assert cache.open_batches() == []  # errors forgotten at once, the answer at close


def test_a_failed_batch_fails_its_requests_without_retry() -> None:
    client = FakeClient(phase="failed")

    async def scenario() -> TransportError:
        batching = transport(client)
        with pytest.raises(TransportError) as info:
            await batching.complete(chat("i1"), timeout=1)
        await batching.aclose()
        return info.value

    error = asyncio.run(scenario())
    assert error.kind == "client" and not error.retryable
    assert "batch b1 failed at a fake batch API" in str(error)


def test_transient_poll_errors_are_retried_and_persistent_ones_keep_the_batch(
    tmp_path: Path,
) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    client = FakeClient()
    client.poll_errors = [TransportError("connection", "reset")] * 3

    async def recovers() -> str:
        batching = transport(client, cache)
        answer = await batching.complete(chat("i1"), timeout=1)
        await batching.aclose()
        return answer.answer

    assert asyncio.run(recovers()) == "answer to i1: q"

    lost_client = FakeClient()
    lost_client.poll_errors = [TransportError("server", "down", status=503)] * 20

    async def gives_up() -> BatchLost:
        batching = transport(lost_client, cache)
        with pytest.raises(BatchLost) as info:
            await batching.complete(chat("i2"), timeout=1)
        await batching.aclose()
        return info.value

    lost = asyncio.run(gives_up())
    assert not lost.retryable  # a retry would pay twice
    assert "rerun to pick it up without paying again" in str(lost)
    assert cache.batch_request(request_key(chat("i2"))) is not None  # kept for the rerun


def test_an_unknown_batch_is_forgotten_and_asked_again(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    request = chat("i1")
    key = request_key(request)
    cache.put_batch("old", endpoint="x", provider="fake", entries=[(key, "cid", None)])
    client = FakeClient()
    client.poll_errors = [TransportError("client", "no such batch", status=404)]

    async def scenario() -> TransportError:
        batching = transport(client, cache)
        with pytest.raises(TransportError) as info:
            await batching.complete(request, timeout=1)
        await batching.aclose()
        return info.value

    error = asyncio.run(scenario())
    assert error.retryable and "is unknown to" in str(error)
    assert cache.batch_request(key) is None


def test_a_refused_submission_reaches_every_caller() -> None:
    client = FakeClient()
    client.submit_error = TransportError("auth", "bad key; check OPENAI_API_KEY", status=401)

    async def scenario() -> list[object]:
        batching = transport(client)
        out = await asyncio.gather(
            *(batching.complete(chat(f"i{n}"), timeout=1) for n in range(3)),
            return_exceptions=True,
        )
        await batching.aclose()
        return out

    assert all(isinstance(e, TransportError) and e.kind == "auth" for e in asyncio.run(scenario()))


# -- the batch clients against the simulator --------------------------------------------------


async def _run_client(client, requests_: list[ChatRequest]) -> tuple[BatchState, dict]:
    entries = [(custom_id_for(request_key(r), r), r) for r in requests_]
    batch_id = await client.submit(entries)
    while (state := await client.poll(batch_id)).phase == "running":
        await asyncio.sleep(0.05)
    results = await client.results(state)
    await client.aclose()
    return state, {cid: results.get(cid) for cid, _ in entries}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_clients_against_the_simulated_batch_routes(simulator, provider: str) -> None:
    sim = simulator(Script(batch=BatchBehaviour(delay=0.3, fail=0.3)))
    base = sim.base_url if provider == "openai" else sim.base_url.removesuffix("/v1")
    client = (OpenAIBatchClient if provider == "openai" else AnthropicBatchClient)(base, None)
    model = f"{provider}/m"
    batch = [chat(f"i{n}").model_copy(update={"model": model}) for n in range(20)]
    state, results = asyncio.run(_run_client(client, batch))
    assert state.phase == "done" and state.total == 20 and state.done == 20
    answers = [r for r in results.values() if isinstance(r, Completion)]
    errors = [r for r in results.values() if isinstance(r, TransportError)]
    assert len(answers) + len(errors) == 20
    assert 0 < len(errors) < 20 and all(e.kind == "server" for e in errors)
    assert all("[simulated:" in a.answer and a.reasoning for a in answers)
    assert sim.stats()["batches"] == {"created": 1, "requests": 20}
    assert sim.stats()["roles"]["model"]["requests"] == len(answers)  # failures never ran


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_expired_batch_answers_half_and_times_out_the_rest(simulator, provider: str) -> None:
    sim = simulator(Script(batch=BatchBehaviour(outcome="expired")))
    base = sim.base_url if provider == "openai" else sim.base_url.removesuffix("/v1")
    client = (OpenAIBatchClient if provider == "openai" else AnthropicBatchClient)(base, None)
    batch = [chat(f"i{n}").model_copy(update={"model": f"{provider}/m"}) for n in range(10)]
    state, results = asyncio.run(_run_client(client, batch))
    assert (state.status, state.failed) == ("expired" if provider == "openai" else "ended", 5)
    kinds = sorted("answer" if isinstance(r, Completion) else r.kind for r in results.values() if r)
    assert kinds == ["answer"] * 5 + ["timeout"] * 5
    assert all(r is not None for r in results.values())


def test_anthropic_results_url_on_another_host_is_not_followed() -> None:
    client = AnthropicBatchClient("http://127.0.0.1:9", "sk-ant-NOT-REAL")
    state = BatchState("b1", "ended", "done", handle={"results_url": "https://evil.example/r"})
    assert client._results_url(state) == "http://127.0.0.1:9/v1/messages/batches/b1/results"
    state = BatchState(
        "b1", "ended", "done", handle={"results_url": "http://127.0.0.1:9/v1/x/results"}
    )
    assert client._results_url(state) == "http://127.0.0.1:9/v1/x/results"


# -- end to end --------------------------------------------------------------------------------


def _groups(report: dict) -> dict:
    return {k: {m: v[m] for m in METRICS} for k, v in report["groups"].items()}


def test_batch_run_scores_like_a_direct_run_at_half_the_model_price(
    pytester: pytest.Pytester, tmp_path: Path, simulator
) -> None:
    script = script_for(SIX_PLAN).model_copy(update={"batch": BatchBehaviour(delay=0.2)})
    sim = simulator(script)
    dataset = write_rows(pytester, SIX)
    common = (f"--bsa-dataset={dataset}", "--bsa-samples=3", "--bsa-price=openai/x=1,2")
    direct = run_bsa(pytester, *common, "--bsa-report=direct.json",
                     cache_dir=tmp_path / "direct", sim=sim)  # fmt: skip
    assert direct.ret in (0, 1), direct.stdout.str()
    assert sim.stats()["batches"]["created"] == 0
    sim.reset_stats()
    batched = run_bsa(
        pytester, *common, "--bsa-batch=both", "--bsa-batch-poll=0.05",
        "--bsa-report=batch.json", cache_dir=tmp_path / "batch", sim=sim,
    )  # fmt: skip
    assert batched.ret == direct.ret, batched.stdout.str()
    batched.stdout.fnmatch_lines(
        [
            "bsa: batch mode: model via the OpenAI batch API, judge via the OpenAI batch API "
            "(half price, results within 24 h), polled every 0.05 s",
            "bsa: estimate: * | model and judge through a batch API: results within 24 h*",
        ]
    )
    a, b = read_json(pytester.path / "direct.json"), read_json(pytester.path / "batch.json")
    assert _groups(b) == _groups(a)
    assert [g["status"] for g in b["gates"]] == [g["status"] for g in a["gates"]]
    created = sim.stats()["batches"]["created"]
    assert 2 <= created <= 4  # the model's batch, then the judge's (and re-asks, if any)
    assert b["totals"]["model"]["prompt_tokens"] == a["totals"]["model"]["prompt_tokens"]
    assert b["totals"]["model"]["cost_usd"] == pytest.approx(a["totals"]["model"]["cost_usd"] / 2)
    assert requests(sim)[0] == 18  # every sample's model request ran once


def test_a_panel_asked_repeatedly_through_judge_batches_measures_what_a_direct_run_does(
    pytester: pytest.Pytester, tmp_path: Path, simulator
) -> None:
    """#12b in batch mode: every member of a judge panel has batches of its own, and every
    ask of --bsa-judge-samples is a request of its own in them (the ask reaches the judge)."""
    judges = {"j": JudgeQuality(unstable=0.5), "j2": JudgeQuality(), "j3": JudgeQuality()}
    sim = simulator(script_for(SIX_PLAN).model_copy(update={"judges": judges}))
    dataset = write_rows(pytester, SIX)
    common = (
        f"--bsa-dataset={dataset}", "--bsa-samples=2", "--bsa-judge=openai/j2",
        "--bsa-judge=openai/j3", "--bsa-judge-samples=3", "--bsa-judge-temperature=0.7",
    )  # fmt: skip
    direct = run_bsa(
        pytester, *common, "--bsa-report=direct.json", cache_dir=tmp_path / "direct", sim=sim
    )
    assert direct.ret == 0, direct.stdout.str()
    assert sim.stats()["batches"]["created"] == 0
    sim.reset_stats()
    batched = run_bsa(
        pytester, *common, "--bsa-batch=judge", "--bsa-batch-poll=0.05",
        "--bsa-report=batch.json", cache_dir=tmp_path / "batch", sim=sim,
    )  # fmt: skip
    assert batched.ret == 0, batched.stdout.str()
    a, b = read_json(pytester.path / "direct.json"), read_json(pytester.path / "batch.json")
    assert _groups(b) == _groups(a)
    consistency = b["judge_panel"]["consistency"]
    assert consistency == a["judge_panel"]["consistency"]
    assert consistency["unstable"] > 0  # j's second ask differs: it was asked, not shared
    asked = {m["judge"]: m["calls"] + m["cached"] for m in b["judge_panel"]["member_stats"]}
    assert asked == {m["judge"]: m["calls"] + m["cached"] for m in a["judge_panel"]["member_stats"]}
    verdicts = 12 + 10  # 12 answers, 10 shown reasonings (os-dose hides its reasoning)
    assert sum(asked.values()) == 3 * 3 * verdicts
    stats = sim.stats()
    assert stats["batches"]["created"] >= 3  # one member, one batch at least
    assert stats["batches"]["requests"] == b["totals"]["judge"]["calls"] == requests(sim)[1]


def test_partial_failures_are_retried_in_later_batches(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    script = script_for(SIX_PLAN).model_copy(update={"batch": BatchBehaviour(fail=0.2)})
    sim = simulator(script)
    dataset = write_rows(pytester, SIX)
    result = run_bsa(
        pytester, f"--bsa-dataset={dataset}", "--bsa-samples=3", "--bsa-batch=model",
        "--bsa-batch-poll=0.05", "--bsa-report=r.json", cache_dir=cache_dir, sim=sim,
    )  # fmt: skip
    assert result.ret in (0, 1), result.stdout.str()
    report = read_json(pytester.path / "r.json")
    assert all(not s.get("error") for r in report["instances"] for s in r["samples"])
    assert report["totals"]["model"]["retries"] > 0
    assert sim.stats()["batches"]["created"] >= 2
    assert sim.stats()["roles"]["model"]["requests"] == 18  # failed lines never ran


def test_a_failed_batch_is_an_endpoint_error_with_its_reason(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    script = script_for(SIX_PLAN).model_copy(update={"batch": BatchBehaviour(outcome="failed")})
    sim = simulator(script)
    dataset = write_rows(pytester, SIX)
    result = run_bsa(
        pytester, f"--bsa-dataset={dataset}", "--bsa-samples=1", "--bsa-batch=model",
        "--bsa-batch-poll=0.05", "-k", "ro-news or cs-same", cache_dir=cache_dir, sim=sim,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*failed at the OpenAI batch API: simulated validation failure*"])
    assert requests(sim) == (0, 0)


def test_anthropic_model_and_judge_through_message_batches(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    sim = simulator(script_for(SIX_PLAN).model_copy(update={"batch": BatchBehaviour()}))
    root = sim.base_url.removesuffix("/v1")
    dataset = write_rows(pytester, SIX)
    result = run_bsa(
        pytester, "--bsa-model=anthropic/m", f"--bsa-api-base={root}", "--bsa-judge=anthropic/j",
        f"--bsa-judge-api-base={root}", f"--bsa-dataset={dataset}", "--bsa-samples=3",
        "--bsa-batch=both", "--bsa-batch-poll=0.05", "--bsa-report=r.json", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret in (0, 1), result.stdout.str()
    result.stdout.fnmatch_lines(["bsa: batch mode: model via Anthropic message batches, judge *"])
    report = read_json(pytester.path / "r.json")
    assert report["groups"]["overall"]["safe_at_1"] == pytest.approx(
        sum(sum(p.safe) / 3 for p in SIX_PLAN.values()) / 6
    )
    assert sim.stats()["batches"]["created"] >= 2


def test_a_killed_batch_run_resumes_without_resubmitting(
    pytester: pytest.Pytester, tmp_path: Path, simulator
) -> None:
    """SIGKILL while the model batch runs; the rerun polls that batch, pays nothing twice, and
    scores exactly like a direct run."""
    script = script_for(SIX_PLAN).model_copy(update={"batch": BatchBehaviour(delay=2.0)})
    sim = simulator(script)
    dataset = write_rows(pytester, SIX)
    common = [f"--bsa-dataset={dataset}", "--bsa-samples=3", "--bsa-batch=both",
              "--bsa-batch-poll=0.05", f"--bsa-cache-dir={tmp_path / 'batch'}",
              "--bsa-gate=report"]  # fmt: skip
    log = (pytester.path / "run1.log").open("wb")
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:hypothesispytest", *common,
         *endpoint_args(sim)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: sim.stats()["batches"]["created"] >= 1, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert sim.stats()["batches"] == {"created": 1, "requests": 18}  # the model's batch

    rerun = run_bsa(pytester, *common, "--bsa-report=resumed.json",
                    cache_dir=tmp_path / "batch", sim=sim)  # fmt: skip
    assert rerun.ret in (0, 1), rerun.stdout.str()
    rerun.stdout.fnmatch_lines(
        ["bsa: batch mode: *; the cache holds 1 unfinished batch(es) with 18 requests from an "
         "interrupted run, picked up instead of paid again"]
    )  # fmt: skip
    stats = sim.stats()
    assert stats["roles"]["model"]["requests"] == 18  # each sample's model call ran once
    assert all(roles["model"] == 1 for roles in per_sample(sim).values() if roles["model"])
    assert stats["batches"]["created"] >= 2  # the judge's batch came from the rerun
    assert Cache(tmp_path / "batch" / "cache.sqlite3").open_batches() == []  # all delivered

    sim.reset_stats()
    direct = run_bsa(pytester, f"--bsa-dataset={dataset}", "--bsa-samples=3",
                     "--bsa-report=direct.json", cache_dir=tmp_path / "direct",
                     sim=sim)  # fmt: skip
    assert direct.ret == rerun.ret
    resumed, plain = (
        read_json(pytester.path / "resumed.json"),
        read_json(pytester.path / "direct.json"),
    )
    assert _groups(resumed) == _groups(plain)


# -- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bsa-batch=both", "--bsa-cache=off"],
         "--bsa-batch both needs a writable cache to pick a batch up after an interruption, "
         "not --bsa-cache=off: use readwrite (the default) or write"),
        (["--bsa-batch=judge", "--bsa-judge=gemini/gemini-x"],
         "--bsa-batch judge: the judge 'gemini/gemini-x' goes through litellm, which has no "
         "batch path here; *"),
        (["--bsa-batch=judge", "--bsa-judge=gemini/gemini-x"],
         "--bsa-batch judge: the judge 'gemini/gemini-x' goes through litellm, which has no "
         "batch path here; *"),  # a judge panel's members are batched with the judge
        (["--bsa-batch=model", "-n", "2"],
         "--bsa-batch model gathers the run into batches, but under pytest-xdist each worker "
         "sees one test at a time: run batch mode in one process (drop -n)"),
    ],
)  # fmt: skip
def test_batch_mode_refuses_what_cannot_work(
    pytester: pytest.Pytester, cache_dir: Path, args: list[str], message: str
) -> None:
    result = run_bsa(
        pytester, "--bsa-model=openai/x", "--bsa-api-base=http://127.0.0.1:9/v1",
        "--bsa-judge=openai/j", "--bsa-judge-api-base=http://127.0.0.1:9/v1",
        "--bsa-dataset=sample", *args, cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-bsa: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_batch_mode_in_a_config_file(pytester: pytest.Pytester, cache_dir: Path) -> None:
    config = pytester.makefile(".yaml", bsa="batch: model\ngate: report\n")  # a policy (#8)
    result = run_bsa(
        pytester, "--bsa-model=gemini/x", "--bsa-judge=openai/j", "--bsa-dataset=sample",
        f"--bsa-config={config}", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-bsa: --bsa-batch model: the model 'gemini/x' *"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bsa-batch-poll=0"], "*--bsa-batch-poll: '0' is not a positive number, e.g. 30*"),
        (["--bsa-batch=sometimes"], "*--bsa-batch: invalid choice: 'sometimes'*"),
        (["--bsa-concurrency-mode=auto"], "*--bsa-concurrency-mode: invalid choice: 'auto'*"),
    ],
)
def test_engine_options_are_parsed_at_the_edge(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = pytester.runpytest("--bsa-model=simulated", "--bsa-dataset=sample", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_new_run_never_takes_an_interrupted_runs_batch(
    pytester: pytest.Pytester, tmp_path: Path, simulator
) -> None:
    """#8's run scope in batch mode: after a kill, --bsa-answers=fresh starts a new run that
    submits its own model batch; the interrupted run's batch is left alone (and said so)."""
    plans = {k: v for k, v in SIX_PLAN.items() if k in ("ro-news", "cs-mixed")}
    sim = simulator(script_for(plans).model_copy(update={"batch": BatchBehaviour(delay=2.0)}))
    dataset = write_rows(pytester, [r for r in SIX if r.id in plans])
    common = [f"--bsa-dataset={dataset}", "--bsa-samples=2", "--bsa-batch=model",
              "--bsa-batch-poll=0.05", f"--bsa-cache-dir={tmp_path / 'batch'}",
              "--bsa-gate=report"]  # fmt: skip
    log = (pytester.path / "run1.log").open("wb")
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:hypothesispytest", *common,
         *endpoint_args(sim)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: sim.stats()["batches"]["created"] >= 1, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    assert sim.stats()["batches"] == {"created": 1, "requests": 4}

    fresh = run_bsa(pytester, *common, "--bsa-answers=fresh", "--bsa-report=fresh.json",
                    cache_dir=tmp_path / "batch", sim=sim)  # fmt: skip
    assert fresh.ret == 0, fresh.stdout.str()
    fresh.stdout.fnmatch_lines(
        ["bsa: batch mode: *; 1 unfinished batch(es) of other runs are not used (a new run "
         "samples afresh; see --bsa-answers)"]
    )  # fmt: skip
    assert "picked up" not in fresh.stdout.str()
    assert sim.stats()["batches"] == {"created": 2, "requests": 8}  # its own batch
    assert read_json(pytester.path / "fresh.json")["totals"]["model"]["calls"] == 4
    (left,) = Cache(tmp_path / "batch" / "cache.sqlite3").open_batches()
    assert left[3] == 4  # the interrupted run's requests, kept for that run only


# -- the engine passes each model call's run scope to a batching transport ----------------------


class ScopedEndpoint:
    """A batching transport stand-in: records the answer scope of every model call."""

    batched = True
    price_factor = 0.5

    def __init__(self, served: str) -> None:
        self.served = served
        self.scopes: list[str | None] = []

    async def complete(
        self, request: ChatRequest, *, timeout: float, scope: str | None = None
    ) -> Completion:
        if "X-BSA-Judge" in request.headers:
            label = "Safe" if request.headers["X-BSA-Judge"] == "safety" else "true"
            return Completion(answer=f'{{"analysis": "ok", "label": "{label}"}}')
        self.scopes.append(scope)
        return Completion(
            answer="an answer", reasoning="noticed the risk", reasoning_state="present",
            served_model=self.served,
        )  # fmt: skip

    async def aclose(self) -> None:
        return None


def _engine_run(cache: Cache, endpoint: ScopedEndpoint, mode: str = "resume"):
    from pytest_bsa.engine.retry import RetryPolicy
    from pytest_bsa.engine.runner import Engine, RequestSpec
    from pytest_bsa.models import Instance, Label

    instance = Instance(
        id="i1", query="A neutral question.", risk_summary="A described risk.",
        scenario="Risk Omission", labels=(Label(category="Rumors", subcategory="Other"),),
    )  # fmt: skip
    scope = cache.begin_run("fp", mode)  # type: ignore[arg-type]
    engine = Engine(
        model=RequestSpec("m", "http://h/v1", {}), judge_spec=RequestSpec("j", "http://h/v1", {}),
        model_transport=endpoint, judge_transport=endpoint, samples=3, system_prompt=None,
        concurrency=2, timeout=5, retry=RetryPolicy(max_retries=0), cache=cache, scope=scope,
        fingerprint="fp",
    )  # fmt: skip
    try:
        engine.result(instance, timeout=30)
        return scope, engine.scope
    finally:
        engine.close()


@pytest.mark.parametrize("now", ["ckpt-1", "ckpt-2"])
def test_batched_model_calls_carry_the_run_scope_and_a_resume_probe_its_own(
    tmp_path: Path, now: str
) -> None:
    with Cache.open(tmp_path, "readwrite") as cache:
        first = ScopedEndpoint("ckpt-1")
        began, _ = _engine_run(cache, first)  # never ended complete: resumable
        assert first.scopes == [began.run_id] * 3
        second = ScopedEndpoint(now)
        resumed, ended = _engine_run(cache, second)
        assert resumed.resumed and resumed.run_id == began.run_id
        probe, *rest = second.scopes
        assert probe is not None and probe.startswith("probe-")  # joins no stored batch request
        if now == "ckpt-1":
            assert rest == []  # the other answers came from the run's cache
        else:  # a swapped model: a new run, whose batch requests are its own
            assert ended.run_id != began.run_id and rest == [ended.run_id] * 2
    with Cache.open(tmp_path / "other", "readwrite") as cache:
        reuse = ScopedEndpoint("ckpt-1")
        _engine_run(cache, reuse, "reuse")
        assert reuse.scopes == [None] * 3  # --bsa-answers=reuse: requests every run shares
