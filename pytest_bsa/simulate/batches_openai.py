"""The simulator's OpenAI batch API: ``/v1/files`` and ``/v1/batches`` (see
:mod:`pytest_bsa.simulate.batches` for how a batch behaves)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from pytest_bsa.simulate.batch_book import (
    BOOK_KEY,
    CHAT_PATH,
    BatchBook,
    ids,
    openai_error,
    own_base,
    run_one,
    spread,
)


async def upload_file(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        return openai_error(400, "expected multipart/form-data with purpose and file")
    purpose, data, filename = "", b"", "upload.jsonl"
    async for part in reader:
        if part.name == "purpose":
            purpose = (await part.read()).decode()
        elif part.name == "file":
            filename = part.filename or filename
            data = bytes(await part.read())
    if purpose != "batch" or not data:
        return openai_error(400, "the simulator takes purpose=batch files with content")
    return web.json_response(book.add_file(data, filename, purpose))


async def file_info(request: web.Request) -> web.Response:
    found = request.app[BOOK_KEY].files.get(request.match_info["file_id"])
    return web.json_response(found["meta"]) if found else openai_error(404, "no such file")


async def file_content(request: web.Request) -> web.Response:
    found = request.app[BOOK_KEY].files.get(request.match_info["file_id"])
    if not found:
        return openai_error(404, "no such file")
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
        return openai_error(400, "the request body is not JSON")
    if not isinstance(body, dict):
        return openai_error(400, "the request body must be an object")
    found = book.files.get(str(body.get("input_file_id")))
    if found is None:
        return openai_error(400, f"no such file: {body.get('input_file_id')!r}")
    if body.get("endpoint") != CHAT_PATH:
        return openai_error(400, f"the simulator batches {CHAT_PATH} only")
    lines = []
    for raw in found["data"].decode("utf-8").splitlines():
        if raw.strip():
            line = json.loads(raw)
            lines.append((str(line["custom_id"]), line))
    batch_id = f"batch_sim_{next(ids)}"
    batch = _batch_object(batch_id, found["meta"]["id"], len(lines))
    batch["metadata"] = body.get("metadata")
    book.batches[batch_id] = batch
    book.state.count_batch(len(lines))
    book.spawn(_run_openai(book, batch, lines, own_base(request)))
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
            "id": f"batch_req_sim_{next(ids)}",
            "custom_id": custom_id,
            "response": None
            if status is None
            else {"status_code": status, "request_id": f"req_{next(ids)}", "body": body},
            "error": error,
        }
        (outputs if status == 200 else errors).append(json.dumps(line))

    async with aiohttp.ClientSession() as session:

        async def run(i: int, custom_id: str, line: Any, forced: Any) -> None:
            status, body = forced or await run_one(session, base + line["url"], line["body"],
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

        started = await spread(book, batch["id"], lines, run, skip, counts)
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
    return web.json_response(found) if found else openai_error(404, "no such batch")


async def cancel_batch(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    batch = book.batches.get(request.match_info["batch_id"])
    if batch is None:
        return openai_error(404, "no such batch")
    if batch["status"] in ("validating", "in_progress"):
        book.cancelled.add(batch["id"])
        batch["status"] = "cancelling"
    return web.json_response(batch)
