"""The simulator's batch APIs: OpenAI ``/v1/files`` + ``/v1/batches`` and Anthropic message
batches (``/v1/messages/batches``).

A batch runs each of its requests through the server's own ``/v1/chat/completions`` or
``/v1/messages`` route (over loopback, past the rate limiter), so the script decides the answers,
faults included, and ``/stats`` counts every request a batch ran. The script's ``batch:`` section
sets how long a batch takes (``delay``: requests start spread over it, the batch ends when it is
over), a share of requests answered with a 500 error without running (``fail``; decided per
request and attempt from the routing hints its custom id carries, so the same script fails the
same requests whatever the run's ids), and the outcome:
``completed``, ``failed`` (OpenAI: validation fails, nothing runs; Anthropic: the create call is
refused) or ``expired`` (only the first half of the requests run). Cancelling stops the requests
not yet started.
"""

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

_ids = itertools.count(1)
_JSON = "application/json"
LINE_TIMEOUT_S = 30.0
CHAT_PATH = "/v1/chat/completions"


def _routing_hints(custom_id: str) -> dict[str, str]:
    from pytest_bsa.engine.batch import routing_hints

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
        self.attempts[unit] += 1
        seed = self.state.script.seed
        draw = unit_hash(seed, "batch-fail", unit, str(self.attempts[unit]))
        return draw < self.state.script.batch.fail

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-sim-{next(_ids)}"
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


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    return web.Response(status=status, body=json.dumps(body), content_type=_JSON)


def _anthropic_error(status: int, message: str) -> web.Response:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return web.Response(status=status, body=json.dumps(body), content_type=_JSON)


def _own_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _run_one(
    session: aiohttp.ClientSession, url: str, body: Any, custom_id: str
) -> tuple[int, Any]:
    """(status, JSON body) of one request through the server's own route."""
    headers = {"Content-Type": _JSON, INTERNAL_HEADER: "1", **_routing_hints(custom_id)}
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


