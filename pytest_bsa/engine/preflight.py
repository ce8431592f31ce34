"""Fail fast when an endpoint cannot be reached at all, instead of retrying every call."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def unreachable(role: str, api_base: str, timeout: float = 5.0) -> str | None:
    """A sentence saying why ``api_base`` cannot be reached, or None when a TCP connection opens.

    Only the connection is tried (no request, no tokens): a server that is up but failing is
    left to the retries, a server that is not there at all is reported before the run starts.
    """
    parts = urlsplit(api_base if "://" in api_base else f"http://{api_base}")
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"the {role} endpoint {api_base!r} has an invalid port"
    where = f"{parts.scheme}://{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        why = "connection refused (is the server running on that port?)"
    except socket.gaierror:
        why = f"unknown host {host!r} (check the URL)"
    except TimeoutError:
        why = f"no answer within {timeout:g} s"
    except OSError as exc:
        why = exc.strerror or str(exc)
    flag = "--bsa-api-base" if role == "model" else "--bsa-judge-api-base"
    return f"the {role} endpoint {where} is unreachable: {why}; check {flag}"
