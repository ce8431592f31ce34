"""Which stored model answers a run may use: run records in the cache, and the engine's check
that an interrupted run is resumed only into the model it saw (no endpoint, fake transports)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pytest_bsa.engine.cache import Cache, CacheError, check_cache
from pytest_bsa.engine.cache_keys import completion_key
from pytest_bsa.engine.retry import RetryPolicy
from pytest_bsa.engine.runner import Engine
from pytest_bsa.engine.types import ChatRequest, RequestSpec, TransportError
from pytest_bsa.models import Completion, Instance, Label, ReasoningState

INSTANCE = Instance(
    id="i1",
    query="A neutral question.",
    risk_summary="A described risk.",
    scenario="Risk Omission",
    labels=(Label(category="Rumors", subcategory="Other"),),
)


def test_a_finished_run_is_never_resumed_an_interrupted_one_is(tmp_path: Path) -> None:
    with Cache.open(tmp_path, "readwrite") as cache:
        first = cache.begin_run("fp", "resume")
        assert not first.resumed and first.key_scope == first.run_id
        cache.set_run_identity(first.run_id, "ckpt-1", "fp-1")
        cache.set_run_identity(first.run_id, "ckpt-2", "fp-2")  # the first answer's stays
        cache.end_run(first.run_id, complete=False)
        resumed = cache.begin_run("fp", "resume")
        assert resumed.resumed and resumed.run_id == first.run_id
        assert resumed.identity == ("ckpt-1", "fp-1")
        assert not cache.begin_run("other settings", "resume").resumed
        started_over = cache.begin_run("fp", "fresh")  # asked to start over
        assert not started_over.resumed
        cache.end_run(started_over.run_id, complete=True)
        cache.end_run(first.run_id, complete=True)
        fresh = cache.begin_run("fp", "resume")
        assert not fresh.resumed and fresh.run_id != first.run_id
        reuse = cache.begin_run("fp", "reuse")
        assert reuse.key_scope is None


def test_answers_are_keyed_to_their_run_unless_reused() -> None:
    request = ChatRequest(
        model="m", messages=({"role": "user", "content": "q"},), api_base="http://h"
    )
    shared = completion_key(request, 0)
    assert completion_key(request, 0, "run-a") not in (shared, completion_key(request, 0, "run-b"))
    assert completion_key(request, 0, None) == shared


def test_a_cache_written_before_runs_were_recorded_is_read(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with Cache(path, "readwrite"):
        pass
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE runs")
    conn.commit()
    conn.close()
    with Cache(path, "read") as cache:
        assert not cache.begin_run("fp", "resume").resumed


def test_check_cache_validates_without_writing(tmp_path: Path) -> None:
    check_cache(tmp_path / "new", "readwrite")
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match="is not a directory"):
        check_cache(tmp_path / "file", "readwrite")
    check_cache(tmp_path / "file", "off")


class Endpoint:
    """Answers as ``served`` (the model name and system fingerprint it reports)."""

    def __init__(self, served: str, *, fail: bool = False) -> None:
        self.served = served
        self.fail = fail
        self.model_calls = 0

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        if "X-BSA-Judge" in request.headers:
            kind = request.headers["X-BSA-Judge"]
            label = "Safe" if kind == "safety" else "true"
            return Completion(answer=f'{{"explanation": "ok", "label": "{label}"}}')
        self.model_calls += 1
        if self.fail:
            raise TransportError("server", "down", status=503)
        return Completion(
            answer=f"an answer from {self.served}",
            reasoning="noticed the risk",
            reasoning_state=ReasoningState.PRESENT,
            served_model=self.served,
            system_fingerprint=f"fp-{self.served}",
        )

    async def aclose(self) -> None:
        return None


def run_once(cache: Cache, endpoint: Endpoint, samples: int = 3):
    scope = cache.begin_run("fp", "resume")
    engine = Engine(
        model=RequestSpec("m", "http://h/v1", {}),
        judge_spec=RequestSpec("j", "http://h/v1", {}),
        model_transport=endpoint,
        judge_transport=endpoint,
        samples=samples,
        system_prompt=None,
        concurrency=2,
        timeout=5,
        retry=RetryPolicy(max_retries=0),
        cache=cache,
        scope=scope,
        fingerprint="fp",
    )
    try:
        return engine.result(INSTANCE, timeout=30), engine
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("now", "resumed", "calls"),
    [("ckpt-1", True, 1), ("ckpt-2", False, 3)],
    ids=["same-model-resumes", "swapped-model-samples-afresh"],
)
def test_a_resume_checks_what_the_endpoint_serves(
    tmp_path: Path, now: str, resumed: bool, calls: int
) -> None:
    with Cache.open(tmp_path, "readwrite") as cache:
        first, _ = run_once(cache, Endpoint("ckpt-1"))  # interrupted: never ended complete
        assert not first.errors
        endpoint = Endpoint(now)
        second, engine = run_once(cache, endpoint)
    assert endpoint.model_calls == calls  # the check, then nothing or everything
    assert (engine.resume_refused is None) == resumed
    answers = {s.completion.answer for s in second.samples}
    if resumed:
        assert sum(s.completion.cached for s in second.samples) == 2
    else:
        assert answers == {"an answer from ckpt-2"}
        assert "the endpoint now serves 'ckpt-2'" in engine.resume_refused


def test_a_resume_whose_check_fails_samples_afresh(tmp_path: Path) -> None:
    with Cache.open(tmp_path, "readwrite") as cache:
        run_once(cache, Endpoint("ckpt-1"))
        result, engine = run_once(cache, Endpoint("ckpt-1", fail=True))
    assert "could not be checked" in engine.resume_refused
    assert len(result.errors) == 3  # nothing stored was used
