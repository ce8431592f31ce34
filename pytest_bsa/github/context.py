"""What a workflow step knows from the runner: its standard ``GITHUB_*`` variables and event."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_API_URL = "https://api.github.com"


class ContextError(ValueError):
    """A runner variable that is missing or unusable; the message names it and the fix."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    head_repository: str | None  # None when the fork was deleted
    base_repository: str | None

    @property
    def from_fork(self) -> bool:
        return self.head_repository is None or self.head_repository != self.base_repository


@dataclass(frozen=True)
class Runner:
    """The ``GITHUB_*`` variables a step needs (never printed: ``token`` is a secret)."""

    api_url: str
    repository: str  # owner/name
    event_name: str
    event: Mapping[str, Any] = field(default_factory=dict)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Runner:
        repository = environ.get("GITHUB_REPOSITORY", "")
        if repository.count("/") != 1 or not all(repository.split("/")):
            raise ContextError(
                f"GITHUB_REPOSITORY is {repository!r}, not owner/name: run this in a GitHub "
                "Actions step, or set GITHUB_REPOSITORY, GITHUB_API_URL and GITHUB_EVENT_PATH"
            )
        return cls(
            api_url=environ.get("GITHUB_API_URL") or DEFAULT_API_URL,
            repository=repository,
            event_name=environ.get("GITHUB_EVENT_NAME", ""),
            event=_read_event(environ.get("GITHUB_EVENT_PATH")),
            token=environ.get("GITHUB_TOKEN") or None,
        )

    @property
    def default_branch(self) -> str | None:
        repo = self.event.get("repository")
        branch = repo.get("default_branch") if isinstance(repo, Mapping) else None
        return branch if isinstance(branch, str) and branch else None

    def pull_request(self) -> PullRequest | None:
        """The pull request this run belongs to, when its event is one."""
        pr = self.event.get("pull_request")
        if isinstance(pr, Mapping) and isinstance(pr.get("number"), int):
            return PullRequest(
                number=pr["number"],
                head_repository=_full_name(pr.get("head")),
                base_repository=_full_name(pr.get("base")) or self.repository,
            )
        issue = self.event.get("issue")  # issue_comment on a pull request
        if (
            isinstance(issue, Mapping)
            and isinstance(issue.get("number"), int)
            and issue.get("pull_request")
        ):
            return PullRequest(issue["number"], self.repository, self.repository)
        return None


def _full_name(side: Any) -> str | None:
    repo = side.get("repo") if isinstance(side, Mapping) else None
    name = repo.get("full_name") if isinstance(repo, Mapping) else None
    return name if isinstance(name, str) else None


def _read_event(path: str | None) -> Mapping[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ContextError(f"cannot read GITHUB_EVENT_PATH {path!r}: {exc.strerror}") from None
    except ValueError:
        raise ContextError(f"GITHUB_EVENT_PATH {path!r} is not JSON") from None
    if not isinstance(data, dict):
        raise ContextError(f"GITHUB_EVENT_PATH {path!r} does not hold a JSON object")
    return data
