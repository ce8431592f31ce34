"""A rate-limited endpoint: the same run at several fixed concurrencies versus adaptive.

    python benchmarks/ratelimit.py [--quick] [--rps R] [--instances N] [--latency S]

The simulator runs in its own process in its rate-limited mode: a token bucket of R requests/s
(burst 5) in front of model and judge, answering 429 with the exact Retry-After beyond it; model
replies take ``--latency`` seconds, judge replies come at once. Each run is a real pytest run
(N instances x 5 samples, judge, fresh cache) with ``--bsa-concurrency-mode fixed`` at each
concurrency, then ``adaptive`` with the largest one as its ceiling. Reported per run: pytest's
session time, the 429s the server sent, retries and samples that ended in an error. The best fixed
concurrency is chosen in hindsight among the runs without errors; the target is adaptive <= 1.15x
its time, with no errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import _common as c

TARGET = 1.15
SAMPLES = 5


def write_script(directory: Path, rps: float, latency: float) -> Path:
    path = directory / "ratelimited.json"
    script = {
        "default": {"latency": latency},
        "rate_limit": {"requests_per_second": rps, "burst": 5},
    }
    path.write_text(json.dumps(script), encoding="utf-8")
    return path


def one_run(
    sim: c.SimulatorProcess, tmp: Path, dataset: Path, instances: int, mode: str, conc: int
) -> dict:
    sim.reset()
    cache_dir = Path(tempfile.mkdtemp(prefix="cache-", dir=tmp))
    report = cache_dir / "report.json"
    args = c.bsa_args(
        sim.base_url,
        dataset,
        cache_dir,
        "--bsa-limit", str(instances), "--bsa-samples", str(SAMPLES),
        "--bsa-concurrency", str(conc), "--bsa-concurrency-mode", mode,
        "--bsa-report", str(report),
    )  # fmt: skip
    run = c.run_pytest(args, cwd=tmp, timeout=600)
    c.check_run(run, f"{mode} {conc}")
    stats = sim.stats()
    data = json.loads(report.read_text(encoding="utf-8"))
    errors = sum(1 for r in data["instances"] for s in r["samples"] if s.get("error"))
    totals = data["totals"]
    return {
        "mode": mode,
        "concurrency": conc,
        "session_s": run.session_s,
        "wall_s": run.wall_s,
        "throttled": stats["throttled"],
        "calls": stats["roles"]["model"]["requests"] + stats["roles"]["judge"]["requests"],
        "retries": (totals["model"]["retries"] or 0) + (totals["judge"]["retries"] or 0),
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (~30 s)")
    parser.add_argument("--rps", type=float, default=200.0, help="the endpoint's limit (200)")
    parser.add_argument("--instances", type=int, help="instances per run (default 200)")
    parser.add_argument("--latency", type=float, default=0.3, help="model latency, s (0.3)")
    parser.add_argument(
        "--fixed", default="8,16,32,64,128,256", help="fixed concurrencies (8,...,256)"
    )
    args = parser.parse_args()
    instances = args.instances or (40 if args.quick else 200)
    fixed = [int(x) for x in args.fixed.split(",")]
    if args.quick:
        fixed = [16, 64, 256]
    print(
        f"ratelimit: {instances} instances x {SAMPLES} samples with judge, endpoint limit "
        f"{args.rps:g} requests/s (burst 5), model latency {args.latency:g} s; fixed "
        f"{', '.join(map(str, fixed))} vs adaptive with ceiling {max(fixed)}"
    )
    runs = []
    with c.workdir("bsa-bench-rl-") as tmp:
        script = write_script(tmp, args.rps, args.latency)
        with c.SimulatorProcess(script) as sim:
            dataset = c.synthetic_dataset(tmp, instances)
            for conc in fixed:
                runs.append(one_run(sim, tmp, dataset, instances, "fixed", conc))
            runs.append(one_run(sim, tmp, dataset, instances, "adaptive", max(fixed)))
    clean = [r for r in runs if r["mode"] == "fixed" and r["errors"] == 0]
    best = min(clean or [r for r in runs if r["mode"] == "fixed"], key=lambda r: r["session_s"])
    adaptive = runs[-1]
    ideal = adaptive["calls"] / args.rps
    print()
    c.print_table(
        ("run", "session s", "x best fixed", "calls", "429s", "retries", "errors"),
        [
            (
                f"{r['mode']} {r['concurrency']}",
                r["session_s"],
                r["session_s"] / best["session_s"],
                r["calls"],
                r["throttled"],
                r["retries"],
                r["errors"],
            )
            for r in runs
        ],
    )
    ratio = adaptive["session_s"] / best["session_s"]
    met = ratio <= TARGET and adaptive["errors"] == 0
    print(
        f"\nbest fixed: concurrency {best['concurrency']} ({best['session_s']:.1f} s); the "
        f"limit alone allows no less than {ideal:.1f} s for the adaptive run's "
        f"{adaptive['calls']} accepted calls"
    )
    print(
        f"target: adaptive <= {TARGET}x best fixed, 0 errors: {ratio:.2f}x, "
        f"{adaptive['errors']} errors -> {c.verdict(met)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
