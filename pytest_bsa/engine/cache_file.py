"""The cache's SQLite file: one file in WAL mode shared by processes, opened read-only or
read-write, its schema version checked, one connection per process behind a lock (no pytest
import). :class:`pytest_bsa.engine.cache.Cache` stores answers, verdicts, runs and batches in it."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from typing_extensions import Self

CacheMode = Literal["readwrite", "read", "write", "off"]


CACHE_MODES: tuple[CacheMode, ...] = ("readwrite", "read", "write", "off")


CACHE_FILENAME = "cache.sqlite3"


SCHEMA_VERSION = 1


# 2: completions are split by the rules of #9 (leading block only, truncation from finish_reason)
BUSY_TIMEOUT_S = 30.0


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


class CacheError(Exception):
    """The cache file cannot be used (corrupt, foreign, or from a newer pytest-bsa)."""


def advice(path: Path) -> str:
    return f"run with --bsa-cache=off, or delete {path} to start a fresh cache"


class CacheFile:
    """The open file; ``off`` mode touches no file, ``read`` mode never creates one."""

    def __init__(self, path: Path, mode: CacheMode = "readwrite") -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"cache mode {mode!r} is not one of {', '.join(CACHE_MODES)}")
        self.path = Path(path).expanduser()
        self.mode: CacheMode = mode
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._closed = False
        self._empty = False  # read mode on an empty file: every lookup misses
        self._readable = mode in ("readwrite", "read")
        self._writable = mode in ("readwrite", "write")
        if mode == "off" or (mode == "read" and not self.path.exists()):
            return
        self._conn = self._connect()

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
                f"cannot open the cache file {self.path}: {exc}; {advice(self.path)}"
            ) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._init_with_retries(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CacheError(
                f"the cache file {self.path} is not a usable pytest-bsa cache ({exc}); "
                f"{advice(self.path)}"
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
                f"pytest-bsa reads version {SCHEMA_VERSION}); {advice(self.path)}"
            )

    def _check_foreign(self, tables: set[str]) -> None:
        if tables and not {"meta", "entries"} <= tables:
            raise CacheError(
                f"the cache file {self.path} is an SQLite database that pytest-bsa did not "
                f"write (tables: {', '.join(sorted(tables))}); {advice(self.path)}"
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
                f"the cache file {self.path} failed ({exc}); {advice(self.path)}"
            ) from exc

    def _run_write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            conn = self._connection()
            if not self._writable or conn is None:
                return
            self._run(conn, sql, params)

    def close(self) -> None:
        """Close the file (idempotent); later gets and puts raise :class:`CacheError`."""
        with self._lock:
            if self._conn is not None and os.getpid() == self._pid:
                self._conn.close()
            self._conn = None
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
