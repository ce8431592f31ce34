"""The sticky pull-request comment: one comment per gate, found by a hidden marker, then updated.

The body is the Markdown summary (verdict first, the before/after table when a baseline is
given, model output redacted unless asked), under GitHub's 65,536-character cap with the marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pytest_bsa.github.api import GitHubClient
from pytest_bsa.report import Report

COMMENT_LIMIT = 65_536  # characters GitHub accepts in a comment body
_MARKER_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def marker(comment_id: str = "bsa-report") -> str:
    """The hidden first line that identifies our comment for one gate (``comment_id``)."""
    if not _MARKER_ID.match(comment_id):
        raise ValueError(
            f"comment id {comment_id!r} must be 1-100 letters, digits, '.', '_' or '-', "
            "e.g. bsa-report"
        )
    return f"<!-- pytest-bsa:sticky-comment id={comment_id} -->"


def comment_body(
    report: Report,
    *,
    baseline: Report | None = None,
    full: bool = False,
    comment_id: str = "bsa-report",
) -> str:
    """The marker line, then the summary; never longer than :data:`COMMENT_LIMIT`."""
    from pytest_bsa.reporting.markdown import render_markdown

    head = marker(comment_id) + "\n"
    text = render_markdown(report, full=full, limit=COMMENT_LIMIT - len(head), baseline=baseline)
    return head + text


@dataclass(frozen=True)
class Posted:
    action: Literal["created", "updated"]
    comment_id: int
    url: str


def find_comment(client: GitHubClient, repository: str, number: int, mark: str) -> Any:
    """Our earlier comment on the pull request (its body starts with ``mark``), or None."""
    path = f"repos/{repository}/issues/{number}/comments"
    for comment in client.paginate(path):
        body = comment.get("body") if isinstance(comment, dict) else None
        if isinstance(body, str) and body.startswith(mark):
            return comment
    return None


def upsert_comment(
    client: GitHubClient, repository: str, number: int, body: str, mark: str
) -> Posted:
    """Update our comment on pull request ``number``, or create it when there is none."""
    found = find_comment(client, repository, number, mark)
    if found is not None:
        done = client.call(
            "PATCH", f"repos/{repository}/issues/comments/{found['id']}", json={"body": body}
        )
        action: Literal["created", "updated"] = "updated"
    else:
        done = client.call(
            "POST", f"repos/{repository}/issues/{number}/comments", json={"body": body}
        )
        action = "created"
    return Posted(action, int(done.get("id", 0)), str(done.get("html_url", "")))
