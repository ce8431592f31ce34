"""A fully cached rerun: 2,000 instances x 5 samples with judge, every answer and verdict cached.

    python benchmarks/cached_rerun.py [--quick] [--instances N]

A new run samples the model afresh; stored answers are reused only to resume an interrupted
run or when asked for: the timed rerun asks (``--bsa-answers=reuse``), as one does to iterate on
reports or the judge without paying the model again.

Uses the real benchmark file when ``BSA_DATASET_PATH`` names it (read in place, never copied),
else a synthetic file in the upstream schema written to a temporary directory. A first pass
fills the cache against a zero-latency simulator: it drives the package's own engine
(``build_engine`` with the settings the pytest run resolves to), which writes exactly the
entries the pytest run reads, without spending minutes on pytest's side of a first run. The
timed second pass is a real ``pytest`` run on the same cache; the server must see no calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _common as c

SAMPLES = 5
TARGET_S = 15.0
FILL_CONCURRENCY = 64


def fill_cache(base_url: str, dataset: Path, cache_dir: Path, workdir: Path) -> tuple[int, float]:
    """Sample and judge every instance through the engine; (instances, seconds)."""
    from pytest_bsa import dataset as ds
    from pytest_bsa.config import build_settings
    from pytest_bsa.engine.build import build_engine

    cli = {
        "model": "openai/sim",
        "api_base": base_url,
        "judge": "openai/sim",
        "judge_api_base": base_url,
        "dataset": str(dataset),
        "samples": SAMPLES,
        "concurrency": FILL_CONCURRENCY,
        "cache_dir": str(cache_dir),
    }
    settings = build_settings(cli, None, base_dir=workdir)
    instances = ds.load_dataset(dataset)
    started = time.perf_counter()
    engine, _ = build_engine(settings, cache_dir)
    try:
        engine.submit(instances)
        errors = sum(len(engine.result(i).errors) for i in instances)
    finally:
        engine.close()
        if engine.cache is not None:
            engine.cache.close()
    if errors:
        raise SystemExit(f"filling the cache: {errors} samples failed")
    return len(instances), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 synthetic instances (~5 s)")
    parser.add_argument("--instances", type=int, help="synthetic instances (default 2000)")
    parser.add_argument(
        "--max-seconds", type=float, default=150.0, help="kill the rerun after this long (150)"
    )
    args = parser.parse_args()
    real = None if args.quick or args.instances else c.real_dataset()
    n = args.instances or (200 if args.quick else 2000)
    with c.workdir("bsa-bench-cache-") as tmp:
        dataset = real or c.synthetic_dataset(tmp, n)
        label = "real file ($BSA_DATASET_PATH)" if real else f"synthetic, {n} instances"
        print(f"cached rerun: {label} x {SAMPLES} samples, with judge")
        cache_dir = tmp / "cache"
        with c.SimulatorProcess(c.write_script(tmp)) as sim:
            count, fill_s = fill_cache(sim.base_url, dataset, cache_dir, tmp)
            model_calls, judge_calls = sim.role_calls()
            sim.reset()
            run = c.run_pytest(
                c.bsa_args(
                    sim.base_url,
                    dataset,
                    cache_dir,
                    "--bsa-samples",
                    str(SAMPLES),
                    "--bsa-answers=reuse",
                ),
                cwd=tmp,
                timeout=args.max_seconds,
            )
            if not run.timed_out:
                c.check_run(run, "cached rerun")
            rerun_calls = sim.calls()
    print()
    c.print_table(
        ("pass", "instances", "model calls", "judge calls", "session s", "wall s"),
        [
            ("fill (engine only)", count, model_calls, judge_calls, "-", fill_s),
            (
                "cached rerun (pytest)",
                count,
                rerun_calls,
                "-",
                "-" if run.session_s is None else run.session_s,
                f">{run.wall_s:g} (killed)" if run.timed_out else run.wall_s,
            ),
        ],
    )
    if rerun_calls:
        print(f"\nwarning: the rerun made {rerun_calls} calls; the cache was not complete")
    met = run.wall_s < TARGET_S and rerun_calls == 0
    print(
        f"\ntarget: cached rerun under {TARGET_S:g} s (process wall): {run.wall_s:.1f} s "
        f"-> {c.verdict(met)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
