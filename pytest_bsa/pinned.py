"""Download a file pinned by its sha256 into a cache, atomically (no pytest import).

Used for the benchmark file (:mod:`pytest_bsa.dataset`) and the official judge prompts
(:mod:`pytest_bsa.rubrics.fetch`): a file is downloaded only when missing or changed, and a
download whose hash differs from the pin never replaces anything.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class PinnedFileError(ValueError):
    """A pinned file that cannot be fetched; the message ends with the given fix."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_pinned(url: str, target: Path, sha256: str, *, fix: str) -> Path:
    """``target`` holding the file at ``url`` whose hash is ``sha256``; downloads when needed."""
    if target.is_file() and sha256_file(target) == sha256:
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".download-", suffix=".tmp")
    except OSError as exc:
        raise PinnedFileError(f"cannot write to the cache directory ({exc}); {fix}") from exc
    tmp = Path(tmp_name)
    try:
        got = _download(url, fd, fix)
        if got != sha256:
            raise PinnedFileError(
                f"downloaded {url} has sha256 {got}, expected {sha256} "
                f"(the upstream file changed or the download is corrupt); {fix}"
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise PinnedFileError(f"cannot write {target} ({exc}); {fix}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _download(url: str, fd: int, fix: str) -> str:
    """Stream ``url`` into the open file ``fd``; return the sha256 of what was written."""
    import httpx  # only needed for a download

    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as response:
                if response.status_code >= 400:
                    raise PinnedFileError(
                        f"downloading {url} failed with HTTP {response.status_code}; {fix}"
                    )
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise PinnedFileError(f"downloading {url} failed ({reason}); {fix}") from exc
    return digest.hexdigest()
