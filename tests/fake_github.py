"""A fake GitHub REST API on 127.0.0.1 for the github subcommands and the Action's steps.

It serves the endpoints pytest-bsa calls, with GitHub's shapes: issue comments (list with
``per_page``/``page`` and a ``Link`` header, create, update), artifacts listed by name, workflow
runs, and an artifact's zip behind a 302 to a second server (another origin, like GitHub's
storage). Tokens are ``write`` or ``read``; a read token gets 403 on writes, an unknown one 401.
Every request is recorded, with the Authorization header each server received.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

REPO = "octo/app"
REPO_ID = 1001


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any = None


@dataclass
class FakeGitHub:
    """The state behind the fake API; tests arrange it and read what was asked."""

    tokens: dict[str, str] = field(default_factory=dict)  # token -> "write" | "read"
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # PR -> comments
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)  # artifact id -> zip
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before serving
    seen: list[Seen] = field(default_factory=list)
    storage_seen: list[Seen] = field(default_factory=list)
    url: str = ""
    storage_url: str = ""
    _next_id: int = 5000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- arranging --------------------------------------------------------------------

    def add_comment(self, pr: int, body: str, login: str = "someone") -> dict[str, Any]:
        cid = self.next_id()
        comment = {
            "id": cid,
            "body": body,
            "user": {"login": login, "type": "User"},
            "html_url": f"https://github.example/{REPO}/pull/{pr}#issuecomment-{cid}",
        }
        self.comments.setdefault(pr, []).append(comment)
        return comment

    def add_report_artifact(
        self,
        report: bytes,
        *,
        name: str = "bsa-report",
        branch: str = "main",
        created_at: str = "2026-01-01T00:00:00Z",
        conclusion: str = "success",
        event: str = "push",
        from_fork: bool = False,
        expired: bool = False,
        filename: str = "report.json",
    ) -> int:
        """An artifact whose zip holds ``report`` (plus a summary), made by its own run."""
        run_id, artifact_id = self.next_id(), self.next_id()
        head_repo = "forker/app" if from_fork else REPO
        sha = hashlib.sha1(str(run_id).encode()).hexdigest()
        self.runs[run_id] = {
            "id": run_id,
            "head_branch": branch,
            "head_sha": sha,
            "event": event,
            "status": "completed",
            "conclusion": conclusion,
            "head_repository": {"full_name": head_repo},
            "repository": {"full_name": REPO},
        }
        self.artifacts.append(
            {
                "id": artifact_id,
                "name": name,
                "expired": expired,
                "created_at": created_at,
                "archive_download_url": f"{self.url}/repos/{REPO}/actions/artifacts/"
                f"{artifact_id}/zip",
                "workflow_run": {
                    "id": run_id,
                    "repository_id": REPO_ID,
                    "head_repository_id": 2002 if from_fork else REPO_ID,
                    "head_branch": branch,
                    "head_sha": sha,
                },
            }
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zipped:
            zipped.writestr(filename, report)
            zipped.writestr("summary.md", "### summary\n")
        self.blobs[artifact_id] = buffer.getvalue()
        return artifact_id

    # -- reading ----------------------------------------------------------------------

    def calls(self, method: str, pattern: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and re.fullmatch(pattern, s.path)]


def _page(items: list[Any], query: dict[str, str]) -> tuple[list[Any], int, int]:
    per_page = min(int(query.get("per_page", "30")), 100)
    page = max(int(query.get("page", "1")), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    return items[(page - 1) * per_page : page * per_page], page, last


class _Api(BaseHTTPRequestHandler):
    state: FakeGitHub

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        state = self.state
        auth = self.headers.get("Authorization")
        with state.lock:
            state.seen.append(Seen(method, parts.path, query, auth, body))
            if state.fail_next:
                self._send(state.fail_next.pop(0), {"message": "Server Error"})
                return
            token = auth.removeprefix("Bearer ") if auth else None
            role = state.tokens.get(token or "")
            if role is None:
                self._send(401, {"message": "Bad credentials"})
                return
            self._route(method, parts.path, query, body, role)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any, role: str) -> None:
        state = self.state
        prefix = f"/repos/{REPO}"
        if not path.startswith(prefix + "/"):
            self._send(404, {"message": "Not Found"})
            return
        rest = path[len(prefix) :]
        if method in ("POST", "PATCH") and role != "write":
            self._send(403, {"message": "Resource not accessible by integration"})
            return
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            pr = int(m.group(1))
            if method == "GET":
                self._listing(state.comments.get(pr, []), path, query)
            elif method == "POST":
                made = state.add_comment(pr, body["body"], login="github-actions[bot]")
                self._send(201, made)
            return
        if (m := re.fullmatch(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            cid = int(m.group(1))
            for comments in state.comments.values():
                for comment in comments:
                    if comment["id"] == cid:
                        comment["body"] = body["body"]
                        self._send(200, comment)
                        return
            self._send(404, {"message": "Not Found"})
            return
        if rest == "/actions/artifacts" and method == "GET":
            named = [a for a in state.artifacts if a["name"] == query.get("name", a["name"])]
            newest = sorted(named, key=lambda a: a["created_at"], reverse=True)
            self._listing(newest, path, query, key="artifacts")
            return
        if (m := re.fullmatch(r"/actions/runs/(\d+)", rest)) and method == "GET":
            run = state.runs.get(int(m.group(1)))
            self._send(200 if run else 404, run or {"message": "Not Found"})
            return
        if (m := re.fullmatch(r"/actions/artifacts/(\d+)/zip", rest)) and method == "GET":
            aid = int(m.group(1))
            if aid not in state.blobs:
                self._send(404, {"message": "Not Found"})
                return
            target = f"{state.storage_url}/blob/{aid}?sig=signed-url-secret"
            self._send(302, None, {"Location": target})
            return
        self._send(404, {"message": "Not Found"})

    def _listing(
        self, items: list[Any], path: str, query: dict[str, str], key: str | None = None
    ) -> None:
        shown, page, last = _page(items, query)
        links = []
        for rel, number in (("next", page + 1), ("last", last)):
            if rel == "next" and page >= last:
                continue
            q = urlencode({**query, "page": number})
            links.append(f'<{self.state.url}{path}?{q}>; rel="{rel}"')
        headers = {"Link": ", ".join(links)} if links else {}
        body = {"total_count": len(items), key: shown} if key else shown
        self._send(200, body, headers)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")


class _Storage(BaseHTTPRequestHandler):
    state: FakeGitHub

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.state.storage_seen.append(
            Seen("GET", parts.path, {}, self.headers.get("Authorization"))
        )
        m = re.fullmatch(r"/blob/(\d+)", parts.path)
        data = self.state.blobs.get(int(m.group(1))) if m else None
        self.send_response(200 if data else 404)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")


@contextmanager
def fake_github(tokens: dict[str, str]) -> Iterator[FakeGitHub]:
    """Start the API and its storage on 127.0.0.1 (stopped on exit)."""
    state = FakeGitHub(tokens=dict(tokens))
    api_handler = type("Api", (_Api,), {"state": state})
    storage_handler = type("Storage", (_Storage,), {"state": state})
    servers = [
        ThreadingHTTPServer(("127.0.0.1", 0), api_handler),
        ThreadingHTTPServer(("127.0.0.1", 0), storage_handler),
    ]
    state.url = f"http://127.0.0.1:{servers[0].server_address[1]}"
    state.storage_url = f"http://127.0.0.1:{servers[1].server_address[1]}"
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        for s in servers
    ]
    for thread in threads:
        thread.start()
    try:
        yield state
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
