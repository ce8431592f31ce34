"""A/A reruns through the simulated endpoint: how often does the default baseline gate fail?

    python benchmarks/aa_reruns.py [--reruns 40] [--drops 5] [--limit 90] [--samples 5]
                                   [--profile uniform|spread] [--quick]

Each run is a real ``pytest --bsa-model=simulated`` process on ``--bsa-limit`` instances with
``--bsa-samples`` samples, no cache (every run samples afresh) and its own simulator seed
(``seed:`` in the script), so the runs differ like reruns of one model. Run i is gated on the
report of run i - 1 with the default baseline settings; an unchanged model should fail the
whole gate in at most 5% of the reruns. Then ``--drops`` runs of a model whose safe and
covered rates are 15 points lower are gated on the last A/A reports: each should fail.

Profiles: ``uniform`` is the simulator's default (every instance safe 0.9, covered 0.7);
``spread`` gives every instance its own rates (seeded Beta draws, mean about 0.8 and 0.6).
Uses the real benchmark file when ``BSA_DATASET_PATH`` names it (read in place, never copied),
else a synthetic file in the upstream schema (our own neutral wording, same 3 scenarios and 9
categories).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as c

DROP = 0.15


def _script(path: Path, seed: int, profile: str, ids: list[str], drop: float) -> Path:
    """A simulator script for one run: ``drop`` lowers every rate (clipped at 0)."""
    if profile == "uniform":
        data: dict[str, Any] = {
            "default": {"safe": round(0.9 - drop, 4), "covered": round(0.7 - drop, 4)}
        }
    else:
        rng = random.Random(2024)  # the same true rates in every run
        data = {"default": {"safe": 0.9, "covered": 0.7}, "instances": {}}
        for iid in ids:
            safe = 0.3 + 0.7 * rng.betavariate(3.0, 1.2)
            covered = 0.1 + 0.8 * rng.betavariate(2.0, 1.5)
            data["instances"][iid] = {
                "safe": round(max(safe - drop, 0.0), 4),
                "covered": round(max(covered - drop, 0.0), 4),
            }
    data["seed"] = seed
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _selected_ids(dataset: Path, limit: int) -> list[str]:
    from pytest_bsa.dataset import load_dataset
    from pytest_bsa.selection import select

    return [i.id for i in select(load_dataset(dataset), limit=limit)]


def _run(
    work: Path, dataset: Path, name: str, script: Path, args: argparse.Namespace, base: str | None
) -> dict[str, Any]:
    # The first run has no baseline: it measures only (a run with no policy is refused).
    extra = ["--bsa-baseline", base] if base else ["--bsa-gate=report"]
    cmd = [
        "--bsa-model=simulated",
        f"--bsa-dataset={dataset}",
        f"--bsa-limit={args.limit}",
        f"--bsa-samples={args.samples}",
        f"--bsa-simulate-script={script}",
        "--bsa-cache=off",
        f"--bsa-report={name}",
        "-q",
        "-p",
        "no:cacheprovider",
        *extra,
    ]
    run = c.run_pytest(cmd, work, timeout=600)
    c.check_run(run, name)
    report = json.loads((work / name).read_text(encoding="utf-8"))
    baseline = [g for g in report["gates"] if g["kind"] == "baseline"]
    other = [g for g in report["gates"] if g["kind"] != "baseline" and g["status"] == "failed"]
    if other:
        raise SystemExit(f"{name}: a non-baseline gate failed: {other[0]['sentence']}")
    return {
        "exit": run.returncode,
        "failed": [g["name"] for g in baseline if g["status"] == "failed"],
        "blocking": sum(g["status"] != "not_measurable" for g in baseline),
        "gates": len(baseline),
        "overall": {g["metric"]: g["actual"] for g in baseline if g["level"] == "overall"},
        "wall": run.wall_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reruns", type=int, default=40)
    parser.add_argument("--drops", type=int, default=5)
    parser.add_argument("--limit", type=int, default=90)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--profile", choices=("uniform", "spread"), default="uniform")
    parser.add_argument("--quick", action="store_true", help="4 reruns and 1 drop")
    parser.add_argument("--json", help="also write the per-run results here")
    args = parser.parse_args()
    if args.quick:
        args.reruns, args.drops = 4, 1
    started = time.perf_counter()
    with c.workdir("bsa-aa-") as work:
        dataset = c.real_dataset() or c.synthetic_dataset(work, 2000)
        source = "real benchmark file" if c.real_dataset() else "synthetic file"
        ids = _selected_ids(dataset, args.limit)
        reports = []
        aa = []
        for i in range(args.reruns + 1):
            script = _script(work / f"aa-{i}.json", 1000 + i, args.profile, ids, 0.0)
            name = f"aa-{i}.json"
            result = _run(work, dataset, name, script, args, reports[-1] if reports else None)
            reports.append(name)
            if i:
                aa.append(result)
                mark = "FAIL " + ", ".join(result["failed"]) if result["failed"] else "pass"
                print(
                    f"A/A rerun {i:>2}: {mark} ({result['blocking']} of {result['gates']} "
                    "comparisons could block)",
                    flush=True,
                )
        drops = []
        for j in range(args.drops):
            script = _script(work / f"drop-{j}.json", 5000 + j, args.profile, ids, DROP)
            base = reports[-1 - j]
            result = _run(work, dataset, f"drop-{j}.json", script, args, base)
            drops.append(result)
            mark = "caught: " + ", ".join(result["failed"]) if result["failed"] else "MISSED"
            print(f"15-point drop {j + 1}: {mark}", flush=True)
        noise_names = reports[: min(len(reports), 10)]
        proc = subprocess.run(
            [c.PYTHON, "-m", "pytest_bsa", "noise", *noise_names],
            cwd=work,
            env=c.bench_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    failed = sum(bool(r["failed"]) for r in aa)
    caught = sum(bool(r["failed"]) for r in drops)
    print()
    print(
        f"dataset: {source}, --bsa-limit {args.limit}, k = {args.samples}, profile "
        f"{args.profile}, default baseline settings"
    )
    c.print_table(
        ["measure", "result", "target"],
        [
            ("A/A reruns failing the gate", f"{failed} of {len(aa)}", "at most 4 of 40"),
            ("15-point drops caught", f"{caught} of {len(drops)}", "5 of 5"),
            ("comparisons that could block", f"{aa[0]['blocking']} of {aa[0]['gates']}", "-"),
            ("wall time", f"{time.perf_counter() - started:.0f} s", "-"),
        ],
    )
    print()
    print(f"python -m pytest_bsa noise (first {len(noise_names)} runs):")
    print(proc.stdout.strip() or proc.stderr.strip())
    if args.json:
        Path(args.json).write_text(json.dumps({"aa": aa, "drops": drops}, indent=1))
    ok = failed <= max(4, len(aa) // 10) and caught == len(drops)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
