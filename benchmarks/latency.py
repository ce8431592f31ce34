"""Does concurrency hide endpoint latency? Wall time of a run over the ideal.

    python benchmarks/latency.py [--quick] [--instances N] [--latency S]

The simulator (its own process) waits ``--latency`` seconds before every model reply (judge
replies come at once). pytest-bsa runs ``N`` instances x 5 samples at ``--bsa-concurrency`` 64
and 256, each with a fresh cache. The ideal is model calls x latency / concurrency: what a
client with no overhead of its own would need. The ratio uses pytest's own session time
(dataset load, collection, sampling, judging, gates); the process wall time is shown too.
"""

from __future__ import annotations

import argparse
import sys

import _common as c

SAMPLES = 5
TARGET = 1.1  # at concurrency 256


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 instances (~10 s)")
    parser.add_argument("--instances", type=int, help="instances per run (default 500)")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per model reply")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[64, 256], help="levels (64 256)"
    )
    args = parser.parse_args()
    n = args.instances or (100 if args.quick else 500)
    print(
        f"latency: {n} instances x {SAMPLES} samples, {args.latency:g} s per model reply, "
        "simulator in its own process"
    )
    rows = []
    with c.workdir("bsa-bench-lat-") as tmp:
        dataset = c.synthetic_dataset(tmp, n)
        with c.SimulatorProcess(c.write_script(tmp, args.latency)) as sim:
            for conc in args.concurrency:
                sim.reset()
                run = c.run_pytest(
                    c.bsa_args(
                        sim.base_url,
                        dataset,
                        tmp / f"cache-{conc}",
                        "--bsa-samples",
                        str(SAMPLES),
                        "--bsa-concurrency",
                        str(conc),
                    ),
                    cwd=tmp,
                )
                c.check_run(run, f"concurrency {conc}")
                model_calls, judge_calls = sim.role_calls()
                ideal = model_calls * args.latency / conc
                assert run.session_s is not None
                rows.append(
                    (
                        conc,
                        model_calls,
                        judge_calls,
                        ideal,
                        run.session_s,
                        run.wall_s,
                        run.session_s / ideal,
                        run.wall_s / ideal,
                    )
                )
    print()
    c.print_table(
        (
            "concurrency",
            "model calls",
            "judge calls",
            "ideal s",
            "session s",
            "wall s",
            "session/ideal",
            "wall/ideal",
        ),
        rows,
    )
    at_256 = [r for r in rows if r[0] == 256]
    if at_256:
        ratio = at_256[0][6]
        print(
            f"\ntarget: session time within {TARGET:g}x of ideal at concurrency 256: "
            f"{ratio:.2f}x -> {c.verdict(ratio <= TARGET)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
