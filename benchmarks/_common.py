"""Shared helpers for the benchmark scripts: datasets, a simulator process, pytest runs, tables.

The simulator runs in its own process (``python -m pytest_bsa.simulate``) so that, on a 2-core
machine, the server and the client under test each get a core instead of sharing one GIL.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

PYTHON = sys.executable
COLUMNS = ("id", "query", "risk_summary", "dataset_name", "label")
# Scenario sizes of the real benchmark (DESIGN.md section 2).
SCENARIO_SHARES = (("Risk Omission", 600), ("Cognitive Shortcut", 1200), ("Over Sensitivity", 200))
_PYTEST_TIME = re.compile(r" in (\d+(?:\.\d+)?)s")


PYCACHE = Path(tempfile.gettempdir()) / "pytest-bsa-bench-pycache"


def bench_env() -> dict[str, str]:
    """The environment for child processes, as on an ordinary install.

    Bytecode caching is on, in a private prefix (not next to the sources): with
    ``PYTHONDONTWRITEBYTECODE=1`` pytest re-parses and re-rewrites every plugin module on every
    run, which triples plain pytest startup on this machine and would swamp what we measure.
    litellm reads its bundled cost map instead of fetching it.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


# --------------------------------------------------------------------------- datasets


def real_dataset() -> Path | None:
    """The real benchmark file from ``$BSA_DATASET_PATH`` (read in place, never copied)."""
    value = os.environ.get("BSA_DATASET_PATH")
    if value and Path(value).is_file():
        return Path(value)
    return None


def synthetic_dataset(directory: Path, n: int) -> Path:
    """A CSV of ``n`` instances in the upstream schema, scenario mix as in the real file.

    Rows are the bundled sample rows (our own neutral wording) repeated with a case number
    appended to the query, so every instance has its own prompt and therefore its own cache key.
    """
    with resources.files("pytest_bsa").joinpath("data/sample.csv").open(encoding="utf-8") as f:
        templates = list(csv.DictReader(f))
    by_scenario = {
        name: [r for r in templates if r["dataset_name"] == name] for name, _ in SCENARIO_SHARES
    }
    total = sum(count for _, count in SCENARIO_SHARES)
    quotas = [(name, round(n * count / total)) for name, count in SCENARIO_SHARES]
    quotas[1] = (quotas[1][0], n - quotas[0][1] - quotas[2][1])
    path = directory / f"synthetic-{n}.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        case = 0
        for name, quota in quotas:
            rows = by_scenario[name]
            for i in range(quota):
                row = rows[i % len(rows)]
                case += 1
                writer.writerow(
                    {
                        "id": hashlib.md5(f"bench-{case}".encode()).hexdigest(),
                        "query": f"{row['query']} (Benchmark case {case}.)",
                        "risk_summary": row["risk_summary"],
                        "dataset_name": name,
                        "label": row["label"],
                    }
                )
    return path


# --------------------------------------------------------------------------- simulator


def write_script(directory: Path, latency: float = 0.0, faults: Sequence[dict] = ()) -> Path:
    """A simulator script: ``latency`` seconds before each model reply, and ``faults``."""
    path = directory / f"script-{latency:g}-{len(faults)}.json"
    script = {"default": {"latency": latency}, "faults": list(faults)}
    path.write_text(json.dumps(script), encoding="utf-8")
    return path


class SimulatorProcess:
    """``python -m pytest_bsa.simulate`` on a free loopback port, in its own process."""

    def __init__(self, script: Path) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "pytest_bsa.simulate", "--port", "0", "--script", str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=bench_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.base_url = match.group(1)  # ends in /v1
        self.root = self.base_url.removesuffix("/v1")

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.root + "/stats", timeout=30) as response:
            return json.load(response)

    def calls(self) -> int:
        """Requests the server has received (model + judge) since the last reset."""
        roles = self.stats()["roles"]
        return int(roles["model"]["requests"] + roles["judge"]["requests"])

    def role_calls(self) -> tuple[int, int]:
        roles = self.stats()["roles"]
        return int(roles["model"]["requests"]), int(roles["judge"]["requests"])

    def reset(self) -> None:
        request = urllib.request.Request(self.root + "/stats/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- pytest runs


@dataclass
class PytestRun:
    wall_s: float  # the whole process, interpreter start to exit
    session_s: float | None  # pytest's own "in N.NNs" (session start to end)
    returncode: int
    output: str
    timed_out: bool = False


def bsa_args(base_url: str, dataset: Path, cache_dir: Path, *extra: str) -> list[str]:
    """pytest arguments for a benchmark run against ``base_url`` (model and judge).

    Benchmarks measure the engine, not a model: they run measure-only (``--bsa-gate=report``).
    """
    return [
        "--bsa-gate=report",
        "--bsa-model",
        "openai/sim",
        "--bsa-api-base",
        base_url,
        "--bsa-judge",
        "openai/sim",
        "--bsa-judge-api-base",
        base_url,
        "--bsa-dataset",
        str(dataset),
        "--bsa-cache-dir",
        str(cache_dir),
        "-q",
        "-p",
        "no:cacheprovider",
        *extra,
    ]


def run_pytest(args: Sequence[str], cwd: Path, timeout: float = 300) -> PytestRun:
    """Run ``python -m pytest ARGS`` in ``cwd`` and time it from the outside.

    A run still going after ``timeout`` seconds is killed: ``timed_out`` is set and
    ``wall_s`` is the timeout (a lower bound).
    """
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [PYTHON, "-m", "pytest", *args],
            cwd=cwd,
            env=bench_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return PytestRun(timeout, None, -1, f"killed after {timeout:g} s", timed_out=True)
    wall = time.perf_counter() - started
    output = proc.stdout + proc.stderr
    found = _PYTEST_TIME.findall(output.strip().splitlines()[-1]) if output.strip() else []
    return PytestRun(wall, float(found[-1]) if found else None, proc.returncode, output)


def check_run(run: PytestRun, what: str) -> None:
    """Exit codes 0 (all passed) and 1 (instances xfailed or failed) mean the run completed."""
    if run.returncode not in (0, 1) or run.session_s is None:
        tail = "\n".join(run.output.splitlines()[-25:])
        raise SystemExit(f"{what}: pytest exited {run.returncode}\n{tail}")


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A scratch directory (also the cwd of pytest runs, so no project config applies)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


# --------------------------------------------------------------------------- output


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain fixed-width table."""
    cells = [[str(h) for h in headers], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if j else c.ljust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"
