"""Persistent response and verdict cache: one SQLite file in WAL mode, shared by processes.

Judge verdicts are pure functions of their inputs, the judge and the rubric: every run reuses
them. Model answers are samples of whatever the endpoint serves today, so they are scoped to a
*run* (:class:`AnswerScope`): a new run samples afresh, and only a rerun that resumes an
interrupted run with the same settings (or a run that asks for reuse explicitly) gets them back.
Batch mode records which provider batch holds each request (tables ``batches`` and
``batch_requests``), so a rerun polls that batch instead of paying again; a model request's key
carries its run's scope like a stored answer's, so only the run that submitted it, resumed, or a
run with ``--bsa-answers=reuse`` picks it up. Judge requests are shared, like verdicts.
Each ``put`` commits on its own, so a Ctrl-C or SIGKILL loses at most the calls still in flight.
Only successful completions and parsed verdicts are stored: the engine never puts a failed
call (a transport error or an unjudged verdict), so a resumed run retries exactly those.

Nothing secret is stored. Keys are sha256 digests; the key material leaves out headers, the
userinfo and query of ``api_base``, and any param whose name marks it as a credential. Stored
bodies are ``Completion`` JSON and the judge's verdict dicts (credential-named fields removed).
No pytest import.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from pytest_bsa.engine.types import ChatRequest
from pytest_bsa.models import Completion

CacheMode = Literal["readwrite", "read", "write", "off"]
CACHE_MODES: tuple[CacheMode, ...] = ("readwrite", "read", "write", "off")
CACHE_FILENAME = "cache.sqlite3"
SCHEMA_VERSION = 1
KEY_FORMAT = 2  # bump to invalidate every key when the key material changes meaning
# 2: completions are split by the rules of #9 (leading block only, truncation from finish_reason)
BUSY_TIMEOUT_S = 30.0

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Whole words (split on non-alphanumerics and camelCase) that name a credential anywhere in a
# param name, and words that do so as the last word ("api_key", "access_token"). Count-like
# names such as "max_tokens" or "stop_token_ids" are generation params and stay in the key.
_SECRET_WORDS = frozenset(
    {"secret", "password", "passwd", "apikey", "credential", "credentials", "authorization"}
)
_SECRET_LAST_WORDS = frozenset({"key", "token", "auth", "bearer"})
_SECRET_SUBSTRINGS = ("api_key", "api-key", "apikey", "secret", "password")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS entries ("
    " key TEXT PRIMARY KEY, kind TEXT NOT NULL, model TEXT NOT NULL,"
    " created_at REAL NOT NULL, body TEXT NOT NULL)",
    # One row per run that stored model answers: resumable while its state is 'running'.
    "CREATE TABLE IF NOT EXISTS runs ("
    " run_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, state TEXT NOT NULL,"
    " served_model TEXT, system_fingerprint TEXT,"
    " started_at REAL NOT NULL, updated_at REAL NOT NULL)",
    # Batch mode: which provider batch holds the answer to a request, so a rerun after Ctrl-C,
    # a kill or a CI timeout polls that batch instead of paying for the request again.
    "CREATE TABLE IF NOT EXISTS batches ("
    " batch_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, provider TEXT NOT NULL,"
    " requests INTEGER NOT NULL, created_at REAL NOT NULL)",
    # A model request's key carries its run's answer scope (see AnswerScope), so only the run
    # that submitted it (resumed) finds it again; ``scope`` names that run (NULL: a request every
    # run shares, a judge request or one made with --bsa-answers=reuse).
    "CREATE TABLE IF NOT EXISTS batch_requests ("
    " key TEXT PRIMARY KEY, batch_id TEXT NOT NULL, custom_id TEXT NOT NULL,"
    " scope TEXT, created_at REAL NOT NULL)",
)
AnswersMode = Literal["resume", "fresh", "reuse"]


@dataclass(frozen=True)
class AnswerScope:
    """Which stored model answers a run may use.

    ``resume`` (the default): answers stored by this run only; a run whose settings fingerprint
    matches an interrupted run continues that run (``resumed``), after the engine has checked
    that the endpoint still serves the model the interrupted run saw (``identity``: served
    model name and ``system_fingerprint`` of its first answer). ``fresh``: a new run, always.
    ``reuse``: any stored answer to the same request, from any run (explicitly asked for).
    """

    mode: AnswersMode
    run_id: str
    resumed: bool = False
    identity: tuple[str | None, str | None] | None = None
    started_at: float | None = None

    @property
    def key_scope(self) -> str | None:
        """What completion keys are scoped to (None: shared by every run)."""
        return None if self.mode == "reuse" else self.run_id

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "run_id": self.run_id,
            "resumed": self.resumed,
            "identity": list(self.identity) if self.identity else None,
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AnswerScope:
        identity = data.get("identity")
        return cls(
            mode=data["mode"],  # type: ignore[arg-type]
            run_id=str(data["run_id"]),
            resumed=bool(data.get("resumed")),
            identity=tuple(identity) if identity else None,  # type: ignore[arg-type]
            started_at=data.get("started_at"),  # type: ignore[arg-type]
        )

    def fresh(self) -> AnswerScope:
        """A new run with the same mode (a resume that was refused)."""
        return AnswerScope(self.mode, new_run_id())


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


class CacheError(Exception):
    """The cache file cannot be used (corrupt, foreign, or from a newer pytest-bsa)."""


def is_secret_name(name: str) -> bool:
    """Whether a param or field name looks like it holds a credential."""
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_SUBSTRINGS):
        return True
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", spaced) if w]
    if not words:
        return False
    return words[-1] in _SECRET_LAST_WORDS or any(w in _SECRET_WORDS for w in words)


def _scrub(value: Any) -> Any:
    """``value`` with every credential-named mapping entry removed, at any depth."""
    if isinstance(value, Mapping):
        return {str(k): _scrub(v) for k, v in value.items() if not is_secret_name(str(k))}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def normalise_api_base(api_base: str | None) -> str | None:
    """``scheme://host:port/path``: lower-case scheme and host, explicit port, no userinfo,
    query, fragment or trailing slash. ``None`` (the provider's default endpoint) stays None."""
    if api_base is None or not api_base.strip():
        return None
    text = api_base.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    netloc = host if port is None else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _digest(material: Mapping[str, Any]) -> str:
    text = json.dumps(
        material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def completion_key(request: ChatRequest, sample_index: int, scope: str | None = None) -> str:
    """The cache key of sample ``sample_index`` of ``request`` in run ``scope``.

    Depends on the normalised endpoint, model, messages, params (credential-named ones
    dropped), response format, sample index and the run scope (``None``: shared by every run);
    never on headers (routing hints) or key order.
    """
    material: dict[str, Any] = {
        "type": "completion",
        "v": KEY_FORMAT,
        "api_base": normalise_api_base(request.api_base),
        "model": request.model,
        "messages": list(request.messages),  # the prompt itself: never scrubbed
        "params": _scrub(request.params),
        "response_format": request.response_format,
        "sample_index": int(sample_index),
    }
    if scope is not None:
        material["run"] = scope
    return _digest(material)


def verdict_key(judge_model: str, rubric_version: str, kind: str, inputs: Mapping[str, str]) -> str:
    """The cache key of one judge verdict: judge model, rubric version, verdict kind, inputs."""
    return _digest(
        {
            "type": "verdict",
            "v": KEY_FORMAT,
            "judge_model": judge_model,
            "rubric_version": rubric_version,
            "kind": kind,
            "inputs": dict(inputs),
        }
    )


def _advice(path: Path) -> str:
    return f"run with --bsa-cache=off, or delete {path} to start a fresh cache"


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
            raise CacheError(f"the cache file {str(path)!r} is not a file; {_advice(path)}")
        Cache(path, "read").close()  # opened read-only: validates without writing
        return
    if mode == "read":
        return
    parent = next((p for p in (cache_dir, *cache_dir.parents) if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CacheError(f"the cache directory {str(cache_dir)!r} cannot be created; {fix}")


class Cache:
    """Completions and verdicts keyed by :func:`completion_key` and :func:`verdict_key`.

    Modes: ``readwrite`` reads and writes; ``read`` never writes (and creates no file);
    ``write`` never reads (refreshes entries); ``off`` is a no-op that touches no file.
    Thread-safe (one connection behind a lock); several processes may share one file.
    """

    def __init__(self, path: Path, mode: CacheMode = "readwrite") -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"cache mode {mode!r} is not one of {', '.join(CACHE_MODES)}")
        self.path = Path(path).expanduser()
        self.mode: CacheMode = mode
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {
            f"{kind}_{what}": 0
            for kind in ("completion", "verdict")
            for what in ("hits", "misses", "writes")
        }
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._closed = False
        self._empty = False  # read mode on an empty file: every lookup misses
        self._readable = mode in ("readwrite", "read")
        self._writable = mode in ("readwrite", "write")
        if mode == "off" or (mode == "read" and not self.path.exists()):
            return
        self._conn = self._connect()

    @classmethod
    def open(cls, cache_dir: Path, mode: CacheMode) -> Cache:
        """The cache in ``<cache_dir>/cache.sqlite3``."""
        return cls(Path(cache_dir).expanduser() / CACHE_FILENAME, mode)

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r}, mode={self.mode!r})"

    # -- connection ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if self._writable:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path,
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(
                f"cannot open the cache file {self.path}: {exc}; {_advice(self.path)}"
            ) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._init_with_retries(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CacheError(
                f"the cache file {self.path} is not a usable pytest-bsa cache ({exc}); "
                f"{_advice(self.path)}"
            ) from exc
        except CacheError:
            conn.close()
            raise
        return conn

    def _init_with_retries(self, conn: sqlite3.Connection) -> None:
        """Switching a new file to WAL does not wait on SQLite's busy handler: when several
        processes (pytest-xdist workers) open a fresh cache at once, retry for a while."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._check_and_init(conn)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _check_and_init(self, conn: sqlite3.Connection) -> None:
        if self._writable:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
                self._check_foreign(tables)
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        else:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            self._check_foreign(tables)
            if "meta" not in tables:  # an empty database file: nothing cached yet
                self._empty = True
                return
        row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        version = row[0] if row else None
        if version != str(SCHEMA_VERSION):
            newer = version is not None and version.isdigit() and int(version) > SCHEMA_VERSION
            why = "a newer pytest-bsa" if newer else "an unknown format"
            raise CacheError(
                f"the cache file {self.path} has schema version {version!r} ({why}; this "
                f"pytest-bsa reads version {SCHEMA_VERSION}); {_advice(self.path)}"
            )

    def _check_foreign(self, tables: set[str]) -> None:
        if tables and not {"meta", "entries"} <= tables:
            raise CacheError(
                f"the cache file {self.path} is an SQLite database that pytest-bsa did not "
                f"write (tables: {', '.join(sorted(tables))}); {_advice(self.path)}"
            )

    def _connection(self) -> sqlite3.Connection | None:
        """The open connection (reopened in a forked child), or None when there is no file."""
        if self._closed:
            raise CacheError(f"the cache {self.path} is closed")
        if self._conn is not None and os.getpid() != self._pid:
            # A connection must not cross fork(); the parent keeps and closes its own.
            self._pid = os.getpid()
            self._conn = self._connect()
        return self._conn

    def _run(
        self, conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]
    ) -> list[tuple[Any, ...]]:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise CacheError(
                f"the cache file {self.path} failed ({exc}); {_advice(self.path)}"
            ) from exc

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
        body = json.dumps(_scrub(verdict), ensure_ascii=False, allow_nan=False)
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

    # -- batch mode ----------------------------------------------------------------------

    def batch_request(self, key: str) -> tuple[str, str] | None:
        """(batch id, custom id) of the batch that holds request ``key``, if one does (never
        in ``write`` mode, which reads nothing stored)."""
        with self._lock:
            conn = self._connection()
            if conn is None or self._empty or not self._writable or not self._readable:
                return None
            rows = self._run(
                conn, "SELECT batch_id, custom_id FROM batch_requests WHERE key = ?", (key,)
            )
        return (rows[0][0], rows[0][1]) if rows else None

    def put_batch(
        self,
        batch_id: str,
        *,
        endpoint: str,
        provider: str,
        entries: list[tuple[str, str, str | None]],
    ) -> None:
        """Record a submitted batch and its (request key, custom id, answer scope) triples in
        one commit."""
        with self._lock:
            conn = self._connection()
            if conn is None or not self._writable:
                return
            now = time.time()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT OR REPLACE INTO batches (batch_id, endpoint, provider, requests,"
                    " created_at) VALUES (?, ?, ?, ?, ?)",
                    (batch_id, normalise_api_base(endpoint) or endpoint, provider,
                     len(entries), now),
                )  # fmt: skip
                conn.executemany(
                    "INSERT OR REPLACE INTO batch_requests"
                    " (key, batch_id, custom_id, scope, created_at) VALUES (?, ?, ?, ?, ?)",
                    [(key, batch_id, custom_id, scope, now) for key, custom_id, scope in entries],
                )
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise CacheError(
                    f"the cache file {self.path} failed ({exc}); {_advice(self.path)}"
                ) from exc

    def forget_batch_requests(self, keys: list[str]) -> None:
        """Drop requests whose answer was delivered (or failed): a new run asks afresh."""
        if not keys:
            return
        with self._lock:
            conn = self._connection()
            if conn is None or not self._writable:
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "DELETE FROM batch_requests WHERE key = ?", [(key,) for key in keys]
                )
                conn.execute(
                    "DELETE FROM batches WHERE batch_id NOT IN"
                    " (SELECT DISTINCT batch_id FROM batch_requests)"
                )
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise CacheError(
                    f"the cache file {self.path} failed ({exc}); {_advice(self.path)}"
                ) from exc

    def open_batches(self) -> list[tuple[str, str, str | None, int]]:
        """(batch id, endpoint, answer scope, requests still waiting) of every batch not yet
        delivered, per scope (a run id, or None for requests every run shares)."""
        with self._lock:
            conn = self._connection()
            if conn is None or self._empty:
                return []
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "batches" not in tables:
                return []
            rows = self._run(
                conn,
                "SELECT b.batch_id, b.endpoint, r.scope, COUNT(r.key) FROM batches b"
                " JOIN batch_requests r ON r.batch_id = b.batch_id"
                " GROUP BY b.batch_id, r.scope ORDER BY b.created_at",
                (),
            )
        return [(str(r[0]), str(r[1]), r[2], int(r[3])) for r in rows]

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
                    f"the cache file {self.path} failed ({exc}); {_advice(self.path)}"
                ) from exc
            except sqlite3.DatabaseError as exc:
                raise CacheError(
                    f"the cache file {self.path} failed ({exc}); {_advice(self.path)}"
                ) from exc
        return rows[0] if rows else None

    def _run_write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            conn = self._connection()
            if not self._writable or conn is None:
                return
            self._run(conn, sql, params)

    def stats(self) -> dict[str, int]:
        """Hits, misses and writes per kind by this object (no lookups in write/off mode)."""
        with self._lock:
            return dict(self._counts)

    def close(self) -> None:
        """Close the file (idempotent); later gets and puts raise :class:`CacheError`."""
        with self._lock:
            if self._conn is not None and os.getpid() == self._pid:
                self._conn.close()
            self._conn = None
            self._closed = True


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
        raise CacheError(f"the cache file {path} failed ({exc}); {_advice(path)}") from exc
    finally:
        cache.close()
    return int(kept[0]), int(removed)
