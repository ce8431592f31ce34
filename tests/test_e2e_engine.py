"""End-to-end engine behaviour: resume from the cache, flaky endpoints, xdist and shards."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    SIX,
    SIX_PLAN,
    Plan,
    endpoint_args,
    expected_groups,
    per_sample,
    read_json,
    requests,
    run_bsa,
    script_for,
    wait_until,
    write_rows,
)

from pytest_bsa.simulate import Behaviour, Fault, FaultMatch, Script

T, F = True, False
METRICS = ("safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score")
# The sample set with a mixed, deterministic behaviour (per-sample hashes of the seed).
MIXED = Script(default=Behaviour(safe=0.8, covered=0.6), seed=3)
# No instance criteria (so no xfail per instance), four thresholds, one of them failing.
GATES_YAML = """\
criteria:
  default: {safe: 0.0, think: 0.0}
thresholds:
  overall: {safe_at_1: 0.5, think_at_1: 0.9}
  scenarios:
    Cognitive Shortcut: {think_at_k: 0.1}
  categories:
    Rumors: {safe_at_1: 0.7}
"""


def assert_groups_match_plan(groups: dict) -> None:
    for key, want in expected_groups(SIX, SIX_PLAN).items():
        for metric in METRICS:
            value = want[metric]
            if value is None:
                assert groups[key][metric] is None, (key, metric)
            else:
                assert groups[key][metric] == pytest.approx(value, abs=1e-12, rel=0), (key, metric)


# -- resume --


def test_a_new_run_samples_afresh_and_reuses_only_verdicts_unless_asked(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    sim = simulator(MIXED)
    config = pytester.makefile(".yaml", bsa=GATES_YAML)
    common = ("--bsa-dataset=sample", "--bsa-samples=2", f"--bsa-config={config}")
    first = run_bsa(pytester, *common, "--bsa-report=first.json", cache_dir=cache_dir, sim=sim)
    assert first.ret == 1, first.stdout.str()
    first.stdout.fnmatch_lines(["GATE FAILED overall::think_at_1: *"])
    model_calls, judge_calls = requests(sim)
    assert model_calls == 45 * 2
    assert judge_calls > 0
    sim.reset_stats()

    # A finished run is never resumed: the model is asked again (whatever it serves now); the
    # judge's verdicts on identical texts (this simulator is deterministic) come from the cache.
    second = run_bsa(pytester, *common, "--bsa-report=second.json", cache_dir=cache_dir, sim=sim)
    assert second.ret == 1, second.stdout.str()
    second.stdout.fnmatch_lines(["bsa: answers: sampled afresh (run *)"])
    assert requests(sim) == (90, 0)
    a, b = read_json(pytester.path / "first.json"), read_json(pytester.path / "second.json")
    assert b["groups"] == a["groups"]
    assert b["gates"] == a["gates"]
    assert (b["totals"]["model"]["calls"], b["totals"]["model"]["cached"]) == (90, 0)
    assert b["provenance"]["answers"]["from_cache"] == 0
    assert b["provenance"]["answers"]["run_id"] != a["provenance"]["answers"]["run_id"]
    second.stdout.fnmatch_lines(
        ["requests: model 90 (0 retries), judge 0 (0 retries) | cache hits: model 0, *"]
    )
    sim.reset_stats()

    # Asked for explicitly (judge or report iterations): every stored answer is reused.
    third = run_bsa(
        pytester,
        *common,
        "--bsa-answers=reuse",
        "--bsa-report=third.json",
        cache_dir=cache_dir,
        sim=sim,
    )
    assert third.ret == 1, third.stdout.str()
    assert requests(sim) == (0, 0)
    c = read_json(pytester.path / "third.json")
    assert c["groups"] == a["groups"]
    assert (c["totals"]["model"]["calls"], c["totals"]["model"]["cached"]) == (0, 90)
    assert c["provenance"]["answers"]["mode"] == "reuse"
    assert c["provenance"]["answers"]["from_cache"] == 90
    third.stdout.fnmatch_lines(
        [
            "bsa: answers: reusing any stored answer to the same request (--bsa-answers=reuse)",
            "*requests: model 0 (0 retries), judge 0 (0 retries) | cache hits: model 90, *",
        ]
    )


def _quiet(sim, settled, window: float = 0.5) -> None:
    """Wait until ``settled()`` holds and the simulator saw nothing new for ``window`` seconds."""

    def still() -> bool:
        if not settled():
            return False
        before = sim.stats()
        time.sleep(window)
        return sim.stats() == before

    wait_until(still)


def test_a_killed_run_resumes_without_repeating_completed_calls(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    """SIGKILL while one instance's first model calls hang; the rerun asks only for those."""
    stuck = "cs-same"
    hang_once = Fault(match=FaultMatch(instance=stuck, role="model"), kind="hang", times=1)
    sim = simulator(script_for(SIX_PLAN, faults=[hang_once]))
    dataset = write_rows(pytester, SIX)
    common = [
        f"--bsa-dataset={dataset}",
        "--bsa-samples=3",
        f"--bsa-report={pytester.path}/r.json",
        "--bsa-gate=report",
    ]
    log = (pytester.path / "run1.log").open("wb")
    proc = pytester.popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:hypothesispytest",
            *common,
            "--bsa-timeout=120",
            f"--bsa-cache-dir={cache_dir}",
            *endpoint_args(sim),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def settled() -> bool:
        roles = sim.stats()["roles"]
        model, judge = roles["model"], roles["judge"]
        return (
            model["requests"] == 18  # every first model call, the 3 hanging ones included
            and model["completions"] == 15
            and judge["requests"] == judge["completions"]  # no verdict in flight
        )

    try:
        _quiet(sim, settled)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (pytester.path / "r.json").exists()
    run1 = per_sample(sim)
    judged_in_run1 = sim.stats()["roles"]["judge"]["requests"]
    assert judged_in_run1 > 0

    # The rerun resumes the interrupted run (same settings): the stuck instance's second
    # attempts do not hang (the fault fired once each). One completed sample is asked again:
    # the check that the endpoint still serves the model the interrupted run saw.
    result = run_bsa(pytester, *common, cache_dir=cache_dir, sim=sim)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "bsa: answers: resuming interrupted run * (same settings) if the endpoint still *",
            "answers: resumed interrupted run * (the endpoint serves the model it saw): 14 "
            "answers from it, the others sampled in this run",
        ]
    )
    total = per_sample(sim)
    probed = []
    for (iid, sample), roles in total.items():
        again = {r: roles[r] - run1.get((iid, sample), {}).get(r, 0) for r in roles}
        if iid == stuck:
            assert again["model"] == 1, (iid, sample)  # the hung call, asked once more
            assert roles["model"] == 2
        elif again["model"]:
            probed.append((iid, sample))
            assert again == {"model": 1, "judge": 0}  # same answer: its verdicts are stored
        else:
            assert again == {"model": 0, "judge": 0}, (iid, sample)  # completed: never repeated
            assert roles["model"] == 1
    assert len(probed) == 1
    assert sorted(k for k in total if k[0] == stuck) == [(stuck, 0), (stuck, 1), (stuck, 2)]
    data = read_json(pytester.path / "r.json")
    assert len(data["instances"]) == 6
    assert data["totals"]["model"]["calls"] == 3 + 1
    assert data["totals"]["model"]["cached"] == 15 - 1
    assert data["provenance"]["answers"]["resumed"] is True
    assert_groups_match_plan(data["groups"])


