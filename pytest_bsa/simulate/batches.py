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
not yet started. The OpenAI routes are in ``batches_openai.py``, the Anthropic ones in
``batches_anthropic.py``, what they share in ``batch_book.py``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from pytest_bsa.simulate.batch_book import BOOK_KEY, BatchBook
from pytest_bsa.simulate.batches_anthropic import (
    cancel_message_batch,
    create_message_batch,
    get_message_batch,
    message_batch_results,
)
from pytest_bsa.simulate.batches_openai import (
    cancel_batch,
    create_batch,
    file_content,
    file_info,
    get_batch,
    upload_file,
)
from pytest_bsa.simulate.state import SimulatorState


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
