"""Calls per second against a zero-latency simulated endpoint: pytest-bsa end to end versus a
raw aiohttp loop and a ``litellm.acompletion`` loop at the same concurrency, same server, same run.

    python benchmarks/throughput.py [--quick] [--instances N] [--concurrency C] [--rounds R]

End to end is a real ``pytest --bsa-model openai/sim ...`` subprocess (sampling, judging, SQLite
cache in a fresh directory, one pytest item per instance), timed from process start to exit;
its calls are counted at the server (``GET /stats``). The two client loops replay the same
request mix the plugin sends (per sample: one model request, a safety and a reasoning judge
request, built with the package's own judge prompts) from their own subprocess, timed after
imports and a short warm-up, so litellm's import time is not held against it. The three are
measured back to back in each of R interleaved rounds; the table shows medians, and the ratio to
litellm is taken within each round (the machine is shared and noisy).
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

SAMPLES = 5
MODEL_PARAMS = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 8192}
JUDGE_PARAMS = {"max_tokens": 8192}
TARGET_RATIO = 5.0


# --------------------------------------------------------------------------- request mix


async def build_mix(base_url: str, dataset: Path, n_instances: int) -> list[dict]:
    """Request specs (body and headers) in the plugin's order: model, safety, reasoning."""
    import aiohttp

    from pytest_bsa.dataset import load_dataset
    from pytest_bsa.reasoning import completion_from_openai
    from pytest_bsa.rubrics.bsa import BSA_RUBRIC

    instances = load_dataset(dataset)[:n_instances]
    url = base_url + "/chat/completions"
    mix: list[dict] = []
    async with aiohttp.ClientSession() as session:
        for instance in instances:
            for index in range(SAMPLES):
                headers = {"X-BSA-Instance": instance.id, "X-BSA-Sample": str(index)}
                body = {
                    "model": "sim",
                    "messages": [{"role": "user", "content": instance.query}],
                    **MODEL_PARAMS,
                }
                async with session.post(url, json=body, headers=headers) as response:
                    completion = completion_from_openai(await response.json(), latency_s=0.0)
                mix.append({"body": body, "headers": headers})
                texts = (("safety", completion.answer), ("reasoning", completion.reasoning or ""))
                for kind, text in texts:
                    prompt = BSA_RUBRIC.prompt(
                        kind, instance, text, truncated=False, structured=True
                    )
                    mix.append(
                        {
                            "body": {
                                "model": "sim",
                                "messages": list(prompt.messages),
                                "response_format": prompt.response_format,
                                **JUDGE_PARAMS,
                            },
                            "headers": {**headers, "X-BSA-Judge": kind},
                        }
                    )
    return mix


# --------------------------------------------------------------------------- client loops


async def aiohttp_loop(base_url: str, mix: list[dict], concurrency: int) -> None:
    import aiohttp

    url = base_url + "/chat/completions"
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(spec: dict) -> None:
            async with gate:
                data = json.dumps(spec["body"]).encode()
                headers = {"Content-Type": "application/json", **spec["headers"]}
                async with session.post(url, data=data, headers=headers) as response:
                    payload = json.loads(await response.read())
                    if response.status != 200 or "choices" not in payload:
                        raise RuntimeError(f"bad reply: {response.status}")

        await asyncio.gather(*(one(spec) for spec in mix))


async def litellm_loop(base_url: str, mix: list[dict], concurrency: int) -> None:
    import litellm

    litellm.suppress_debug_info = True
    gate = asyncio.Semaphore(concurrency)

    async def one(spec: dict) -> None:
        body = dict(spec["body"])
        async with gate:
            await litellm.acompletion(
                model="openai/" + body.pop("model"),
                messages=body.pop("messages"),
                api_base=base_url,
                api_key="sk-benchmark",
                extra_headers=spec["headers"],
                **body,
            )

    await asyncio.gather(*(one(spec) for spec in mix))


def worker(kind: str, base_url: str, mix_file: Path, concurrency: int, limit: int) -> None:
    """Runs in a subprocess: import, warm up, then time one client loop; prints JSON."""
    mix = json.loads(mix_file.read_text(encoding="utf-8"))[:limit]
    loop_fn = aiohttp_loop if kind == "aiohttp" else litellm_loop
    if kind == "litellm":
        import litellm  # noqa: F401  (imported before the clock starts)
    asyncio.run(loop_fn(base_url, mix[:30], min(concurrency, 10)))  # warm-up
    print("WARM", flush=True)
    sys.stdin.readline()  # the parent resets the server's counters, then says go
    started = time.perf_counter()
    asyncio.run(loop_fn(base_url, mix, concurrency))
    elapsed = time.perf_counter() - started
    print(json.dumps({"requests": len(mix), "seconds": elapsed}), flush=True)