# -- a flaky endpoint --

# Each kind fires at some rate on model and judge calls alike. With this seed every kind fires at
# least once and no request fails twice in a row (the hashes are deterministic), so retries stay
# short; the assertions below check the first half of that claim on the simulator's counters.
FLAKY = [
    Fault(kind="rate_limit", rate=0.08, retry_after=0.01),
    Fault(kind="server_error", rate=0.08),
    Fault(kind="drop", rate=0.08),
    Fault(kind="hang", rate=0.08),
]


def test_a_flaky_endpoint_still_completes_every_sample_with_clean_metrics(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    dataset = write_rows(pytester, SIX)
    flaky = simulator(script_for(SIX_PLAN, faults=FLAKY, seed=6))
    clean = simulator(script_for(SIX_PLAN, seed=6))
    common = (f"--bsa-dataset={dataset}", "--bsa-samples=3", "--bsa-cache=off")
    result = run_bsa(
        pytester,
        *common,
        "--bsa-timeout=0.5",
        "--bsa-report=flaky.json",
        cache_dir=cache_dir,
        sim=flaky,
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=3, xfailed=5)  # nothing errored
    reference = run_bsa(
        pytester, *common, "--bsa-report=clean.json", cache_dir=cache_dir, sim=clean
    )
    assert reference.ret == 0

    stats = flaky.stats()["roles"]
    fired = {
        kind: stats["model"]["faults_by_kind"].get(kind, 0)
        + stats["judge"]["faults_by_kind"].get(kind, 0)
        for kind in ("rate_limit", "server_error", "drop", "hang")
    }
    assert all(count >= 1 for count in fired.values()), fired
    faults = stats["model"]["faults"] + stats["judge"]["faults"]
    assert (stats["model"]["completions"], stats["judge"]["completions"]) == requests(clean)
    assert sum(requests(flaky)) == sum(requests(clean)) + faults

    got, want = read_json(pytester.path / "flaky.json"), read_json(pytester.path / "clean.json")
    assert {s["status"] for s in got["statuses"]} == {"met", "missed"}
    assert got["groups"] == want["groups"]
    assert got["gates"] == want["gates"]
    assert_groups_match_plan(got["groups"])
    assert got["totals"]["model"]["retries"] + got["totals"]["judge"]["retries"] == faults


# -- pytest-xdist and shards --


@pytest.fixture
def single_run(pytester: pytest.Pytester, cache_dir: Path, simulator):
    """The reference: one process over the sample set, with four thresholds (one failing)."""
    sim = simulator(MIXED)
    config = pytester.makefile(".yaml", bsa=GATES_YAML)
    args = ("--bsa-dataset=sample", "--bsa-samples=2", f"--bsa-config={config}")
    result = run_bsa(pytester, *args, "--bsa-report=single.json", cache_dir=cache_dir, sim=sim)
    assert result.ret == 1
    return sim, args, result, read_json(pytester.path / "single.json")


def test_xdist_reproduces_the_single_process_report(
    pytester: pytest.Pytester, tmp_path: Path, single_run
) -> None:
    sim, args, single, reference = single_run
    fresh = tmp_path / "xdist-cache"  # its workers make their own calls
    sim.reset_stats()
    result = run_bsa(
        pytester,
        *args,
        "-n",
        "2",
        "--bsa-report=xdist.json",
        cache_dir=fresh,
        sim=sim,
        subprocess=True,
    )
    assert result.ret == single.ret == 1
    result.stdout.fnmatch_lines(["2 workers [45 items]"])
    assert requests(sim)[0] == 90
    data = read_json(pytester.path / "xdist.json")
    assert data["groups"] == reference["groups"]
    assert data["gates"] == reference["gates"]
    assert data["statuses"] == reference["statuses"]
    result.stdout.fnmatch_lines(
        ["GATE FAILED overall::think_at_1: *", "*bsa::gate::overall::think_at_1*"]
    )
    assert [ln for ln in result.outlines if ln.startswith("  all instances")] == [
        ln for ln in single.outlines if ln.startswith("  all instances")
    ]
    # The summary keeps one row per line and its requests line (counted from the results).
    table = [ln for ln in single.outlines if ln.startswith("  ")]
    assert [ln for ln in result.outlines if ln.startswith("  ")][: len(table)] == table
    result.stdout.fnmatch_lines(["requests: model 90, judge *| cache hits: model 0, judge *"])
    for run in (single, result):
        shown = [int(p) for p in re.findall(r"\[ *(\d+)%\]", run.stdout.str())]
        assert shown and max(shown) == 100 == shown[-1]  # progress ends at, never passes, 100%


def test_shards_merged_reproduce_the_single_process_report(
    pytester: pytest.Pytester, cache_dir: Path, single_run
) -> None:
    sim, args, single, reference = single_run
    shard_ids = []
    for index in (1, 2):
        result = run_bsa(
            pytester,
            *args,
            f"--bsa-shard={index}/2",
            f"--bsa-report=shard{index}.json",
            cache_dir=cache_dir,
            sim=sim,
        )
        assert result.ret in (0, 1)
        shard_ids.append(
            {
                r["instance"]["id"]
                for r in read_json(pytester.path / f"shard{index}.json")["instances"]
            }
        )
    assert not shard_ids[0] & shard_ids[1]
    assert len(shard_ids[0] | shard_ids[1]) == 45

    merged = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_bsa",
            "merge",
            "shard1.json",
            "shard2.json",
            "-o",
            "merged.json",
        ],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert merged.returncode == single.ret == 1, merged.stderr
    data = read_json(pytester.path / "merged.json")
    assert data["groups"] == reference["groups"]
    assert data["gates"] == reference["gates"]
    assert data["statuses"] == reference["statuses"]
    assert data["exit_code"] == reference["exit_code"] == 1
    assert "FAIL overall::think_at_1:" in merged.stdout