async def _spread(
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


# -- OpenAI: files and batches ----------------------------------------------------------------


async def upload_file(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        return _error(400, "expected multipart/form-data with purpose and file")
    purpose, data, filename = "", b"", "upload.jsonl"
    async for part in reader:
        if part.name == "purpose":
            purpose = (await part.read()).decode()
        elif part.name == "file":
            filename = part.filename or filename
            data = bytes(await part.read())
    if purpose != "batch" or not data:
        return _error(400, "the simulator takes purpose=batch files with content")
    return web.json_response(book.add_file(data, filename, purpose))


async def file_info(request: web.Request) -> web.Response:
    found = request.app[BOOK_KEY].files.get(request.match_info["file_id"])
    return web.json_response(found["meta"]) if found else _error(404, "no such file")


async def file_content(request: web.Request) -> web.Response:
    found = request.app[BOOK_KEY].files.get(request.match_info["file_id"])
    if not found:
        return _error(404, "no such file")
    return web.Response(body=found["data"], content_type="application/octet-stream")


def _batch_object(batch_id: str, input_file_id: str, total: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": CHAT_PATH,
        "errors": None,
        "input_file_id": input_file_id,
        "completion_window": "24h",
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": now + 86400,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelled_at": None,
        "request_counts": {"total": total, "completed": 0, "failed": 0},
        "metadata": None,
    }


async def create_batch(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _error(400, "the request body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "the request body must be an object")
    found = book.files.get(str(body.get("input_file_id")))
    if found is None:
        return _error(400, f"no such file: {body.get('input_file_id')!r}")
    if body.get("endpoint") != CHAT_PATH:
        return _error(400, f"the simulator batches {CHAT_PATH} only")
    lines = []
    for raw in found["data"].decode("utf-8").splitlines():
        if raw.strip():
            line = json.loads(raw)
            lines.append((str(line["custom_id"]), line))
    batch_id = f"batch_sim_{next(_ids)}"
    batch = _batch_object(batch_id, found["meta"]["id"], len(lines))
    batch["metadata"] = body.get("metadata")
    book.batches[batch_id] = batch
    book.state.count_batch(len(lines))
    book.spawn(_run_openai(book, batch, lines, _own_base(request)))
    return web.json_response(batch)


async def _run_openai(
    book: BatchBook, batch: dict[str, Any], lines: list[tuple[str, Any]], base: str
) -> None:
    behaviour = book.state.script.batch
    counts = batch["request_counts"]
    if behaviour.outcome == "failed":
        await asyncio.sleep(min(behaviour.delay, 0.05))
        batch.update(
            status="failed",
            failed_at=int(time.time()),
            errors={"object": "list", "data": [
                {"code": "invalid_request", "message": "simulated validation failure",
                 "line": 1}]},
        )  # fmt: skip
        return
    batch.update(status="in_progress", in_progress_at=int(time.time()))
    outputs: list[str] = []
    errors: list[str] = []

    def write(custom_id: str, status: int | None, body: Any, error: Any = None) -> None:
        line = {
            "id": f"batch_req_sim_{next(_ids)}",
            "custom_id": custom_id,
            "response": None
            if status is None
            else {"status_code": status, "request_id": f"req_{next(_ids)}", "body": body},
            "error": error,
        }
        (outputs if status == 200 else errors).append(json.dumps(line))

    async with aiohttp.ClientSession() as session:

        async def run(i: int, custom_id: str, line: Any, forced: Any) -> None:
            status, body = forced or await _run_one(session, base + line["url"], line["body"],
                                                    custom_id)  # fmt: skip
            if status == 200:
                counts["completed"] += 1
            elif forced is None:
                counts["failed"] += 1
            write(custom_id, status, body)

        def skip(custom_id: str, why: str) -> None:
            counts["failed"] += 1
            code = "batch_expired" if why == "expired" else "batch_cancelled"
            write(custom_id, None, None, {"code": code, "message": f"simulated: {why}"})

        started = await _spread(book, batch["id"], lines, run, skip, counts)
    if (left := started + behaviour.delay - time.monotonic()) > 0 and batch["id"] not in (
        book.cancelled
    ):
        await asyncio.sleep(left)
    if outputs:
        batch["output_file_id"] = book.add_file(
            ("\n".join(outputs) + "\n").encode(), "batch_output.jsonl", "batch_output"
        )["id"]
    if errors:
        batch["error_file_id"] = book.add_file(
            ("\n".join(errors) + "\n").encode(), "batch_errors.jsonl", "batch_output"
        )["id"]
    now = int(time.time())
    if batch["id"] in book.cancelled:
        batch.update(status="cancelled", cancelled_at=now)
    elif behaviour.outcome == "expired":
        batch.update(status="expired", expired_at=now)
    else:
        batch.update(status="completed", completed_at=now)


async def get_batch(request: web.Request) -> web.Response:
    found = request.app[BOOK_KEY].batches.get(request.match_info["batch_id"])
    return web.json_response(found) if found else _error(404, "no such batch")


async def cancel_batch(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    batch = book.batches.get(request.match_info["batch_id"])
    if batch is None:
        return _error(404, "no such batch")
    if batch["status"] in ("validating", "in_progress"):
        book.cancelled.add(batch["id"])
        batch["status"] = "cancelling"
    return web.json_response(batch)


# -- Anthropic message batches -----------------------------------------------------------------


def _message_batch(batch_id: str, total: int, base: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "in_progress",
        "request_counts": {
            "processing": total, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0,
        },
        "ended_at": None,
        "created_at": now,
        "expires_at": None,
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": None,
        "_base": base,
    }  # fmt: skip


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


async def create_message_batch(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _anthropic_error(400, "the request body is not JSON")
    entries = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        return _anthropic_error(400, "requests: a non-empty list is required")
    if book.state.script.batch.outcome == "failed":
        return _anthropic_error(400, "simulated validation failure of the batch")
    items = [(str(e["custom_id"]), e["params"]) for e in entries if isinstance(e, dict)]
    batch_id = f"msgbatch_sim_{next(_ids)}"
    batch = _message_batch(batch_id, len(items), _own_base(request))
    book.message_batches[batch_id] = batch
    book.state.count_batch(len(items))
    book.spawn(_run_anthropic(book, batch, items))
    return web.json_response(_public(batch))


async def _run_anthropic(book: BatchBook, batch: dict[str, Any], items: list) -> None:
    behaviour = book.state.script.batch
    counts = batch["request_counts"]
    lines: list[str] = []

    def record(custom_id: str, result: dict[str, Any], bucket: str) -> None:
        counts["processing"] -= 1
        counts[bucket] += 1
        lines.append(json.dumps({"custom_id": custom_id, "result": result}))

    async with aiohttp.ClientSession() as session:

        async def run(i: int, custom_id: str, params: Any, forced: Any) -> None:
            status, body = forced or await _run_one(
                session, batch["_base"] + "/v1/messages", params, custom_id
            )
            if status == 200:
                record(custom_id, {"type": "succeeded", "message": body}, "succeeded")
                return
            error = body.get("error") if isinstance(body, dict) else None
            message = error.get("message") if isinstance(error, dict) else "simulated error"
            kind = "rate_limit_error" if status == 429 else "api_error"
            wrapped = {"type": "error", "error": {"type": kind, "message": str(message)}}
            record(custom_id, {"type": "errored", "error": wrapped}, "errored")

        def skip(custom_id: str, why: str) -> None:
            if why == "expired":
                record(custom_id, {"type": "expired"}, "expired")
            else:
                record(custom_id, {"type": "canceled"}, "canceled")

        started = await _spread(book, batch["id"], items, run, skip, {"failed": 0})
    if (left := started + behaviour.delay - time.monotonic()) > 0 and batch["id"] not in (
        book.cancelled
    ):
        await asyncio.sleep(left)
    book.results[batch["id"]] = ("\n".join(lines) + "\n").encode()
    batch.update(
        processing_status="ended",
        ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        results_url=f"{batch['_base']}/v1/messages/batches/{batch['id']}/results",
    )


async def get_message_batch(request: web.Request) -> web.Response:
    found = request.app[BOOK_KEY].message_batches.get(request.match_info["batch_id"])
    if not found:
        return _anthropic_error(404, "no such message batch")
    return web.json_response(_public(found))


async def message_batch_results(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    data = book.results.get(request.match_info["batch_id"])
    if data is None:
        return _anthropic_error(404, "no results (yet) for this message batch")
    return web.Response(body=data, content_type="application/binary")


async def cancel_message_batch(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    batch = book.message_batches.get(request.match_info["batch_id"])
    if batch is None:
        return _anthropic_error(404, "no such message batch")
    if batch["processing_status"] == "in_progress":
        book.cancelled.add(batch["id"])
        batch["processing_status"] = "canceling"
        batch["cancel_initiated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return web.json_response(_public(batch))


def add_routes(app: web.Application, state: SimulatorState) -> None:
    book = BatchBook(state)
    app[BOOK_KEY] = book
    r = app.router
    r.add_post("/v1/files", upload_file)
    r.add_get("/v1/files/{file_id}", file_info)
    r.add_get("/v1/files/{file_id}/content", file_content)
    r.add_post("/v1/batches", create_batch)
    r.add_get("/v1/batches/{batch_id}", get_batch)
    r.add_post("/v1/batches/{batch_id}/cancel", cancel_batch)
    r.add_post("/v1/messages/batches", create_message_batch)
    r.add_get("/v1/messages/batches/{batch_id}", get_message_batch)
    r.add_get("/v1/messages/batches/{batch_id}/results", message_batch_results)
    r.add_post("/v1/messages/batches/{batch_id}/cancel", cancel_message_batch)

    async def stop_batches(app: web.Application) -> None:
        for task in list(book.tasks):
            task.cancel()
        await asyncio.gather(*book.tasks, return_exceptions=True)

    app.on_shutdown.append(stop_batches)
