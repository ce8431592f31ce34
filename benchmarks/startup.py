"""What the installed but inactive plugin costs every pytest run.

    python benchmarks/startup.py [--quick] [--repeat N]

Runs ``pytest --collect-only -q -p no:cacheprovider`` on an empty directory, alternating the
plugin as installed (inactive: no ``--bsa-model``) with ``-p no:bsa`` (not loaded at all), after
two warm-up runs of each. Reports the medians, the difference of the medians and the median of
the paired differences, the plugin module's own import time, and which heavy modules an
inactive run has loaded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import _common as c

TARGET_MS = 50.0
HEAVY = (
    "litellm",
    "aiohttp",
    "httpx",
    "pydantic",
    "yaml",
    "pytest_bsa.engine",
    "pytest_bsa.session",
)


def one_run(directory: Path, *extra: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [c.PYTHON, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *extra],
        cwd=directory,
        env=c.bench_env(),
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 5):  # 5: no tests collected
        raise SystemExit(f"pytest exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return elapsed


_PROBE = """
import json, sys, time
import pytest
started = time.perf_counter()
import pytest_bsa.plugin
import_ms = (time.perf_counter() - started) * 1000
pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider"])
heavy = sorted({m for m in sys.modules for h in HEAVY if m == h or m.startswith(h + ".")})
print(json.dumps({"import_ms": import_ms, "heavy": heavy}))
"""


def import_profile(directory: Path) -> tuple[float, list[str]]:
    """(ms to import pytest_bsa.plugin after pytest, heavy modules loaded by an inactive run)."""
    proc = subprocess.run(
        [c.PYTHON, "-c", f"HEAVY = {HEAVY!r}\n{_PROBE}"],
        cwd=directory,
        env=c.bench_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(data["import_ms"]), list(data["heavy"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions each")
    parser.add_argument("--repeat", type=int, help="repetitions of each variant (default 20)")
    args = parser.parse_args()
    repeat = args.repeat or (5 if args.quick else 20)
    with c.workdir("bsa-bench-start-") as tmp:
        for _ in range(2):  # warm-up: bytecode cache, page cache
            one_run(tmp)
            one_run(tmp, "-p", "no:bsa")
        inactive: list[float] = []
        disabled: list[float] = []
        for _ in range(repeat):
            inactive.append(one_run(tmp))
            disabled.append(one_run(tmp, "-p", "no:bsa"))
        plugin_ms, heavy = import_profile(tmp)
    med_in, med_off = c.median(inactive) * 1000, c.median(disabled) * 1000
    paired = c.median([(a - b) * 1000 for a, b in zip(inactive, disabled, strict=True)])
    print(f"startup: pytest --collect-only on an empty directory, {repeat} alternating runs each\n")
    c.print_table(
        ("variant", "median ms", "min ms", "max ms"),
        [
            ("plugin installed, inactive", med_in, min(inactive) * 1000, max(inactive) * 1000),
            ("-p no:bsa", med_off, min(disabled) * 1000, max(disabled) * 1000),
        ],
    )
    print(
        f"\ndifference of medians: {med_in - med_off:+.1f} ms; "
        f"median paired difference: {paired:+.1f} ms"
    )
    print(
        f"import of pytest_bsa.plugin after pytest (no rewriting): {plugin_ms:.1f} ms; "
        f"heavy modules loaded while inactive: {', '.join(heavy) or 'none'}"
    )
    diff = med_in - med_off
    print(
        f"\ntarget: inactive overhead under {TARGET_MS:g} ms: {diff:+.1f} ms "
        f"-> {c.verdict(diff < TARGET_MS)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
