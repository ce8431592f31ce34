"""The HTTP error helpers both transports share: where a call went, what kind of failure it
was, how long the server asked us to wait, and text safe to show (no key, one short line).

Pure and cheap to import (no aiohttp, no litellm).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from pytest_bsa.engine.types import ErrorKind


def endpoint_of(url: str | None) -> str:
    """``scheme://host:port`` of ``url``: never its path, query or credentials."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    if not parts.scheme or not parts.hostname:
        return ""
    port = port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def kind_for_status(status: int) -> ErrorKind:
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server"
    return "client"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """``retry-after-ms`` (OpenAI) first, then ``Retry-After``; keys are case-insensitive."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    millis = parse_retry_after(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    return parse_retry_after(lowered.get("retry-after"))


_TRY_AGAIN = re.compile(r"try again in\s+(\d+(?:\.\d+)?)\s*(ms|s|sec|seconds?)\b", re.IGNORECASE)


def retry_after_from_body(body: Any) -> float | None:
    """A wait hinted in a JSON error body: a ``retry_after`` field or "try again in 1.5s"."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    for holder in (error, body):
        if isinstance(holder, Mapping):
            value = holder.get("retry_after")
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                parsed = parse_retry_after(str(value))
                if parsed is not None:
                    return parsed
    match = _TRY_AGAIN.search(error_message(body))
    if match:
        amount = float(match.group(1))
        return amount / 1000.0 if match.group(2).lower() == "ms" else amount
    return None


def error_message(body: Any) -> str:
    """The human part of an error body: ``error.message``, ``error``, ``message`` or ``detail``."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return error["message"]
        for value in (error, body.get("message"), body.get("detail")):
            if isinstance(value, str):
                return value
        return json.dumps(body)[:500]
    return str(body) if body is not None else ""


def parse_json(raw: bytes | str) -> Any:
    """The decoded JSON of ``raw``, or ``None`` when it is not JSON."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def shorten(text: str, limit: int = 200) -> str:
    """One line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def scrub(text: str, secret: str | None) -> str:
    """Replace ``secret`` wherever it appears in ``text``."""
    return text.replace(secret, "***") if secret else text


def auth_hint(api_key: str | None, api_key_env: str | None, provider: str = "") -> str:
    """What to check after a 401/403, naming the environment variable when it is known.

    ``api_key_env`` may be the option that names a variable (``--bsa-api-key-env``) when no
    key was sent to this base URL.
    """
    if api_key_env and api_key_env.startswith("--"):
        return f"no key is sent to this base URL unless a variable is named for it: {api_key_env}"
    if api_key_env:
        return f"check {api_key_env}"
    if provider:
        env = re.sub(r"\W", "_", provider).upper() + "_API_KEY"
        return f"check the API key for provider {provider!r} (usually {env})"
    if api_key is None:
        return "no API key was sent; set one (e.g. OPENAI_API_KEY)"
    return "the API key was rejected; check OPENAI_API_KEY or the configured key variable"


_SECRETISH = re.compile(r"(?i)(bearer\s+|sk-|api[_-]?key[=:]\s*)[^\s'\",}]+")


def redact(message: str) -> str:
    """An unexpected library error, one line, with anything key-like masked."""
    return _SECRETISH.sub(r"\1***", " ".join(message.split()))[:300]
