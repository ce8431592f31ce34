"""Progress lines while a test waits for its instance: calls, rate, ETA, tokens, cost."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LIVE_INTERVAL = 5.0  # seconds between lines on an interactive terminal
LOG_INTERVAL = 30.0  # under -q or when the output is not a terminal


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


@dataclass
class Progress:
    """Writes one line each ``interval`` seconds that a test spends waiting for the engine.

    Lines are whole lines (never carriage-return rewrites), so they cannot garble pytest's own
    progress output; a fast run never waits long enough to print one.
    """

    write: Callable[[str], None]
    total_samples: int
    interval: float = LIVE_INTERVAL
    _last: tuple[float, int] | None = field(default=None, repr=False)

    @classmethod
    def for_config(cls, config: Any, total_samples: int) -> Progress:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        live = reporter is not None and reporter.isatty() and config.get_verbosity() >= 0

        def write(line: str) -> None:
            if reporter is None:
                return
            if capture is None:
                reporter.write_line(line)
                return
            with capture.global_and_fixture_disabled():  # the wait happens inside a test
                reporter.write_line(line)

        return cls(write, total_samples, LIVE_INTERVAL if live else LOG_INTERVAL)

    def line(self, stats: Any) -> str:
        model, judge = stats.model, stats.judge
        # Never past 100%: a resumed run's check of the served model samples one answer twice.
        done = min(model.completed + model.cached, self.total_samples)
        now = time.monotonic()
        elapsed = max(now - stats.started, 1e-9)
        if self._last is not None and now > self._last[0]:
            rate = (done - self._last[1]) / (now - self._last[0])
        else:
            rate = done / elapsed
        self._last = (now, done)
        remaining = max(self.total_samples - done, 0)
        eta = _duration(remaining / rate) if rate > 0 else "?"
        tokens = sum(c.prompt_tokens + c.completion_tokens for c in (model, judge))
        cost = model.cost_usd + judge.cost_usd
        cost_text = f"${cost:.2f}" if model.cost_known and judge.cost_known else "cost unknown"
        return (
            f"bsa: {done}/{self.total_samples} samples, {judge.completed + judge.cached} verdicts"
            f" | {rate:.1f} samples/s | ETA {eta} | {tokens:,} tokens | {cost_text} | "
            f"{model.retries + judge.retries} retries | {_duration(elapsed)} elapsed"
        )

    def emit(self, stats: Any) -> None:
        self.write(self.line(stats))
