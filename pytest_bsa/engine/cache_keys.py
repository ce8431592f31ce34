"""The cache's keys: sha256 digests of what makes an answer or a verdict the same, with nothing
secret in them (no headers, no userinfo or query of ``api_base``, no credential-named param;
pure)."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from pytest_bsa.engine.types import ChatRequest

KEY_FORMAT = 2  # bump to invalidate every key when the key material changes meaning


_DEFAULT_PORTS = {"http": 80, "https": 443}


# Whole words (split on non-alphanumerics and camelCase) that name a credential anywhere in a
# param name, and words that do so as the last word ("api_key", "access_token"). Count-like
# names such as "max_tokens" or "stop_token_ids" are generation params and stay in the key.
_SECRET_WORDS = frozenset(
    {"secret", "password", "passwd", "apikey", "credential", "credentials", "authorization"}
)


_SECRET_LAST_WORDS = frozenset({"key", "token", "auth", "bearer"})


_SECRET_SUBSTRINGS = ("api_key", "api-key", "apikey", "secret", "password")


def is_secret_name(name: str) -> bool:
    """Whether a param or field name looks like it holds a credential."""
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_SUBSTRINGS):
        return True
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", spaced) if w]
    if not words:
        return False
    return words[-1] in _SECRET_LAST_WORDS or any(w in _SECRET_WORDS for w in words)


def scrub_secrets(value: Any) -> Any:
    """``value`` with every credential-named mapping entry removed, at any depth."""
    if isinstance(value, Mapping):
        return {str(k): scrub_secrets(v) for k, v in value.items() if not is_secret_name(str(k))}
    if isinstance(value, (list, tuple)):
        return [scrub_secrets(v) for v in value]
    return value


def normalise_api_base(api_base: str | None) -> str | None:
    """``scheme://host:port/path``: lower-case scheme and host, explicit port, no userinfo,
    query, fragment or trailing slash. ``None`` (the provider's default endpoint) stays None."""
    if api_base is None or not api_base.strip():
        return None
    text = api_base.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    netloc = host if port is None else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _digest(material: Mapping[str, Any]) -> str:
    text = json.dumps(
        material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def completion_key(
    request: ChatRequest, sample_index: int, scope: str | None = None, *, ask: int = 0
) -> str:
    """The cache key of sample ``sample_index`` of ``request`` in run ``scope``.

    Depends on the normalised endpoint, model, messages, params (credential-named ones
    dropped), response format, sample index and the run scope (``None``: shared by every run)
    and, for the repeated asks of a judge verdict in a batch, which ask (``ask`` > 0); never on
    headers (routing hints) or key order.
    """
    material: dict[str, Any] = {
        "type": "completion",
        "v": KEY_FORMAT,
        "api_base": normalise_api_base(request.api_base),
        "model": request.model,
        "messages": list(request.messages),  # the prompt itself: never scrubbed
        "params": scrub_secrets(request.params),
        "response_format": request.response_format,
        "sample_index": int(sample_index),
    }
    if scope is not None:
        material["run"] = scope
    if ask:
        material["ask"] = int(ask)
    return _digest(material)


def verdict_key(judge_model: str, rubric_version: str, kind: str, inputs: Mapping[str, str]) -> str:
    """The cache key of one judge verdict: judge model, rubric version, verdict kind, inputs."""
    return _digest(
        {
            "type": "verdict",
            "v": KEY_FORMAT,
            "judge_model": judge_model,
            "rubric_version": rubric_version,
            "kind": kind,
            "inputs": dict(inputs),
        }
    )
