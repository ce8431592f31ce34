"""What adaptive concurrency costs when the endpoint never complains: the same pytest run with
``--bsa-concurrency-mode adaptive`` and ``fixed``, interleaved, against one simulator process.

    python benchmarks/adaptive_overhead.py [--quick] [--latency S] [--instances N]
        [--concurrency C] [--rounds R]

Without 429s or latency growth the adaptive controller never paces or cuts, so the two should
measure the same; the table shows the median pytest session time of each and their ratio. The
controller itself costs about 0.6 us per call (pace check and bookkeeping).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _common as c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small round")
    parser.add_argument("--latency", type=float, default=0.0, help="model latency, s (0)")
    parser.add_argument("--instances", type=int, help="instances per run (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight (32)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    instances = args.instances or (100 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 3)
    print(
        f"adaptive overhead: {instances} instances x 5 samples with judge, model latency "
        f"{args.latency:g} s, concurrency {args.concurrency}, {rounds} round(s), no rate limit"
    )
    times: dict[str, list[float]] = {"adaptive": [], "fixed": []}
    calls: dict[str, list[int]] = {"adaptive": [], "fixed": []}
    with (
        c.workdir("bsa-bench-ao-") as tmp,
        c.SimulatorProcess(c.write_script(tmp, args.latency)) as sim,
    ):
        dataset = c.synthetic_dataset(tmp, instances)
        for round_no in range(rounds):
            order = list(times) if round_no % 2 == 0 else list(reversed(times))
            for mode in order:  # alternated, so neither mode always runs first
                sim.reset()
                cache_dir = Path(tempfile.mkdtemp(prefix="cache-", dir=tmp))
                run = c.run_pytest(
                    c.bsa_args(
                        sim.base_url, dataset, cache_dir, "--bsa-samples", "5",
                        "--bsa-concurrency", str(args.concurrency),
                        "--bsa-concurrency-mode", mode,
                    ),
                    cwd=tmp,
                )  # fmt: skip
                c.check_run(run, mode)
                assert run.session_s is not None
                times[mode].append(run.session_s)
                calls[mode].append(sim.calls())
    print()
    c.print_table(
        ("mode", "calls", "session s (median)", "per round"),
        [
            (mode, int(c.median(calls[mode])), c.median(times[mode]),
             " ".join(f"{t:.2f}" for t in times[mode]))
            for mode in times
        ],
    )  # fmt: skip
    ratio = c.median(times["adaptive"]) / c.median(times["fixed"])
    print(f"\nadaptive / fixed: {ratio:.3f}x (no signals: expected about 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
