"""Anthropic message batches: ``POST /v1/messages/batches``, poll, read the results JSONL.

Each request is the same Messages API body the direct transport sends; each result line is
``succeeded`` (a message), ``errored``, ``canceled`` or ``expired``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pytest_bsa.engine.anthropic_transport import (
    anthropic_error,
    body_for,
    completion_from_anthropic,
    headers_for,
    messages_url,
)
from pytest_bsa.engine.batch_types import BatchState
from pytest_bsa.engine.http import HttpClient, HttpReply
from pytest_bsa.engine.http_errors import endpoint_of, shorten
from pytest_bsa.engine.types import ChatRequest, ErrorKind, TransportError
from pytest_bsa.models import Completion

_TIMEOUT_S = 300.0
_ERROR_KINDS: dict[str, ErrorKind] = {
    "invalid_request_error": "client",
    "authentication_error": "auth",
    "permission_error": "auth",
    "not_found_error": "client",
    "request_too_large": "client",
    "rate_limit_error": "rate_limit",
    "api_error": "server",
    "overloaded_error": "server",
}


class AnthropicBatchClient:
    """Message batches at ``api_base`` (default ``https://api.anthropic.com``)."""

    provider = "Anthropic message batches"
    max_requests = 100_000  # per batch (Anthropic's limit; 256 MB at most)

    def __init__(
        self, api_base: str | None, api_key: str | None, *, api_key_env: str | None = None
    ) -> None:
        self.endpoint = messages_url(api_base, "/batches")
        self._where = endpoint_of(self.endpoint)
        self._api_key = api_key
        self._api_key_env = api_key_env
        self._http = HttpClient(headers_for(api_key), max_connections=8)

    async def _call(self, method: str, url: str, data: bytes | None = None) -> HttpReply:
        reply = await self._http.send(method, url, data=data, timeout=_TIMEOUT_S)
        if reply.status >= 400:
            raise anthropic_error(reply, self._where, self._api_key, self._api_key_env)
        return reply

    def _object(self, reply: HttpReply) -> dict[str, Any]:
        body = reply.json()
        if not isinstance(body, dict) or body.get("type") != "message_batch":
            snippet = shorten(reply.body.decode("utf-8", "replace"), 80)
            raise TransportError(
                "bad_response", f"not a message batch: {snippet!r}", endpoint=self._where
            )
        return body

    async def submit(self, entries: Sequence[tuple[str, ChatRequest]]) -> str:
        requests = [{"custom_id": cid, "params": body_for(request)} for cid, request in entries]
        data = json.dumps({"requests": requests}, ensure_ascii=False).encode("utf-8")
        return str(self._object(await self._call("POST", self.endpoint, data))["id"])

    async def poll(self, batch_id: str) -> BatchState:
        body = self._object(await self._call("GET", f"{self.endpoint}/{batch_id}"))
        counts = body.get("request_counts") if isinstance(body.get("request_counts"), dict) else {}
        tally = {k: int(counts.get(k) or 0) for k in
                 ("processing", "succeeded", "errored", "canceled", "expired")}  # fmt: skip
        status = str(body.get("processing_status"))
        failed = tally["errored"] + tally["canceled"] + tally["expired"]
        return BatchState(
            batch_id=batch_id,
            status=status,
            phase="done" if status == "ended" else "running",
            total=sum(tally.values()),
            done=tally["succeeded"] + failed,
            failed=failed,
            handle={"results_url": body.get("results_url")},
        )

    def _results_url(self, state: BatchState) -> str:
        """The batch's ``results_url``, but only on this endpoint: the key never goes elsewhere."""
        url = state.handle.get("results_url")
        if isinstance(url, str) and endpoint_of(url) == self._where:
            return url
        return f"{self.endpoint}/{state.batch_id}/results"

    async def results(self, state: BatchState) -> dict[str, Completion | TransportError]:
        reply = await self._call("GET", self._results_url(state))
        found: dict[str, Completion | TransportError] = {}
        for raw in reply.body.decode("utf-8", "replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
                found[line["custom_id"]] = self._outcome(line.get("result"), state.batch_id)
        return found

    def _outcome(self, result: Any, batch_id: str) -> Completion | TransportError:
        kind = result.get("type") if isinstance(result, dict) else None
        if kind == "succeeded":
            try:
                return completion_from_anthropic(result.get("message"), latency_s=0.0)
            except ValueError as exc:
                return TransportError(
                    "bad_response", f"batch {batch_id}: {exc}", endpoint=self._where
                )
        if kind == "expired":
            return TransportError(
                "timeout", f"batch {batch_id} expired before this request ran", endpoint=self._where
            )
        if kind == "canceled":
            return TransportError("client", f"batch {batch_id} was cancelled", endpoint=self._where)
        error = result.get("error") if isinstance(result, dict) else None
        inner = error.get("error") if isinstance(error, dict) else None
        inner = inner if isinstance(inner, dict) else {}
        error_type = str(inner.get("type") or "api_error")
        message = shorten(str(inner.get("message") or error_type))
        return TransportError(
            _ERROR_KINDS.get(error_type, "server"),
            f"in batch {batch_id}: {message}",
            endpoint=self._where,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
