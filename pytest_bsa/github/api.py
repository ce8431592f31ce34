"""A small GitHub REST client on httpx: JSON calls, Link-header pagination, artifact downloads.

The token is sent only to the API's own origin: pagination links and redirects elsewhere (the
artifact storage) are followed without it, and no message this module raises can contain it.
Transient failures (connection errors, 429, 502-504) are retried twice with a short backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from pytest_bsa import __version__

API_VERSION = "2022-11-28"
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
_TRANSIENT = frozenset({429, 502, 503, 504})


class GitHubError(Exception):
    """A failed API call; ``status`` is the HTTP status (None when no answer came)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


class GitHubClient:
    """Calls ``api_url`` (``$GITHUB_API_URL``) with ``token``; use as a context manager."""

    def __init__(
        self,
        api_url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token or None
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"pytest-bsa/{__version__}",
        }
        self._client = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- plumbing ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if "://" in path else f"{self.api_url}/{path.lstrip('/')}"

    def _same_origin(self, url: str) -> bool:
        return _origin(url) == _origin(self.api_url)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        authorised: bool = True,
    ) -> httpx.Response:
        headers = {}
        if authorised and self._token and self._same_origin(url):
            headers["Authorization"] = f"Bearer {self._token}"
        where = f"{method} {urlsplit(url).path}"
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = self._client.request(
                    method, url, params=params, json=json, headers=headers
                )
            except httpx.HTTPError as exc:
                if last:
                    reason = self._scrub(str(exc) or type(exc).__name__)
                    raise GitHubError(f"{where} failed: {reason}") from None
            else:
                if response.status_code not in _TRANSIENT or last:
                    return response
            self._sleep(self._backoff * (2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, response: httpx.Response, method: str, url: str) -> GitHubError:
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, Mapping) else None
        text = f"{method} {urlsplit(url).path} answered HTTP {response.status_code}"
        if isinstance(message, str) and message:
            text += f": {' '.join(message.split())[:300]}"
        return GitHubError(self._scrub(text), status=response.status_code)

    # -- calls ---------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """The decoded JSON of a 2xx answer; :class:`GitHubError` for anything else."""
        url = self._url(path)
        response = self._send(method, url, params=params, json=json)
        if not 200 <= response.status_code < 300:
            raise self._error(response, method, url)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise GitHubError(f"{method} {urlsplit(url).path} did not answer JSON") from None

    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        key: str | None = None,
        max_pages: int = 20,
    ) -> Iterator[Any]:
        """Every item of a listing, following ``Link: <...>; rel="next"`` on the API's origin.

        ``key`` names the list inside an object answer (``artifacts``); plain list answers
        (issue comments) need none.
        """
        url: str | None = self._url(path)
        query: Mapping[str, Any] | None = {"per_page": 100, **(params or {})}
        for _ in range(max_pages):
            if url is None:
                return
            response = self._send("GET", url, params=query)
            if not 200 <= response.status_code < 300:
                raise self._error(response, "GET", url)
            try:
                data = response.json()
            except ValueError:
                raise GitHubError(f"GET {urlsplit(url).path} did not answer JSON") from None
            items = data.get(key, []) if key and isinstance(data, Mapping) else data
            if not isinstance(items, list):
                raise GitHubError(f"GET {urlsplit(url).path} did not answer a list")
            yield from items
            following = response.links.get("next", {}).get("url")
            url = following if following and self._same_origin(following) else None
            query = None  # the next link carries its own query

    def download(self, path: str, *, limit: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """A file behind redirects (an artifact's zip), streamed up to ``limit`` bytes.

        The token goes to the API's origin only; the storage a redirect points to (a signed URL)
        gets no Authorization header, and its address is never printed.
        """
        url = self._url(path)
        where = f"GET {urlsplit(url).path}"
        for _ in range(5):
            own = self._same_origin(url)
            headers = {"Authorization": f"Bearer {self._token}"} if own and self._token else {}
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    if response.status_code in (301, 302, 303, 307, 308):
                        location = response.headers.get("location")
                        if not location:
                            raise GitHubError(f"{where}: a redirect without a location")
                        url = str(response.url.join(location))
                        continue
                    if not 200 <= response.status_code < 300:
                        response.read()
                        if own:
                            raise self._error(response, "GET", url)
                        raise GitHubError(
                            f"{where}: the artifact storage answered HTTP {response.status_code}",
                            status=response.status_code,
                        )
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise GitHubError(
                                f"{where}: the download is larger than {limit // 2**20} MiB"
                            )
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.HTTPError as exc:
                reason = self._scrub(str(exc) or type(exc).__name__)
                raise GitHubError(f"{where} failed: {reason}") from None
        raise GitHubError(f"{where}: too many redirects")
