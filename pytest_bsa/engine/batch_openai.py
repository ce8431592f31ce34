"""The OpenAI batch API on any OpenAI-compatible endpoint: ``/files`` + ``/batches``.

Submit: upload the requests as a JSONL file (purpose ``batch``), create a batch for
``/v1/chat/completions`` with a 24 h completion window. Poll: ``GET /batches/{id}``. Results:
the output file (one line per answered request) and the error file (failed or expired ones).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pytest_bsa.engine.batch_types import BatchState, Phase
from pytest_bsa.engine.http import HttpClient, HttpReply, http_error
from pytest_bsa.engine.http_errors import endpoint_of, kind_for_status, shorten
from pytest_bsa.engine.openai_compat import OpenAICompatTransport
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion
from pytest_bsa.reasoning import completion_from_openai

DEFAULT_BASE = "https://api.openai.com/v1"
CHAT_PATH = "/v1/chat/completions"
_PHASES: dict[str, Phase] = {
    "validating": "running",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "running",
    "completed": "done",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}
_TIMEOUT_S = 300.0  # uploads and downloads of large files


def _url(base: str, path: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path))


class OpenAIBatchClient:
    """Batches on ``api_base`` (default ``https://api.openai.com/v1``)."""

    provider = "the OpenAI batch API"
    max_requests = 50_000  # per batch (OpenAI's limit; the file may hold at most 200 MB)
    max_bytes = 190 * 1024 * 1024

    def __init__(
        self, api_base: str | None, api_key: str | None, *, api_key_env: str | None = None
    ) -> None:
        self.endpoint = api_base or DEFAULT_BASE
        self._where = endpoint_of(self.endpoint)  # scheme://host:port, for error messages
        self._api_key = api_key
        self._api_key_env = api_key_env
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = HttpClient(headers, max_connections=8)

    async def _call(self, method: str, path: str, **kwargs: Any) -> HttpReply:
        url = _url(self.endpoint, path)
        reply = await self._http.send(method, url, timeout=_TIMEOUT_S, **kwargs)
        if reply.status >= 400:
            raise http_error(
                reply, endpoint_of(url), api_key=self._api_key, api_key_env=self._api_key_env
            )
        return reply

    def _json(self, reply: HttpReply, what: str) -> dict[str, Any]:
        body = reply.json()
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            snippet = shorten(reply.body.decode("utf-8", "replace"), 80)
            raise TransportError(
                "bad_response", f"not a {what} object: {snippet!r}", endpoint=self._where
            )
        return body

    async def submit(self, entries: Sequence[tuple[str, ChatRequest]]) -> str:
        import aiohttp

        lines = [
            json.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": CHAT_PATH,
                    "body": OpenAICompatTransport.body_for(request),
                },
                ensure_ascii=False,
            )
            for custom_id, request in entries
        ]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if len(data) > self.max_bytes:
            raise TransportError(
                "client",
                f"a batch of {len(entries)} requests is {len(data) // 2**20} MB, over the "
                "batch API's 200 MB file limit",
                endpoint=self._where,
            )
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field(
            "file", data, filename="pytest-bsa-batch.jsonl", content_type="application/jsonl"
        )
        upload = self._json(await self._call("POST", "/files", data=form), "file")
        created = await self._call(
            "POST",
            "/batches",
            data=json.dumps(
                {
                    "input_file_id": upload["id"],
                    "endpoint": CHAT_PATH,
                    "completion_window": "24h",
                    "metadata": {"created_by": "pytest-bsa"},
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        return str(self._json(created, "batch")["id"])

    async def poll(self, batch_id: str) -> BatchState:
        body = self._json(await self._call("GET", f"/batches/{batch_id}"), "batch")
        status = str(body.get("status"))
        counts = body.get("request_counts") if isinstance(body.get("request_counts"), dict) else {}
        errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
        detail = "; ".join(
            str(e.get("message") or e.get("code"))
            for e in errors.get("data") or ()
            if isinstance(e, dict)
        )
        completed, failed = int(counts.get("completed") or 0), int(counts.get("failed") or 0)
        return BatchState(
            batch_id=batch_id,
            status=status,
            phase=_PHASES.get(status, "running"),
            total=int(counts.get("total") or 0),
            done=completed + failed,
            failed=failed,
            detail=detail,
            handle={
                "output_file_id": body.get("output_file_id"),
                "error_file_id": body.get("error_file_id"),
            },
        )

    async def results(self, state: BatchState) -> dict[str, Completion | TransportError]:
        found: dict[str, Completion | TransportError] = {}
        for name in ("output_file_id", "error_file_id"):
            file_id = state.handle.get(name)
            if not isinstance(file_id, str) or not file_id:
                continue
            reply = await self._call("GET", f"/files/{file_id}/content")
            for raw in reply.body.decode("utf-8", "replace").splitlines():
                line = _loads(raw)
                if line is not None and isinstance(line.get("custom_id"), str):
                    found[line["custom_id"]] = self._outcome(line, state)
        return found

    def _outcome(self, line: dict[str, Any], state: BatchState) -> Completion | TransportError:
        response = line.get("response") if isinstance(line.get("response"), dict) else None
        if response is not None:
            status = response.get("status_code")
            body = response.get("body")
            if status == 200:
                try:
                    return completion_from_openai(body, latency_s=0.0)
                except ValueError as exc:
                    return TransportError(
                        "bad_response",
                        f"batch {state.batch_id}: not a chat completion ({exc})",
                        endpoint=self._where,
                    )
            if isinstance(status, int) and status >= 400:
                reply = HttpReply(status, {}, json.dumps(body).encode())
                error = http_error(
                    reply, self._where, api_key=self._api_key, api_key_env=self._api_key_env
                )
                return TransportError(
                    error.kind,
                    f"in batch {state.batch_id}: {error.message}",
                    endpoint=self._where,
                    status=status,
                    retry_after=error.retry_after,
                )
        problem = line.get("error") if isinstance(line.get("error"), dict) else {}
        code = str(problem.get("code") or "")
        message = str(problem.get("message") or code or "no response")
        if code == "batch_expired":
            return TransportError(
                "timeout",
                f"batch {state.batch_id} expired before this request ran",
                endpoint=self._where,
            )
        if code == "batch_cancelled":
            return TransportError(
                "client", f"batch {state.batch_id} was cancelled", endpoint=self._where
            )
        status = problem.get("status") if isinstance(problem.get("status"), int) else 500
        return TransportError(
            kind_for_status(status),
            f"in batch {state.batch_id}: {shorten(message)}",
            endpoint=self._where,
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _loads(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
