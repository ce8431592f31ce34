"""The cache's record of a run: which stored model answers it may use (its
:class:`~pytest_bsa.engine.cache.AnswerScope`), and at its end whether it may be resumed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from pytest_bsa.config import Settings
from pytest_bsa.engine.cache import CACHE_FILENAME, CacheError
from pytest_bsa.engine.scope import AnswerScope, new_run_id
from pytest_bsa.run_plan import cache_dir


class RunRecords:
    """The run's answer scope and, on the controller, the cache holding its run record."""

    def __init__(self, cache: Any = None, scope: AnswerScope | None = None) -> None:
        self.cache = cache  # the controller's cache handle (None on workers, or cache off)
        self.scope = scope  # the model answers this run may reuse
        # Why an announced resume was refused (the served model changed), as a pytest-xdist
        # worker's report brings it to the controller (a single process's engine knows).
        self.resume_note: str | None = None

    @classmethod
    def begin(cls, settings: Settings, workerinput: Mapping[str, Any] | None) -> RunRecords:
        """A pytest-xdist worker takes the scope its controller chose; any other process
        begins a run record (raises ``CacheError`` for a cache that cannot be used). Without a
        cache file there is no interrupted run to resume: a new run, recorded by :meth:`record`
        when its first call is about to be made (no file is created before)."""
        if workerinput is not None:
            data = workerinput.get("bsa_scope")
            return cls(scope=AnswerScope.from_dict(data) if data else None)
        if settings.cache == "off":
            return cls()
        from pytest_bsa.engine.build import open_cache, run_fingerprint

        if not (cache_dir(settings) / CACHE_FILENAME).exists():
            return cls(scope=AnswerScope(settings.answers, new_run_id(), started_at=time.time()))
        cache = open_cache(settings, cache_dir(settings))
        return cls(cache, cache.begin_run(run_fingerprint(settings), settings.answers))

    def record(self, settings: Settings) -> None:
        """Record a run that :meth:`begin` decided without a cache file to read (the first call
        is about to be made: the file is created now, not before; raises ``CacheError``)."""
        if self.cache is not None or self.scope is None:
            return
        from pytest_bsa.engine.build import open_cache, run_fingerprint

        self.cache = open_cache(settings, cache_dir(settings))
        if self.cache is not None:
            self.cache.record_run(self.scope, run_fingerprint(settings))

    def end(self, engine: Any, *, complete: bool) -> None:
        """Close the run record: a complete run is never resumed; others may be."""
        cache = self.cache if self.cache is not None else getattr(engine, "cache", None)
        scope = engine.scope if engine is not None else self.scope
        if cache is None or scope is None:
            return
        # The run's outcome is already decided; a run record left 'running' only resumes.
        with contextlib.suppress(CacheError):
            cache.end_run(scope.run_id, complete=complete)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None
