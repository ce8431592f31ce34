"""Anthropic model and judge against the simulated Messages endpoint: the direct transport
versus litellm's Anthropic provider, same server, same request mix, same run.

    python benchmarks/anthropic.py [--quick] [--samples N] [--concurrency C] [--rounds R]

Each client runs the plugin's pipeline in its own subprocess, timed after imports and a warm-up:
per sample one model call (``anthropic/claude-sim``), then a safety and a reasoning judge call
built with the package's own judge prompts from that completion, at most C calls in flight.
The direct client is ``AnthropicTransport``; the litellm client is ``LiteLLMTransport`` (what
pytest-bsa used for ``anthropic/`` models before). Calls are counted at the server. Every
verdict label must be identical between the two (checked), and the ratio of calls/s is taken
within each round. A pytest run with ``anthropic/`` model and judge shows the whole plugin's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c

TARGET_RATIO = 5.0
MODEL_PARAMS = {"temperature": 0.6, "max_tokens": 8192}
JUDGE_PARAMS = {"temperature": 0.0, "max_tokens": 1024}


async def pipeline(kind: str, root: str, dataset: Path, samples: int, concurrency: int) -> dict:
    """Run ``samples`` samples through model and judge; returns {sample key: [labels]}."""
    from pytest_bsa.dataset import load_dataset
    from pytest_bsa.engine.anthropic_transport import AnthropicTransport
    from pytest_bsa.engine.litellm_transport import LiteLLMTransport
    from pytest_bsa.engine.types import ChatRequest
    from pytest_bsa.rubrics.bsa import BSA_RUBRIC

    transport = AnthropicTransport() if kind == "direct" else LiteLLMTransport("sk-benchmark")
    instances = load_dataset(dataset)
    gate = asyncio.Semaphore(concurrency)

    async def call(request: ChatRequest):
        async with gate:
            return await transport.complete(request, timeout=60)

    async def one(n: int) -> tuple[str, list[str]]:
        instance = instances[n // 5 % len(instances)]
        hints = {"X-BSA-Instance": instance.id, "X-BSA-Sample": str(n % 5)}
        model = ChatRequest(
            model="anthropic/claude-sim",
            messages=({"role": "user", "content": instance.query},),
            api_base=root,
            params=MODEL_PARAMS,
            headers=hints,
        )
        completion = await call(model)
        labels = []
        for verdict, text in (("safety", completion.answer), ("reasoning", completion.reasoning)):
            prompt = BSA_RUBRIC.prompt(
                verdict, instance, text or "(empty)", truncated=False, structured=True
            )
            judge = ChatRequest(
                model="anthropic/claude-sim-judge",
                messages=prompt.messages,
                api_base=root,
                params=JUDGE_PARAMS,
                response_format=prompt.response_format,
                headers={**hints, "X-BSA-Judge": verdict},
            )
            answer = (await call(judge)).answer
            labels.append(BSA_RUBRIC.parse(verdict, instance, answer).label)
        return f"{instance.id}:{n % 5}", labels

    results = await asyncio.gather(*(one(n) for n in range(samples)))
    await transport.aclose()
    return dict(results)


def worker(kind: str, root: str, dataset: Path, samples: int, concurrency: int) -> None:
    """Runs in a subprocess: import, warm up, then time the pipeline; prints JSON."""
    if kind == "litellm":
        from pytest_bsa.engine.litellm_transport import load_litellm

        load_litellm()  # imported before the clock starts
    asyncio.run(pipeline(kind, root, dataset, 20, min(concurrency, 10)))
    print("WARM", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    labels = asyncio.run(pipeline(kind, root, dataset, samples, concurrency))
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "labels": labels}), flush=True)


def run_worker(
    kind: str, sim: c.SimulatorProcess, dataset: Path, samples: int, concurrency: int
) -> tuple[int, float, dict]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, "--root", sim.root, "--dataset",
         str(dataset), "--samples", str(samples), "--concurrency", str(concurrency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=c.bench_env(),
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    if proc.stdout.readline().strip() != "WARM":
        proc.kill()
        raise SystemExit(f"{kind} worker failed during warm-up")
    sim.reset()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    result = json.loads(proc.stdout.readline())
    proc.wait(timeout=60)
    return sim.calls(), float(result["seconds"]), result["labels"]


def end_to_end(sim: c.SimulatorProcess, tmp: Path, dataset: Path, instances: int, conc: int):
    sim.reset()
    cache_dir = Path(tempfile.mkdtemp(prefix="cache-", dir=tmp))
    args = [
        "--bsa-model", "anthropic/claude-sim", "--bsa-api-base", sim.root,
        "--bsa-judge", "anthropic/claude-sim-judge", "--bsa-judge-api-base", sim.root,
        "--bsa-dataset", str(dataset), "--bsa-cache-dir", str(cache_dir), "-q",
        "-p", "no:cacheprovider", "--bsa-limit", str(instances), "--bsa-samples", "5",
        "--bsa-concurrency", str(conc), "--bsa-gate=report",
    ]  # fmt: skip
    run = c.run_pytest(args, cwd=tmp)
    c.check_run(run, "end to end")
    return sim.calls(), run.wall_s, run.session_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small round (~10 s)")
    parser.add_argument("--samples", type=int, help="samples per client (default 500)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight (32)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds, medians (default 3)")
    parser.add_argument("--worker", choices=("direct", "litellm"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.root, args.dataset, args.samples, args.concurrency)
        return 0
    samples = args.samples or (90 if args.quick else 500)
    rounds = args.rounds or (1 if args.quick else 3)
    e2e_instances = 40 if args.quick else 400
    print(
        f"anthropic: {samples} samples (3 calls each) per client, concurrency "
        f"{args.concurrency}, {rounds} round(s), zero-latency simulator in its own process"
    )
    rows: list[tuple[float, float, float, bool]] = []
    with c.workdir("bsa-bench-anthropic-") as tmp, c.SimulatorProcess(c.write_script(tmp)) as sim:
        dataset = c.synthetic_dataset(tmp, max(samples // 5 + 1, e2e_instances))
        for _ in range(rounds):
            d_calls, d_s, d_labels = run_worker("direct", sim, dataset, samples, args.concurrency)
            l_calls, l_s, l_labels = run_worker("litellm", sim, dataset, samples, args.concurrency)
            rows.append((d_calls / d_s, l_calls / l_s, (d_calls / d_s) / (l_calls / l_s),
                         d_labels == l_labels and len(d_labels) == samples))  # fmt: skip
        e2e_calls, e2e_wall, e2e_session = end_to_end(
            sim, tmp, dataset, e2e_instances, args.concurrency
        )
    print()
    c.print_table(
        ("round", "direct calls/s", "litellm calls/s", "ratio", "same verdicts"),
        [(i + 1, *r) for i, r in enumerate(rows)],
    )
    ratio = c.median([r[2] for r in rows])
    same = all(r[3] for r in rows)
    print(
        f"\npytest-bsa end to end with anthropic/ model and judge: {e2e_calls} calls, "
        f"{e2e_calls / e2e_wall:,.0f} calls/s (process wall), "
        f"{e2e_calls / (e2e_session or e2e_wall):,.0f} calls/s (pytest session)"
    )
    print(
        f"target: direct >= {TARGET_RATIO:g}x litellm calls/s with identical verdicts: "
        f"{ratio:.1f}x, verdicts {'identical' if same else 'DIFFERENT'} -> "
        f"{c.verdict(ratio >= TARGET_RATIO and same)}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
