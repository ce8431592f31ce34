"""The official BSA judge prompts: pinned to a commit and a sha256 each, cached like the data.

The files are CC BY-NC 4.0 and never shipped with pytest-bsa. ``--bsa-rubric official``
downloads them from ``$BSA_RUBRIC_ENDPOINT`` (default ``https://raw.githubusercontent.com``)
into ``<cache>/rubrics/``, checks every sha256 and reuses them offline afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

from pytest_bsa.pinned import PinnedFileError, fetch_pinned
from pytest_bsa.rubrics.base import RubricError

OFFICIAL_REPO = "OpenStellarTeam/BSA"
OFFICIAL_COMMIT = "b54c09fb8c8fdc0d568bdaff89ff0a46149ab094"
OFFICIAL_SHA256: dict[str, str] = {
    "Safe_Ans_Judge.md": "7c72e39dde166756f7ce6dbdf07cbe2855f679e1d5e20689ebc7600ecd9041b1",
    "Thinking_Accuracy_Judge.md": (
        "1bcfe0906882a85f0f37f199626af64b5371e661c658833d2f993e0a5f6e13cf"
    ),
    "Safe_Rules.md": "f8220589d42357decd92aa762cc773aa3352dc365d13abc352b4578733a30903",
}
ENDPOINT_ENV = "BSA_RUBRIC_ENDPOINT"
DEFAULT_ENDPOINT = "https://raw.githubusercontent.com"
_FIX = (
    "download the Prompt folder of {repo} at commit {commit} yourself and pass "
    "--bsa-rubric=/path/to/Prompt"
)


def official_url(name: str, endpoint: str | None = None) -> str:
    base = (endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")
    return f"{base}/{OFFICIAL_REPO}/{OFFICIAL_COMMIT}/Prompt/{name}"


def official_dir(cache_dir: Path) -> Path:
    return cache_dir / "rubrics" / f"official-{OFFICIAL_COMMIT[:12]}"


OFFICIAL_SOURCE = f"{OFFICIAL_REPO}@{OFFICIAL_COMMIT[:12]}"


def fetch_official_file(cache_dir: Path, name: str, *, fix: str | None = None) -> Path:
    """One pinned official file in the cache (downloaded when missing or changed); raises
    :class:`~pytest_bsa.pinned.PinnedFileError` naming ``fix``."""
    fix = fix or _FIX.format(repo=OFFICIAL_REPO, commit=OFFICIAL_COMMIT)
    target = official_dir(cache_dir) / name
    return fetch_pinned(official_url(name), target, OFFICIAL_SHA256[name], fix=fix)


def fetch_official(cache_dir: Path) -> tuple[Path, str]:
    """The directory holding the pinned official prompt files, and where they came from."""
    for name in OFFICIAL_SHA256:
        try:
            fetch_official_file(cache_dir, name)
        except PinnedFileError as exc:
            raise RubricError(f"--bsa-rubric official: {exc}") from exc
    return official_dir(cache_dir), OFFICIAL_SOURCE
