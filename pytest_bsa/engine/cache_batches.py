"""Batch mode's rows in the cache file: which provider batch holds the answer to a request, so
a rerun after Ctrl-C, a kill or a CI timeout polls that batch instead of paying again (tables
``batches`` and ``batch_requests``; no pytest import).

A model request's key carries its run's answer scope like a stored answer's, so only the run
that submitted it, resumed, or a run with ``--bsa-answers=reuse`` picks it up. Judge requests
are shared, like verdicts.
"""

from __future__ import annotations

import sqlite3
import time

from pytest_bsa.engine.cache_file import CacheError, CacheFile, advice
from pytest_bsa.engine.cache_keys import normalise_api_base


class BatchRecords(CacheFile):
    """The batch tables of the cache file (a part of :class:`~pytest_bsa.engine.cache.Cache`)."""

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
                    f"the cache file {self.path} failed ({exc}); {advice(self.path)}"
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
                    f"the cache file {self.path} failed ({exc}); {advice(self.path)}"
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
