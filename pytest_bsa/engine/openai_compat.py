"""A direct transport for any OpenAI-compatible ``/chat/completions`` endpoint (aiohttp).

Against a local server at hundreds of requests per second the client's own CPU cost matters;
aiohttp costs far less per call than httpx or litellm (DESIGN.md section 3).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pytest_bsa.engine.http_errors import (
    auth_hint,
    endpoint_of,
    error_message,
    kind_for_status,
    parse_json,
    retry_after_from_body,
    retry_after_from_headers,
    scrub,
    shorten,
)
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Completion
from pytest_bsa.reasoning import completion_from_openai

if TYPE_CHECKING:
    import aiohttp

# Model prefixes that name a plain OpenAI-compatible server; stripped before sending.
DIRECT_PREFIXES: tuple[str, ...] = ("openai/", "hosted_vllm/")


def wire_model(model: str) -> str:
    """The model name an OpenAI-compatible server expects (litellm routing prefix removed)."""
    for prefix in DIRECT_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


def _os_reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(error, ConnectionResetError):
        return "connection reset by the server"
    return error.strerror or type(error).__name__


def chat_url(api_base: str) -> str:
    """``{api_base}/chat/completions``, keeping a query string (``?api-version=…``) at the end."""
    parts = urlsplit(api_base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/chat/completions"))


class OpenAICompatTransport:
    """POSTs to ``{api_base}/chat/completions`` over one pooled aiohttp session."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        max_connections: int = 256,
        api_key_env: str | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self._api_key = api_key
        self._api_key_env = api_key_env
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def _session_for_loop(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._session = aiohttp.ClientSession(
                connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=None)
            )
            self._session_loop = loop
        return self._session

    @staticmethod
    def body_for(request: ChatRequest) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        body: dict[str, Any] = {"model": wire_model(request.model), "messages": request.messages}
        body.update(request.params)
        if request.response_format is not None:
            body["response_format"] = request.response_format
        return body

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        import aiohttp

        if not request.api_base:
            raise TransportError("client", f"model {request.model!r} needs an api_base")
        url = chat_url(request.api_base)
        endpoint = endpoint_of(url)
        session = self._session_for_loop()
        data = json.dumps(self.body_for(request)).encode()
        started = time.perf_counter()
        try:
            async with session.post(
                url,
                data=data,
                headers=request.headers or None,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await response.read()
                status = response.status
                headers = response.headers
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError(
                "timeout", f"no complete answer within {timeout:g} s", endpoint=endpoint
            ) from None
        except aiohttp.InvalidURL:
            raise TransportError(
                "client", f"invalid api_base {shorten(request.api_base, 80)!r}"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                "connection", self._why(exc, endpoint), endpoint=endpoint
            ) from None
        latency = time.perf_counter() - started
        if status >= 400:
            raise self._http_error(status, raw, headers, endpoint)
        parsed = parse_json(raw)
        try:
            return completion_from_openai(parsed, latency_s=latency)
        except ValueError as exc:
            snippet = shorten(raw.decode("utf-8", "replace"), 80)
            raise TransportError(
                "bad_response",
                f"not a chat completion ({'not JSON' if parsed is None else exc}): {snippet!r}",
                endpoint=endpoint,
                status=status,
            ) from None

    @staticmethod
    def _why(exc: Exception, endpoint: str) -> str:
        """Host and reason of a connection-level failure, in words."""
        import aiohttp

        where = endpoint.split("://", 1)[-1] or "the server"
        if isinstance(exc, aiohttp.ClientConnectorError):
            return f"cannot connect to {where}: {_os_reason(exc.os_error)}"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return f"{where} closed the connection before answering"
        if isinstance(exc, aiohttp.ClientPayloadError):
            return f"the answer from {where} was cut off ({type(exc).__name__})"
        if isinstance(exc, OSError):
            return f"connection to {where} failed: {_os_reason(exc)}"
        return f"request to {where} failed: {type(exc).__name__}"

    def _http_error(self, status: int, raw: bytes, headers: Any, endpoint: str) -> TransportError:
        body = parse_json(raw)
        text = error_message(body) if body is not None else raw.decode("utf-8", "replace")
        message = shorten(scrub(text, self._api_key)) or f"HTTP {status}"
        kind = kind_for_status(status)
        retry_after = None
        if kind == "auth":
            message = f"{message}; {auth_hint(self._api_key, self._api_key_env)}"
        elif kind in ("rate_limit", "server"):
            retry_after = retry_after_from_headers(headers)
            if retry_after is None:
                retry_after = retry_after_from_body(body)
        return TransportError(
            kind, message, endpoint=endpoint, status=status, retry_after=retry_after
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