def test_report_totals_count_every_verdict_once_as_a_call_or_a_cache_hit(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    """Sample 1 repeats sample 0's answer (its safety verdict is cached) with new reasoning."""
    row = SIX[0]
    sim = simulator(script_for({row.id: Plan((T, T), (T, F))}))
    dataset = write_rows(pytester, [row])
    first = run_bsa(
        pytester, f"--bsa-dataset={dataset}", "--bsa-samples=1", cache_dir=cache_dir, sim=sim
    )
    assert first.ret == 0
    assert requests(sim) == (1, 2)
    sim.reset_stats()

    second = run_bsa(
        pytester,
        f"--bsa-dataset={dataset}",
        "--bsa-samples=2",
        "--bsa-answers=reuse",
        "--bsa-report=second.json",
        cache_dir=cache_dir,
        sim=sim,
    )
    assert second.ret == 0
    assert requests(sim) == (1, 1)  # sample 1's answer and its reasoning verdict
    second.stdout.fnmatch_lines(
        ["requests: model 1 (0 retries), judge 1 (0 retries) | cache hits: model 1, judge 3 | *"]
    )
    totals = read_json(pytester.path / "second.json")["totals"]
    assert (totals["model"]["calls"], totals["model"]["cached"]) == (1, 1)
    assert (totals["judge"]["calls"], totals["judge"]["cached"]) == (1, 3)
