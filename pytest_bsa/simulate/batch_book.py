"""What the simulator's batch routes share: the files and batches kept in memory, one request
run through the server's own route, and a batch's requests spread over the script's delay (see
:mod:`pytest_bsa.simulate.batches`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

from pytest_bsa.simulate.ratelimit import INTERNAL_HEADER
from pytest_bsa.simulate.script import unit_hash
from pytest_bsa.simulate.state import SimulatorState

ids = itertools.count(1)  # every object the batch routes create gets a fresh id
JSON_TYPE = "application/json"
LINE_TIMEOUT_S = 30.0
CHAT_PATH = "/v1/chat/completions"


def _routing_hints(custom_id: str) -> dict[str, str]:
    from pytest_bsa.engine.batch_types import routing_hints

    return routing_hints(custom_id)


class BatchBook:
    """Files and batches kept in memory for the server's lifetime."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.message_batches: dict[str, dict[str, Any]] = {}
        self.results: dict[str, bytes] = {}  # message batch id -> results JSONL
        self.cancelled: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.attempts: Counter[str] = Counter()  # batch attempts per request (routing hints)

    def fails(self, custom_id: str) -> bool:
        """Whether this attempt at the request is one of the script's ``fail`` share."""
        hints = _routing_hints(custom_id)
        unit = (
            "/".join(hints.get(h, "") for h in ("X-BSA-Instance", "X-BSA-Sample", "X-BSA-Judge"))
            if hints
            else custom_id
        )
        if "X-BSA-Judge-Replicate" in hints:  # a repeated ask of a verdict: a request of its own
            unit += f"/ask {hints['X-BSA-Judge-Replicate']}"
        self.attempts[unit] += 1
        seed = self.state.script.seed
        draw = unit_hash(seed, "batch-fail", unit, str(self.attempts[unit]))
        return draw < self.state.script.batch.fail

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-sim-{next(ids)}"
        meta = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
        }
        self.files[file_id] = {"meta": meta, "data": data}
        return meta


BOOK_KEY: web.AppKey[BatchBook] = web.AppKey("batch_book", BatchBook)


def openai_error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    return web.Response(status=status, body=json.dumps(body), content_type=JSON_TYPE)


def anthropic_error(status: int, message: str) -> web.Response:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return web.Response(status=status, body=json.dumps(body), content_type=JSON_TYPE)


def own_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def run_one(
    session: aiohttp.ClientSession, url: str, body: Any, custom_id: str
) -> tuple[int, Any]:
    """(status, JSON body) of one request through the server's own route."""
    headers = {"Content-Type": JSON_TYPE, INTERNAL_HEADER: "1", **_routing_hints(custom_id)}
    try:
        async with session.post(
            url,
            data=json.dumps(body).encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=LINE_TIMEOUT_S),
        ) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return 500, {"error": {"message": f"simulated batch worker: {type(exc).__name__}"}}
    try:
        return status, json.loads(raw)
    except ValueError:
        return 502, {"error": {"message": "simulated batch worker: the reply was not JSON"}}


async def spread(
    book: BatchBook,
    batch_id: str,
    items: list[tuple[str, Any]],
    run: Any,
    on_skip: Any,
    counts: dict[str, int],
) -> float:
    """Start ``run(i, custom_id, payload)`` for each item, spread over the script's delay; items
    after the expiry point or after a cancel go to ``on_skip(custom_id, why)``."""
    behaviour = book.state.script.batch
    started = time.monotonic()
    n = len(items)
    runnable = n // 2 if behaviour.outcome == "expired" else n
    gate = asyncio.Semaphore(32)
    jobs = []
    for i, (custom_id, payload) in enumerate(items):
        if batch_id in book.cancelled:
            on_skip(custom_id, "cancelled")
            continue
        if i >= runnable:
            on_skip(custom_id, "expired")
            continue
        start_at = started + behaviour.delay * i / max(1, n)
        if (wait := start_at - time.monotonic()) > 0:
            await asyncio.sleep(wait)

        async def job(i: int = i, custom_id: str = custom_id, payload: Any = payload) -> None:
            async with gate:
                if book.fails(custom_id):
                    counts["failed"] += 1
                    run_failed = {"error": {"message": "simulated batch failure", "code": 500}}
                    await run(i, custom_id, payload, forced=(500, run_failed))
                    return
                await run(i, custom_id, payload, forced=None)

        jobs.append(asyncio.ensure_future(job()))
    await asyncio.gather(*jobs)
    return started
