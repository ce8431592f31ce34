"""Persistent response and verdict cache: one SQLite file in WAL mode, shared by processes.

Judge verdicts are pure functions of their inputs, the judge and the rubric: every run reuses
them. Model answers are samples of whatever the endpoint serves today, so they are scoped to a
*run* (:class:`AnswerScope`): a new run samples afresh, and only a rerun that resumes an
interrupted run with the same settings (or a run that asks for reuse explicitly) gets them back.
Batch mode records which provider batch holds each request (tables ``batches`` and
``batch_requests``, :mod:`pytest_bsa.engine.cache_batches`), so a rerun polls that batch instead
of paying again; a model request's key carries its run's scope like a stored answer's, so only
the run that submitted it, resumed, or a run with ``--bsa-answers=reuse`` picks it up. Judge
requests are shared, like verdicts.
Each ``put`` commits on its own, so a Ctrl-C or SIGKILL loses at most the calls still in flight.
Only successful completions and parsed verdicts are stored: the engine never puts a failed
call (a transport error or an unjudged verdict), so a resumed run retries exactly those.

Nothing secret is stored. Keys are sha256 digests (:mod:`pytest_bsa.engine.cache_keys`); the
key material leaves out headers, the userinfo and query of ``api_base``, and any param whose
name marks it as a credential. Stored bodies are ``Completion`` JSON and the judge's verdict
dicts (credential-named fields removed). No pytest import.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pytest_bsa.engine.cache_batches import BatchRecords
from pytest_bsa.engine.cache_file import (
    CACHE_FILENAME,
    CacheError,
    CacheMode,
    advice,
)
from pytest_bsa.engine.cache_keys import scrub_secrets
from pytest_bsa.engine.scope import AnswerScope, AnswersMode, new_run_id
from pytest_bsa.models import Completion


def check_cache(cache_dir: Path, mode: CacheMode) -> None:
    """Raise :class:`CacheError` when the cache cannot be used; creates and changes nothing.

    Run before the first call, so that a cache path that is a file or a corrupt cache file is
    a usage error (exit 4) instead of a crash in the middle of a run.
    """
    if mode == "off":
        return
    cache_dir = Path(cache_dir).expanduser()
    path = cache_dir / CACHE_FILENAME
    fix = "pass --bsa-cache-dir DIR (a directory) or --bsa-cache=off"
    if cache_dir.exists() and not cache_dir.is_dir():
        raise CacheError(f"the cache directory {str(cache_dir)!r} is not a directory; {fix}")
    if path.exists():
        if not path.is_file():
            raise CacheError(f"the cache file {str(path)!r} is not a file; {advice(path)}")
        Cache(path, "read").close()  # opened read-only: validates without writing
        return
    if mode == "read":
        return
    parent = next((p for p in (cache_dir, *cache_dir.parents) if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CacheError(f"the cache directory {str(cache_dir)!r} cannot be created; {fix}")


class Cache(BatchRecords):
    """Completions and verdicts keyed by :func:`completion_key` and :func:`verdict_key`.

    Modes: ``readwrite`` reads and writes; ``read`` never writes (and creates no file);
    ``write`` never reads (refreshes entries); ``off`` is a no-op that touches no file.
    Thread-safe (one connection behind a lock); several processes may share one file.
    """

    def __init__(self, path: Path, mode: CacheMode = "readwrite") -> None:
        self._counts: dict[str, int] = {
            f"{kind}_{what}": 0
            for kind in ("completion", "verdict")
            for what in ("hits", "misses", "writes")
        }
        super().__init__(path, mode)

    @classmethod
    def open(cls, cache_dir: Path, mode: CacheMode) -> Cache:
        """The cache in ``<cache_dir>/cache.sqlite3``."""
        return cls(Path(cache_dir).expanduser() / CACHE_FILENAME, mode)

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r}, mode={self.mode!r})"

    # -- entries -------------------------------------------------------------------------

    def _get(self, kind: str, key: str) -> tuple[bool, str | None]:
        """(whether a lookup happened, the stored body)."""
        with self._lock:
            conn = self._connection()
            if not self._readable:
                return False, None
            if conn is None or self._empty:
                return True, None
            rows = self._run(
                conn, "SELECT body FROM entries WHERE key = ? AND kind = ?", (key, kind)
            )
            return True, rows[0][0] if rows else None

    def _put(self, kind: str, key: str, model: str, body: str) -> None:
        with self._lock:
            conn = self._connection()
            if not self._writable or conn is None:
                return
            self._run(
                conn,
                "INSERT OR REPLACE INTO entries (key, kind, model, created_at, body)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, kind, model, time.time(), body),
            )
            self._counts[f"{kind}_writes"] += 1

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def get_completion(self, key: str) -> Completion | None:
        """The stored completion (``cached=True``), or None when missing or not reading."""
        looked_up, body = self._get("completion", key)
        if not looked_up:
            return None
        if body is not None:
            try:
                completion = Completion.model_validate_json(body)
            except ValidationError:
                pass  # written by an incompatible version: a miss, called again and overwritten
            else:
                self._count("completion_hits")
                return completion.model_copy(update={"cached": True})
        self._count("completion_misses")
        return None

    def put_completion(self, key: str, completion: Completion, *, model: str) -> None:
        """Store one successful completion (commits at once); a no-op in read/off mode."""
        self._put("completion", key, model, completion.model_dump_json(exclude={"cached"}))

    def get_verdict(self, key: str) -> dict | None:
        """The stored verdict dict, or None when missing or not reading."""
        looked_up, body = self._get("verdict", key)
        if not looked_up:
            return None
        if body is not None:
            try:
                verdict = json.loads(body)
            except ValueError:
                verdict = None
            if isinstance(verdict, dict):
                self._count("verdict_hits")
                return verdict
        self._count("verdict_misses")
        return None

    def put_verdict(self, key: str, verdict: Mapping, *, judge_model: str) -> None:
        """Store one verdict dict (commits at once); a no-op in read/off mode."""
        body = json.dumps(scrub_secrets(verdict), ensure_ascii=False, allow_nan=False)
        self._put("verdict", key, judge_model, body)

    def completion_history(self, model: str, limit: int = 500) -> dict[str, float] | None:
        """Means of the ``limit`` newest stored completions of ``model`` (for estimates):
        ``calls``, ``prompt_tokens``, ``completion_tokens``, ``latency_s``; None when none.
        An answer stored under its run's key and the shared key counts once."""
        with self._lock:
            conn = self._connection()
            if conn is None or self._empty:
                return None
            rows = self._run(
                conn,
                "SELECT body FROM entries WHERE kind = 'completion' AND model = ?"
                " GROUP BY body ORDER BY MAX(created_at) DESC LIMIT ?",
                (model, int(limit)),
            )
        found = []
        for (body,) in rows:
            try:
                found.append(Completion.model_validate_json(body))
            except ValidationError:
                continue
        if not found:
            return None
        n = len(found)
        return {
            "calls": n,
            "prompt_tokens": sum(c.usage.prompt_tokens for c in found) / n,
            "completion_tokens": sum(c.usage.completion_tokens for c in found) / n,
            "latency_s": sum(c.latency_s for c in found) / n,
        }

    # -- runs ----------------------------------------------------------------------------

    def begin_run(self, fingerprint: str, mode: AnswersMode) -> AnswerScope:
        """The answer scope of a new run: resumes the latest interrupted run with the same
        ``fingerprint`` in ``resume`` mode (when this cache can be read)."""
        row = None
        if mode == "resume" and self._readable:
            row = self._latest_running(fingerprint)
        now = time.time()
        if row is not None:
            run_id, served, system_fp, started = row
            identity = (served, system_fp) if served is not None else None
            scope = AnswerScope(mode, run_id, True, identity, started)
            self._run_write("UPDATE runs SET updated_at = ? WHERE run_id = ?", (now, run_id))
            return scope
        scope = AnswerScope(mode, new_run_id(), started_at=now)
        self.record_run(scope, fingerprint)
        return scope

    def record_run(self, scope: AnswerScope, fingerprint: str) -> None:
        """Store a new run (a no-op when this cache does not write)."""
        now = time.time()
        self._run_write(
            "INSERT OR IGNORE INTO runs (run_id, fingerprint, state, started_at, updated_at)"
            " VALUES (?, ?, 'running', ?, ?)",
            (scope.run_id, fingerprint, now, now),
        )

    def set_run_identity(
        self, run_id: str, served_model: str | None, system_fp: str | None
    ) -> None:
        """What the endpoint said it served for the run's first stored answer (kept once)."""
        self._run_write(
            "UPDATE runs SET served_model = ?, system_fingerprint = ?, updated_at = ?"
            " WHERE run_id = ? AND served_model IS NULL",
            (served_model or "", system_fp, time.time(), run_id),
        )

    def end_run(self, run_id: str, *, complete: bool) -> None:
        """A complete run is never resumed; an incomplete one stays resumable."""
        state = "complete" if complete else "running"
        self._run_write(
            "UPDATE runs SET state = ?, updated_at = ? WHERE run_id = ?",
            (state, time.time(), run_id),
        )

    def _latest_running(self, fingerprint: str) -> tuple[Any, ...] | None:
        with self._lock:
            conn = self._connection()
            if conn is None or self._empty:
                return None
            try:
                rows = conn.execute(
                    "SELECT run_id, served_model, system_fingerprint, started_at FROM runs"
                    " WHERE fingerprint = ? AND state = 'running'"
                    " ORDER BY updated_at DESC LIMIT 1",
                    (fingerprint,),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # a cache written before runs were recorded
                    return None
                raise CacheError(
                    f"the cache file {self.path} failed ({exc}); {advice(self.path)}"
                ) from exc
            except sqlite3.DatabaseError as exc:
                raise CacheError(
                    f"the cache file {self.path} failed ({exc}); {advice(self.path)}"
                ) from exc
        return rows[0] if rows else None

    def stats(self) -> dict[str, int]:
        """Hits, misses and writes per kind by this object (no lookups in write/off mode)."""
        with self._lock:
            return dict(self._counts)


def drop_completions(cache_dir: Path) -> tuple[int, int]:
    """Delete every stored model answer from the cache in ``cache_dir``, keeping the judge
    verdicts, and compact the file so no deleted answer lingers in it: (verdicts, removed)."""
    path = Path(cache_dir).expanduser() / CACHE_FILENAME
    if not path.is_file():
        return 0, 0
    cache = Cache(path, "readwrite")
    try:
        with cache._lock:
            conn = cache._connection()
            assert conn is not None
            # Each answer is stored under its run's key and a key shared by all runs: count the
            # answers, not the rows.
            removed = conn.execute(
                "SELECT COUNT(DISTINCT body) FROM entries WHERE kind = 'completion'"
            ).fetchone()[0]
            conn.execute("DELETE FROM entries WHERE kind = 'completion'")
            kept = conn.execute("SELECT COUNT(*) FROM entries WHERE kind = 'verdict'").fetchone()
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError as exc:
        raise CacheError(f"the cache file {path} failed ({exc}); {advice(path)}") from exc
    finally:
        cache.close()
    return int(kept[0]), int(removed)
