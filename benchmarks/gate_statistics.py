"""The baseline gate's statistics by simulation, with more replicates than the test suite.

    python benchmarks/gate_statistics.py [--quick] [--reps N]

Family-wise false alarms of the default gate (A/A reruns) at --bsa-limit 90, 300, 900 and
2000 under independent samples, correlated samples (ICC 0.3) and a 2-point drift between runs,
at the default max_drop (0.05) and at max_drop 0; the power to catch an overall drop of 10 and
15 points; the coverage of the 95% intervals at n = 3/10/30/100 (and of the percentile bootstrap
they replaced); the false alarms of the first version's uncorrected gate. The models are
those of ``tests/gatesim.py`` (the suite's fast, asserted version is
``tests/test_gate_simulation.py``). Pure computation: no model, no network.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import _common as c
from gatesim import (
    DRIFT,
    ICC,
    coverage,
    gate_failure_rate,
    single_test_power,
    uncorrected_failure_rate,
)

from pytest_bsa.config import BaselineConfig

MODELS = {"independent": {}, "icc": {"icc": ICC}, "drift": {"drift": DRIFT}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=400, help="replicates per cell at limit 90")
    parser.add_argument("--quick", action="store_true", help="few replicates, for a smoke run")
    args = parser.parse_args()
    reps90 = 40 if args.quick else args.reps
    started = time.perf_counter()
    rows = []
    for limit, share in ((90, 1), (300, 2), (900, 4), (2000, 10)):
        reps = max(10, reps90 // share)  # larger runs cost more per replicate
        for max_drop in (0.05, 0.0):
            cells = []
            blocking = []
            cfg = BaselineConfig(max_drop=max_drop)
            for seed, kw in enumerate(MODELS.values()):
                rate, mean_blocking = gate_failure_rate(
                    limit, reps, seed=100 * limit + seed, cfg=cfg, **kw
                )
                cells.append(f"{rate:.3f}")
                blocking.append(f"{mean_blocking:.0f}")
            rows.append((limit, max_drop, reps, "/".join(blocking), *cells))
        print(f"limit {limit} done ({time.perf_counter() - started:.0f} s)", flush=True)
    print()
    print("Family-wise false alarms of A/A reruns (share of reruns failing any baseline gate)")
    c.print_table(
        ["limit", "max_drop", "reruns", "blocking of 26 (per model)", *MODELS],
        rows,
    )
    power_rows = []
    for limit in (90, 300, 900):
        reps = 40 if args.quick else (200 if limit == 90 else 100)
        cells = []
        for drop, think_only in ((0.10, False), (0.10, True), (0.15, False), (0.15, True)):
            rate, _ = gate_failure_rate(
                limit, reps, seed=7 + limit, drop=drop, think_only=think_only
            )
            cells.append(f"{rate:.3f}")
        power_rows.append((limit, reps, *cells))
    print()
    print("Power: share of runs with a true overall drop that fail the default gate")
    c.print_table(
        ["limit", "runs", "10 pt both", "10 pt think", "15 pt both", "15 pt think"], power_rows
    )
    reps = 40 if args.quick else 400
    single = [single_test_power(100, 0.10, md, reps, seed=2) for md in (0.0, 0.05)]
    print(
        f"one think@1 comparison at alpha 0.05, n = 100, a 10-point drop ({reps} runs): power "
        f"{single[0]:.3f} at max_drop 0, {single[1]:.3f} at max_drop 0.05"
    )
    print()
    print("Coverage of one run's 95% safe@1 interval of the population mean (mean width)")
    cov_rows = []
    cov_reps = 100 if args.quick else 400
    for population in ("spread", "high"):
        for k in (5, 1):
            for method in ("wilson", "bootstrap"):
                for n in (3, 10, 30, 100):
                    cells = []
                    for model in MODELS:
                        reps = cov_reps if method == "wilson" else cov_reps // 2
                        rate, width = coverage(
                            n, model, seed=n, population=population, k=k, method=method, reps=reps
                        )
                        cells.append(f"{rate:.3f} ({width:.2f})")
                    cov_rows.append((population, k, method, n, *cells))
    c.print_table(["rates", "k", "interval", "n", *MODELS], cov_rows)
    print()
    reps = 40 if args.quick else 400
    before = [uncorrected_failure_rate(90, reps, seed=5, icc=icc) for icc in (0.0, ICC)]
    print(
        f"the first version's gate (26 comparisons, each at alpha on its own), limit 90, "
        f"{reps} A/A reruns: {before[0]:.3f} fail (independent), {before[1]:.3f} (ICC 0.3)"
    )
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
