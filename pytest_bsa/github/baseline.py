"""The baseline from the default branch: the newest report artifact of a successful run there.

Artifacts are listed by name (newest first); one counts only when its run is on ``branch``, in
this repository (not a fork's same-named branch), started by a trusted event (push, schedule,
manual dispatch), concluded ``success``, and the artifact has not expired. Its zip is downloaded
and the report file read out of it without extracting anything else.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_bsa.github.api import GitHubClient, GitHubError

TRUSTED_EVENTS = frozenset({"push", "schedule", "workflow_dispatch"})
MAX_RUNS_CHECKED = 30
MAX_REPORT_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Artifact:
    id: int
    name: str
    run_id: int
    head_sha: str
    created_at: str


def _candidate(item: Any, name: str, branch: str) -> Artifact | None:
    if not isinstance(item, dict) or item.get("name") != name or item.get("expired"):
        return None
    run = item.get("workflow_run")
    if not isinstance(run, dict) or run.get("head_branch") != branch:
        return None
    if run.get("head_repository_id") != run.get("repository_id"):
        return None  # a fork's branch of the same name
    try:
        return Artifact(
            id=int(item["id"]),
            name=name,
            run_id=int(run["id"]),
            head_sha=str(run.get("head_sha", "")),
            created_at=str(item.get("created_at", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _trusted_success(run: Any, repository: str) -> bool:
    if not isinstance(run, dict):
        return False
    head = run.get("head_repository")
    head_name = head.get("full_name") if isinstance(head, dict) else None
    return (
        run.get("status") == "completed"
        and run.get("conclusion") == "success"
        and run.get("event") in TRUSTED_EVENTS
        and head_name == repository
    )


def find_baseline(client: GitHubClient, repository: str, branch: str, name: str) -> Artifact | None:
    """The newest usable ``name`` artifact of a successful run on ``branch``, or None."""
    listed = client.paginate(
        f"repos/{repository}/actions/artifacts", params={"name": name}, key="artifacts"
    )
    candidates = [a for a in (_candidate(i, name, branch) for i in listed) if a is not None]
    candidates.sort(key=lambda a: (a.created_at, a.id), reverse=True)
    checked: dict[int, bool] = {}
    for artifact in candidates:
        if artifact.run_id not in checked:
            if len(checked) >= MAX_RUNS_CHECKED:
                break
            run = client.call("GET", f"repos/{repository}/actions/runs/{artifact.run_id}")
            checked[artifact.run_id] = _trusted_success(run, repository)
        if checked[artifact.run_id]:
            return artifact
    return None


def extract_report(archive: bytes, filename: str = "report.json") -> bytes:
    """The bytes of ``filename`` in an artifact zip: at its root, else its only such file."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir()]
            exact = [m for m in members if m.filename == filename]
            named = exact or [m for m in members if PurePosixPath(m.filename).name == filename]
            if len(named) != 1:
                found = ", ".join(sorted(m.filename for m in members)[:5]) or "nothing"
                raise GitHubError(
                    f"the artifact holds {len(named)} files named {filename!r} (it has "
                    f"{found}); upload the directory the report was written to"
                )
            member = named[0]
            if member.file_size > MAX_REPORT_BYTES:
                raise GitHubError(f"{member.filename} in the artifact is larger than 1 GiB")
            return zipped.read(member)
    except zipfile.BadZipFile:
        raise GitHubError("the downloaded artifact is not a zip archive") from None


def download_baseline(
    client: GitHubClient, repository: str, artifact: Artifact, dest: Path, filename: str
) -> Path:
    """Download ``artifact`` and write its report to ``dest`` (a file path); returns it."""
    archive = client.download(f"repos/{repository}/actions/artifacts/{artifact.id}/zip")
    data = extract_report(archive, filename)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest
