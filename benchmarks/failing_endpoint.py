"""An endpoint that answers HTTP 500 to everything: how fast and how gently a run gives up.

    python benchmarks/failing_endpoint.py [--instances 30]

A real ``pytest`` run at the default settings (5 samples, 6 retries with backoff, concurrency
16, circuit breaker 5) against the simulator in its own process, every request answered 500.
Reported: wall time, requests sent, samples asked at all, the most requests for one sample, the
exit code and the line that says why the run stopped.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import _common as c

TARGET_S = 60.0
MAX_RETRIES = 6  # the default


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=30, help="instances (default 30)")
    args = parser.parse_args()
    with c.workdir("bsa-bench-fail-") as tmp:
        dataset = c.synthetic_dataset(tmp, args.instances)
        script = c.write_script(tmp, faults=[{"kind": "server_error", "status": 500}])
        with c.SimulatorProcess(script) as sim:
            run = c.run_pytest(
                c.bsa_args(sim.base_url, dataset, tmp / "cache"), cwd=tmp, timeout=600
            )
            stats = sim.stats()
    per_sample = Counter()
    for iid, samples in stats["samples"].items():
        for sample, roles in samples.items():
            per_sample[iid, sample] = roles["model"]
    stop = [line for line in run.output.splitlines() if line.startswith("!")]
    print(f"failing endpoint: {args.instances} instances x 5 samples, every request HTTP 500")
    c.print_table(
        ("wall s", "requests", "samples asked", "max per sample", "exit code"),
        [
            (
                run.wall_s,
                sum(per_sample.values()),
                len(per_sample),
                max(per_sample.values(), default=0),
                run.returncode,
            )
        ],
    )
    print("\n" + (stop[0] if stop else "(no stop line)"))
    met = (
        run.wall_s < TARGET_S
        and run.returncode == 1
        and max(per_sample.values(), default=0) <= 1 + MAX_RETRIES
        and len(stop) == 1
    )
    print(
        f"\ntarget: failed gate within {TARGET_S:g} s, one stop line, no sample asked more "
        f"than {1 + MAX_RETRIES} times: {run.wall_s:.1f} s -> {c.verdict(met)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
