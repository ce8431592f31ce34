"""The simulator's Anthropic message batches: ``/v1/messages/batches`` (see
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
    BatchBook,
    anthropic_error,
    ids,
    own_base,
    run_one,
    spread,
)


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
        return anthropic_error(400, "the request body is not JSON")
    entries = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        return anthropic_error(400, "requests: a non-empty list is required")
    if book.state.script.batch.outcome == "failed":
        return anthropic_error(400, "simulated validation failure of the batch")
    items = [(str(e["custom_id"]), e["params"]) for e in entries if isinstance(e, dict)]
    batch_id = f"msgbatch_sim_{next(ids)}"
    batch = _message_batch(batch_id, len(items), own_base(request))
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
            status, body = forced or await run_one(
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

        started = await spread(book, batch["id"], items, run, skip, {"failed": 0})
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
        return anthropic_error(404, "no such message batch")
    return web.json_response(_public(found))


async def message_batch_results(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    data = book.results.get(request.match_info["batch_id"])
    if data is None:
        return anthropic_error(404, "no results (yet) for this message batch")
    return web.Response(body=data, content_type="application/binary")


async def cancel_message_batch(request: web.Request) -> web.Response:
    book = request.app[BOOK_KEY]
    batch = book.message_batches.get(request.match_info["batch_id"])
    if batch is None:
        return anthropic_error(404, "no such message batch")
    if batch["processing_status"] == "in_progress":
        book.cancelled.add(batch["id"])
        batch["processing_status"] = "canceling"
        batch["cancel_initiated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return web.json_response(_public(batch))
