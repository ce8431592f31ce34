"""One pooled aiohttp session per event loop, and the HTTP error a failed call becomes.

Used by the Anthropic transport and the batch clients (the OpenAI-compatible transport keeps its
own copy of the same plumbing). Importing this module does not import aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from pytest_bsa.engine.types import TransportError

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The decoded body, or ``None`` when it is not JSON."""
        return parse_json(self.body)


class HttpClient:
    """Sends requests with fixed headers (the key among them) over a pooled session."""

    def __init__(self, headers: Mapping[str, str], *, max_connections: int = 256) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self._headers = dict(headers)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def _session_for_loop(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._session_loop = loop
        return self._session

    async def send(
        self,
        method: str,
        url: str,
        *,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> HttpReply:
        """One request; connection failures and timeouts become a ``TransportError``."""
        import aiohttp

        from pytest_bsa.engine.openai_compat import OpenAICompatTransport

        endpoint = endpoint_of(url)
        session = self._session_for_loop()
        try:
            async with session.request(
                method,
                url,
                data=data,
                headers=dict(headers) if headers else None,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                return HttpReply(response.status, response.headers, await response.read())
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError(
                "timeout", f"no complete answer within {timeout:g} s", endpoint=endpoint
            ) from None
        except aiohttp.InvalidURL:
            raise TransportError("client", f"invalid URL {shorten(url, 80)!r}") from None
        except (aiohttp.ClientError, OSError) as exc:
            why = OpenAICompatTransport._why(exc, endpoint)
            raise TransportError("connection", why, endpoint=endpoint) from None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def http_error(
    reply: HttpReply,
    endpoint: str,
    *,
    api_key: str | None,
    api_key_env: str | None,
    provider: str = "",
    retry_after: float | None = None,
    hint: str | None = None,
) -> TransportError:
    """The ``TransportError`` for an HTTP status >= 400 (message scrubbed of the key).

    ``retry_after`` is a wait the caller already read from provider-specific headers; ``hint``
    replaces the generic advice after a 401/403.
    """
    body = reply.json()
    text = error_message(body) if body is not None else reply.body.decode("utf-8", "replace")
    message = shorten(scrub(text, api_key)) or f"HTTP {reply.status}"
    kind = kind_for_status(reply.status)
    wait = None
    if kind == "auth":
        message = f"{message}; {hint or auth_hint(api_key, api_key_env, provider)}"
    elif kind in ("rate_limit", "server"):
        wait = retry_after
        if wait is None:
            wait = retry_after_from_headers(reply.headers)
        if wait is None:
            wait = retry_after_from_body(body)
    return TransportError(kind, message, endpoint=endpoint, status=reply.status, retry_after=wait)
