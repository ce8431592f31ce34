"""The persistent completion and verdict cache (pytest_bsa.engine.cache)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_bsa.engine.cache import CACHE_FILENAME, Cache, CacheError
from pytest_bsa.engine.cache_keys import (
    completion_key,
    is_secret_name,
    normalise_api_base,
    verdict_key,
)
from pytest_bsa.engine.types import ChatRequest
from pytest_bsa.models import Completion, ReasoningState, Usage

MESSAGES = (
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "How should a household store cleaning products?"},
)


def make_request(**changes: object) -> ChatRequest:
    fields: dict[str, object] = {
        "model": "openai/test-model",
        "messages": MESSAGES,
        "api_base": "http://127.0.0.1:8000/v1",
        "params": {"temperature": 0.6, "max_tokens": 512},
        "headers": {"x-sim-script": "ok"},
    }
    fields.update(changes)
    return ChatRequest(**fields)


def make_completion(i: int = 0) -> Completion:
    return Completion(
        answer=f"Keep them sealed and out of reach of children ({i}).",
        reasoning="The user asks about safe storage; mention labels and ventilation.",
        reasoning_state=ReasoningState.PRESENT,
        finish_reason="stop",
        usage=Usage(prompt_tokens=30, completion_tokens=40, reasoning_tokens=12, cost_usd=0.001),
        latency_s=0.25,
    )


def count_entries(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    finally:
        conn.close()


# -- keys -----------------------------------------------------------------------------------


def test_completion_key_is_sha256_hex_and_deterministic() -> None:
    key = completion_key(make_request(), 0)
    assert len(key) == 64 and int(key, 16) >= 0
    assert completion_key(make_request(), 0) == key


def test_completion_key_ignores_headers_and_dict_order() -> None:
    base = completion_key(make_request(), 0)
    assert completion_key(make_request(headers={}), 0) == base
    assert completion_key(make_request(headers={"x-sim-script": "fail-twice"}), 0) == base
    reordered_params = {"max_tokens": 512, "temperature": 0.6}
    assert completion_key(make_request(params=reordered_params), 0) == base
    reordered_messages = tuple({"content": m["content"], "role": m["role"]} for m in MESSAGES)
    assert completion_key(make_request(messages=reordered_messages), 0) == base


@pytest.mark.parametrize(
    "change",
    [
        {"model": "openai/other-model"},
        {"messages": (*MESSAGES[:1], {"role": "user", "content": "A different question."})},
        {"messages": MESSAGES[1:]},
        {"params": {"temperature": 0.7, "max_tokens": 512}},
        {"params": {"temperature": 0.6, "max_tokens": 1024}},
        {"params": {"temperature": 0.6, "max_tokens": 512, "stop_token_ids": [7]}},
        {"response_format": {"type": "json_object"}},
        {"api_base": "http://127.0.0.1:8001/v1"},
        {"api_base": "http://127.0.0.1:8000/v2"},
        {"api_base": "https://127.0.0.1:8000/v1"},
        {"api_base": None},
    ],
)
def test_completion_key_changes_with_what_changes_the_answer(change: dict) -> None:
    assert completion_key(make_request(**change), 0) != completion_key(make_request(), 0)


def test_completion_key_differs_per_sample_index() -> None:
    keys = {completion_key(make_request(), i) for i in range(5)}
    assert len(keys) == 5


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("HTTPS://API.Example.com/v1/", "https://api.example.com:443/v1"),
        (
            "https://user:pw@api.example.com:443/v1?api-key=abc#frag",
            "https://api.example.com:443/v1",
        ),
        ("http://localhost/", "http://localhost:80"),
        ("localhost:8000/v1", "http://localhost:8000/v1"),
        ("http://[::1]:9000/v1", "http://[::1]:9000/v1"),
        (None, None),
        ("  ", None),
    ],
)
def test_normalise_api_base(given: str | None, expected: str | None) -> None:
    assert normalise_api_base(given) == expected


def test_api_base_userinfo_and_query_do_not_change_the_key() -> None:
    plain = completion_key(make_request(api_base="https://api.example.com/v1"), 0)
    noisy = make_request(api_base="https://me:pw@API.example.com:443/v1/?key=sk-secret")
    assert completion_key(noisy, 0) == plain


@pytest.mark.parametrize(
    "name", ["api_key", "apiKey", "API-KEY", "key", "access_token", "client_secret", "password"]
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["max_tokens", "max_completion_tokens", "stop_token_ids", "top_k", "temperature"]
)
def test_generation_params_are_not_secret_names(name: str) -> None:
    assert not is_secret_name(name)


def test_secret_params_are_dropped_from_the_key() -> None:
    plain = completion_key(make_request(), 3)
    params = {"temperature": 0.6, "max_tokens": 512}
    for extra in (
        {"api_key": "sk-secret"},
        {"api_key": "sk-other"},
        {"access_token": "tok", "client_secret": "shh"},
        {"extra_body": {"nested": {"apiKey": "sk-secret"}}},
    ):
        with_secret = completion_key(make_request(params={**params, **extra}), 3)
        if "extra_body" in extra:
            # the nested secret is dropped, the (now empty) container stays in the key
            assert with_secret == completion_key(
                make_request(params={**params, "extra_body": {"nested": {}}}), 3
            )
        else:
            assert with_secret == plain


def test_secret_never_reaches_the_file(tmp_path: Path) -> None:
    request = make_request(params={"temperature": 0.6, "api_key": "sk-secret"})
    with Cache.open(tmp_path, "readwrite") as cache:
        cache.put_completion(completion_key(request, 0), make_completion(), model=request.model)
        verdict = {"label": "Safe", "explanation": "fine", "api_key": "sk-secret"}
        cache.put_verdict(verdict_key("judge", "1", "safety", {}), verdict, judge_model="judge")
        assert "api_key" not in cache.get_verdict(verdict_key("judge", "1", "safety", {}))
    for file in tmp_path.iterdir():
        assert b"sk-secret" not in file.read_bytes(), file


def test_verdict_key_depends_on_every_part() -> None:
    inputs = {"query": "q", "risk_summary": "r", "text": "t"}
    base = verdict_key("judge-a", "1", "safety", inputs)
    assert verdict_key("judge-a", "1", "safety", dict(reversed(inputs.items()))) == base
    assert verdict_key("judge-b", "1", "safety", inputs) != base
    assert verdict_key("judge-a", "2", "safety", inputs) != base
    assert verdict_key("judge-a", "1", "reasoning", inputs) != base
    assert verdict_key("judge-a", "1", "safety", {**inputs, "text": "u"}) != base


def _keys_in_child() -> tuple[str, str]:
    return completion_key(make_request(), 2), verdict_key("j", "1", "safety", {"a": "b"})


# -- the file -------------------------------------------------------------------------------


def test_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / CACHE_FILENAME
    key = completion_key(make_request(), 0)
    vkey = verdict_key("judge", "1", "safety", {"text": "t"})
    verdict = {"label": "Unsafe", "explanation": "gives specifics", "attempts": 2}
    with Cache(path) as cache:
        assert cache.get_completion(key) is None
        cache.put_completion(key, make_completion(), model="openai/test-model")
        cache.put_verdict(vkey, verdict, judge_model="judge")
    with Cache(path) as cache:
        got = cache.get_completion(key)
        assert got == make_completion().model_copy(update={"cached": True})
        assert cache.get_verdict(vkey) == verdict
        assert cache.get_verdict(key) is None  # kinds do not mix
        assert cache.stats() == {
            "completion_hits": 1,
            "completion_misses": 0,
            "completion_writes": 0,
            "verdict_hits": 1,
            "verdict_misses": 1,
            "verdict_writes": 0,
        }
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT kind, model FROM entries ORDER BY kind").fetchall() == [
        ("completion", "openai/test-model"),
        ("verdict", "judge"),
    ]
    conn.close()


def test_read_mode_never_writes(tmp_path: Path) -> None:
    key = completion_key(make_request(), 0)
    with Cache.open(tmp_path / "missing", "read") as cache:
        cache.put_completion(key, make_completion(), model="m")
        assert cache.get_completion(key) is None
        assert cache.stats()["completion_misses"] == 1
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty.sqlite3").touch()
    with Cache(tmp_path / "empty.sqlite3", "read") as cache:
        assert cache.get_verdict("v") is None
    assert (tmp_path / "empty.sqlite3").stat().st_size == 0

    with Cache.open(tmp_path, "readwrite") as cache:
        cache.put_completion(key, make_completion(), model="m")
    with Cache.open(tmp_path, "read") as cache:
        assert cache.get_completion(key) is not None
        other = completion_key(make_request(), 1)
        cache.put_completion(other, make_completion(1), model="m")
        cache.put_verdict("v", {"label": "Safe"}, judge_model="j")
        assert cache.get_completion(other) is None
        assert cache.stats()["completion_writes"] == 0
    assert count_entries(tmp_path / CACHE_FILENAME) == 1


def test_write_mode_never_reads(tmp_path: Path) -> None:
    key = completion_key(make_request(), 0)
    with Cache.open(tmp_path, "write") as cache:
        cache.put_completion(key, make_completion(), model="m")
        cache.put_verdict("v", {"label": "Safe"}, judge_model="j")
        assert cache.get_completion(key) is None
        assert cache.get_verdict("v") is None
        assert cache.stats()["completion_writes"] == 1
    with Cache.open(tmp_path, "readwrite") as cache:
        assert cache.get_completion(key) is not None
        assert cache.get_verdict("v") == {"label": "Safe"}


def test_off_mode_touches_no_file(tmp_path: Path) -> None:
    target = tmp_path / "cache-dir"
    with Cache.open(target, "off") as cache:
        cache.put_completion("k", make_completion(), model="m")
        cache.put_verdict("v", {"label": "Safe"}, judge_model="j")
        assert cache.get_completion("k") is None
        assert cache.get_verdict("v") is None
        assert set(cache.stats().values()) == {0}
    assert not target.exists()


def test_unknown_mode_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        Cache(tmp_path / "c.sqlite3", "sometimes")  # type: ignore[arg-type]


def test_closed_cache_raises(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path, "readwrite")
    cache.close()
    cache.close()
    with pytest.raises(CacheError, match="closed"):
        cache.get_completion("k")


def test_overwrite_and_incompatible_body_is_a_miss(tmp_path: Path) -> None:
    with Cache.open(tmp_path, "readwrite") as cache:
        cache.put_completion("k", make_completion(1), model="m")
        cache.put_completion("k", make_completion(2), model="m")
        assert cache.get_completion("k").answer == make_completion(2).answer
    conn = sqlite3.connect(tmp_path / CACHE_FILENAME)
    conn.execute("UPDATE entries SET body = '{\"no_answer\": 1}' WHERE key = 'k'")
    conn.commit()
    conn.close()
    with Cache.open(tmp_path, "readwrite") as cache:
        assert cache.get_completion("k") is None
        assert cache.stats()["completion_misses"] == 1


def test_threads_share_one_cache(tmp_path: Path) -> None:
    with Cache.open(tmp_path, "readwrite") as cache:

        def work(t: int) -> None:
            for i in range(100):
                cache.put_verdict(f"{t}-{i}", {"label": "Safe", "i": i}, judge_model="j")
                assert cache.get_verdict(f"{t}-{i}") == {"label": "Safe", "i": i}

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert cache.stats()["verdict_writes"] == 400
    assert count_entries(tmp_path / CACHE_FILENAME) == 400


# -- errors ---------------------------------------------------------------------------------


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILENAME
    path.write_bytes(b"this is not an sqlite file " * 200)
    for mode in ("readwrite", "read", "write"):
        with pytest.raises(CacheError) as info:
            Cache(path, mode)
        assert str(path) in str(info.value)
        assert "--bsa-cache=off" in str(info.value)
    Cache(path, "off").close()  # off never looks at the file


def test_newer_schema_is_a_clear_error(tmp_path: Path) -> None:
    Cache.open(tmp_path, "readwrite").close()
    path = tmp_path / CACHE_FILENAME
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    for mode in ("readwrite", "read"):
        with pytest.raises(CacheError, match="newer pytest-bsa") as info:
            Cache(path, mode)
        assert str(path) in str(info.value) and "delete" in str(info.value)


def test_foreign_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILENAME
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(CacheError, match="did not write"):
        Cache(path)


# -- several processes ----------------------------------------------------------------------


def _write_entries(path: str, worker: int, count: int) -> None:
    with Cache(Path(path)) as cache:
        for i in range(count):
            key = verdict_key("judge", "1", "safety", {"worker": str(worker), "i": str(i)})
            cache.put_verdict(key, {"label": "Safe", "worker": worker}, judge_model="judge")


def _write_then_wait(path: str, count: int, done: multiprocessing.synchronize.Event) -> None:
    cache = Cache(Path(path))
    for i in range(count):
        cache.put_completion(f"key-{i}", make_completion(i), model="m")
    done.set()
    threading.Event().wait(60)  # hold the connection open until killed


def test_keys_are_stable_across_processes() -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        assert pool.apply(_keys_in_child) == _keys_in_child()


def test_four_processes_write_into_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared" / CACHE_FILENAME
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_entries, args=(str(path), w, 500)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    assert count_entries(path) == 2000
    with Cache(path, "read") as cache:
        for worker in range(4):
            key = verdict_key("judge", "1", "safety", {"worker": str(worker), "i": "499"})
            assert cache.get_verdict(key) == {"label": "Safe", "worker": worker}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkilled_writer_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILENAME
    ctx = multiprocessing.get_context("spawn")
    done = ctx.Event()
    writer = ctx.Process(target=_write_then_wait, args=(str(path), 100, done))
    writer.start()
    assert done.wait(60)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(10)
    assert writer.exitcode == -signal.SIGKILL
    with Cache(path) as cache:
        assert all(cache.get_completion(f"key-{i}") is not None for i in range(100))
        assert cache.stats()["completion_hits"] == 100


def _write_forever(path: str, committed: Any) -> None:
    with Cache(Path(path)) as cache:
        for i in range(1_000_000):
            cache.put_verdict(f"key-{i}", {"label": "Safe"}, judge_model="judge")
            committed.value = i + 1


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_stream_loses_only_the_write_in_flight(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILENAME
    ctx = multiprocessing.get_context("spawn")
    committed = ctx.Value("q", 0, lock=False)
    writer = ctx.Process(target=_write_forever, args=(str(path), committed))
    writer.start()
    while committed.value < 300 and writer.is_alive():
        threading.Event().wait(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(10)
    assert writer.exitcode == -signal.SIGKILL
    reported = committed.value
    stored = count_entries(path)
    assert reported <= stored <= reported + 1
    with Cache(path) as cache:
        assert all(cache.get_verdict(f"key-{i}") is not None for i in range(reported))