def run_worker(
    kind: str, sim: c.SimulatorProcess, mix_file: Path, concurrency: int, limit: int
) -> tuple[int, float]:
    """(calls counted at the server, seconds) for one client loop in its own process."""
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--worker",
            kind,
            "--url",
            sim.base_url,
            "--mix",
            str(mix_file),
            "--concurrency",
            str(concurrency),
            "--limit",
            str(limit),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=c.bench_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    if proc.stdout.readline().strip() != "WARM":
        proc.kill()
        raise SystemExit(f"{kind} worker failed during warm-up")
    sim.reset()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    result = json.loads(proc.stdout.readline())
    proc.wait(timeout=60)
    return sim.calls(), float(result["seconds"])


# --------------------------------------------------------------------------- main


CLIENTS = (
    "raw aiohttp loop",
    "litellm.acompletion loop",
    "pytest-bsa end to end (process wall)",
    "pytest-bsa end to end (pytest session)",
)


def one_round(
    sim: c.SimulatorProcess, tmp: Path, dataset: Path, mix_file: Path, sizes: dict[str, int]
) -> list[tuple[int, float]]:
    """(calls, seconds) for each of CLIENTS, measured back to back."""
    conc = sizes["concurrency"]
    results = [
        run_worker("aiohttp", sim, mix_file, conc, sizes["raw"]),
        run_worker("litellm", sim, mix_file, conc, sizes["litellm"]),
    ]
    sim.reset()
    cache_dir = Path(tempfile.mkdtemp(prefix="cache-", dir=tmp))  # fresh: every call is a miss
    e2e_args = c.bsa_args(
        sim.base_url,
        dataset,
        cache_dir,
        "--bsa-limit",
        str(sizes["instances"]),
        "--bsa-samples",
        str(SAMPLES),
        "--bsa-concurrency",
        str(conc),
    )
    run = c.run_pytest(e2e_args, cwd=tmp)
    c.check_run(run, "end to end")
    calls = sim.calls()
    assert run.session_s is not None
    return [*results, (calls, run.wall_s), (calls, run.session_s)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small round (~10 s)")
    parser.add_argument("--instances", type=int, help="instances end to end (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight (32)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds, medians (default 3)")
    parser.add_argument("--worker", choices=("aiohttp", "litellm"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--mix", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.url, args.mix, args.concurrency, args.limit)
        return 0

    sizes = {
        "instances": args.instances or (100 if args.quick else 1000),
        "raw": 600 if args.quick else 3000,  # requests of the aiohttp loop
        "litellm": 300 if args.quick else 1500,  # slower: fewer requests, same rate measure
        "concurrency": args.concurrency,
    }
    rounds = args.rounds or (1 if args.quick else 3)
    print(
        f"throughput: {sizes['instances']} instances x {SAMPLES} samples end to end, "
        f"concurrency {args.concurrency}, {rounds} round(s), zero-latency simulator in its "
        "own process"
    )
    per_round: list[list[tuple[int, float]]] = []
    with c.workdir("bsa-bench-tp-") as tmp, c.SimulatorProcess(c.write_script(tmp)) as sim:
        mix_instances = sizes["raw"] // (3 * SAMPLES) + 1
        dataset = c.synthetic_dataset(tmp, max(sizes["instances"], mix_instances))
        mix = asyncio.run(build_mix(sim.base_url, dataset, mix_instances))
        mix_file = tmp / "mix.json"
        mix_file.write_text(json.dumps(mix), encoding="utf-8")
        for _ in range(rounds):
            per_round.append(one_round(sim, tmp, dataset, mix_file, sizes))

    rates = [[calls / seconds for calls, seconds in r] for r in per_round]
    ratios = [[rate / r[1] for rate in r] for r in rates]  # x litellm, within each round
    table = []
    for i, name in enumerate(CLIENTS):
        calls = [r[i][0] for r in per_round]
        seconds = [r[i][1] for r in per_round]
        table.append(
            (
                name,
                int(c.median(calls)),
                c.median(seconds),
                c.median([r[i] for r in rates]),
                c.median([r[i] for r in ratios]),
                " ".join(f"{r[i]:.1f}" for r in ratios),
            )
        )
    print()
    c.print_table(
        ("client", "calls", "seconds", "calls/s", "x litellm", "x litellm per round"), table
    )
    ratio = table[2][4]
    print(
        f"\ntarget: end to end (process wall) >= {TARGET_RATIO:g}x litellm.acompletion "
        f"(median of rounds): {ratio:.1f}x -> {c.verdict(ratio >= TARGET_RATIO)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
