"""Progress lines: what they say, and that they get past pytest's output capture."""

from __future__ import annotations

import pytest

from pytest_bsa.engine.counters import EngineStats
from pytest_bsa.reporting.progress import Progress


def test_line_reports_samples_rate_eta_tokens_cost_and_retries() -> None:
    stats = EngineStats()
    stats.started -= 10  # ten seconds into the run
    stats.model.completed, stats.model.cached = 30, 10
    stats.model.prompt_tokens, stats.model.completion_tokens = 1000, 4000
    stats.judge.completed, stats.judge.retries = 70, 2
    stats.model.cost_usd, stats.judge.cost_usd = 0.25, 0.5
    line = Progress(lambda _: None, total_samples=200).line(stats)
    assert line.startswith("bsa: 40/200 samples, 70 verdicts | 4.0 samples/s | ETA 40s")
    assert "5,000 tokens | $0.75 | 2 retries | 10s elapsed" in line


def test_unknown_prices_say_so() -> None:
    stats = EngineStats()
    stats.model.cost_known = False
    assert "cost unknown" in Progress(lambda _: None, total_samples=5).line(stats)


def test_lines_reach_the_terminal_while_a_test_waits(pytester: pytest.Pytester) -> None:
    """A slow endpoint: the line is written from inside a test's setup, past capture."""
    (pytester.path / "slow.yaml").write_text("default: {latency: 1.2}\n", encoding="utf-8")
    pytester.makeconftest(
        "import pytest_bsa.reporting.progress as p\np.LOG_INTERVAL = p.LIVE_INTERVAL = 0.5\n"
    )
    result = pytester.runpytest_subprocess(
        "--bsa-model=simulated", "--bsa-dataset=sample", "--bsa-limit=2", "--bsa-samples=1",
        "--bsa-simulate-script=slow.yaml", "--bsa-cache=off", "-p", "no:cacheprovider",
        "--bsa-gate=report",
    )  # fmt: skip
    assert result.ret == 0
    result.stdout.fnmatch_lines(["bsa: */2 samples, * verdicts | * samples/s | ETA *"])
