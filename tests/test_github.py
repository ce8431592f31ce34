"""``python -m pytest_bsa github ...`` against a fake GitHub REST API on 127.0.0.1.

The runner's variables are simulated (``GITHUB_*``, a PR event file, temporary output and summary
files); a canary token checks that no output ever shows the token and that only the API's own
origin receives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from actions_runner import read_outputs
from factories import build_report, synthetic_results
from fake_github import REPO, FakeGitHub, fake_github

from pytest_bsa.__main__ import main
from pytest_bsa.config import GatePolicy, MetricThresholds, Thresholds
from pytest_bsa.github.comment import COMMENT_LIMIT, marker
from pytest_bsa.report import write_report

CANARY = "ghs_CANARY0123456789abcdefCANARY"
READ_ONLY = "ghs_READONLY0123456789abcdefREAD"
PR = 42


def _report(tmp: Path, name: str, *, seed: int = 0, answer: str = "answer {j}: {text}") -> Path:
    from factories import Texts

    policy = GatePolicy(
        samples=3,
        thresholds=Thresholds(overall=MetricThresholds(safe_at_1=0.99, think_at_1=0.2)),
    )
    results = synthetic_results(18, 3, seed=seed, texts=Texts(answer=answer))
    path = tmp / name
    write_report(build_report(results, policy), path)
    return path


def _baseline_pair(tmp: Path) -> tuple[Path, Path]:
    """A baseline and a run compared with it (the run's report names the baseline)."""
    policy = GatePolicy(samples=3)
    base = synthetic_results(18, 3, seed=1)
    now = synthetic_results(18, 3, seed=2)
    base_path, run_path = tmp / "base.json", tmp / "compared.json"
    write_report(build_report(base, policy), base_path)
    write_report(build_report(now, policy, baseline=base, baseline_label="base.json"), run_path)
    return base_path, run_path


@dataclass
class Runner:
    """A simulated workflow step: environment, event file, output and summary files."""

    api: FakeGitHub
    tmp: Path
    env: dict[str, str]

    @property
    def output(self) -> Path:
        return Path(self.env["GITHUB_OUTPUT"])

    @property
    def summary(self) -> Path:
        return Path(self.env["GITHUB_STEP_SUMMARY"])

    def event(self, payload: dict, name: str = "pull_request") -> None:
        path = self.tmp / "event.json"
        path.write_text(json.dumps(payload), encoding="utf-8")
        self.env.update(GITHUB_EVENT_PATH=str(path), GITHUB_EVENT_NAME=name)

    def outputs(self) -> dict[str, str]:
        return read_outputs(self.output.read_text(encoding="utf-8"))


def pr_event(number: int = PR, *, head: str = REPO) -> dict:
    return {
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"repo": {"full_name": head}},
            "base": {"repo": {"full_name": REPO}},
        },
        "repository": {"full_name": REPO, "default_branch": "main"},
    }


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runner]:
    with fake_github({CANARY: "write", READ_ONLY: "read"}) as api:
        (tmp_path / "out.txt").touch()
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": api.url,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_TOKEN": CANARY,
            "GITHUB_OUTPUT": str(tmp_path / "out.txt"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "RUNNER_TEMP": str(tmp_path / "runner-temp"),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        r = Runner(api, tmp_path, env)
        r.event(pr_event())
        monkeypatch.setenv("GITHUB_EVENT_PATH", r.env["GITHUB_EVENT_PATH"])
        monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
        yield r


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["github", *argv])
    out, err = capsys.readouterr()
    assert CANARY not in out + err and READ_ONLY not in out + err
    return code, out, err


def _ours(api: FakeGitHub, pr: int = PR) -> list[dict]:
    return [c for c in api.comments.get(pr, []) if c["body"].startswith(marker())]


# -- the sticky comment -------------------------------------------------------------------


def test_two_comment_commands_create_then_update_one_comment(
    runner: Runner, tmp_path: Path
) -> None:
    """The acceptance case, as the runner would run it: two processes, one comment."""
    first = _report(tmp_path, "run.json", seed=0)
    env = {**os.environ, **runner.env}
    for attempt in (1, 2):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_bsa", "github", "comment", str(first)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert CANARY not in proc.stdout + proc.stderr
        action = "created" if attempt == 1 else "updated"
        assert f"pytest-bsa: {action} the comment on #{PR}" in proc.stdout
        if attempt == 1:
            first = _report(tmp_path, "run.json", seed=3)  # the PR's next push
    ours = _ours(runner.api)
    assert len(ours) == 1 and len(runner.api.comments[PR]) == 1
    assert len(runner.api.calls("POST", rf"/repos/{REPO}/issues/{PR}/comments")) == 1
    assert len(runner.api.calls("PATCH", rf"/repos/{REPO}/issues/comments/\d+")) == 1
    body = ours[0]["body"]
    assert len(body) <= COMMENT_LIMIT
    lines = body.split("\n")
    assert lines[0] == marker()
    assert lines[1].startswith("### ❌ BSA gate failed")  # the verdict first
    from pytest_bsa.report import load_report
    from pytest_bsa.reporting.markdown import render_markdown

    assert body == marker() + "\n" + render_markdown(
        load_report(tmp_path / "run.json"), limit=COMMENT_LIMIT - len(marker()) - 1
    )  # the second report's text: the comment was updated, not appended to


def test_our_comment_is_found_on_a_later_page(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(130):
        runner.api.add_comment(PR, f"review note {n}")
    mine = runner.api.add_comment(PR, marker() + "\nold summary", login="github-actions[bot]")
    runner.api.add_comment(PR, "a later note quoting it: " + marker())
    code, out, _ = run(capsys, "comment", str(_report(tmp_path, "run.json")))
    assert code == 0 and "updated the comment" in out
    pages = [s.query.get("page", "1") for s in runner.api.calls("GET", r".*/issues/42/comments")]
    assert pages == ["1", "2"]
    assert mine["body"].startswith(marker() + "\n### ")
    assert len(runner.api.comments[PR]) == 132 and not runner.api.calls("POST", r".*")


def test_separate_ids_keep_separate_comments(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = str(_report(tmp_path, "run.json"))
    assert run(capsys, "comment", report, "--id", "model-a")[0] == 0
    assert run(capsys, "comment", report, "--id", "model-b")[0] == 0
    assert run(capsys, "comment", report, "--id", "model-a")[0] == 0
    bodies = [c["body"].split("\n", 1)[0] for c in runner.api.comments[PR]]
    assert bodies == [marker("model-a"), marker("model-b")]


def test_comment_is_redacted_unless_full_and_shows_before_after(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, compared = _baseline_pair(tmp_path)
    report = _report(tmp_path, "secret.json", answer="SECRET-MODEL-ANSWER {j}")
    assert run(capsys, "comment", str(report))[0] == 0
    assert "SECRET-MODEL-ANSWER" not in runner.api.comments[PR][0]["body"]
    assert run(capsys, "comment", str(report), "--full")[0] == 0
    assert "SECRET-MODEL-ANSWER" in runner.api.comments[PR][0]["body"]
    assert run(capsys, "comment", str(compared), "--baseline", str(base))[0] == 0
    body = runner.api.comments[PR][0]["body"]
    sections = [line for line in body.split("\n") if line.startswith("###")]
    assert sections[:2] == [sections[0], "#### Before and after: base.json → this run"]
    assert sections[0].startswith("### ")
    assert "| **all instances** | 18 → 18 |" in body


def test_fork_pull_request_gets_a_notice_and_no_call(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner.event(pr_event(head="forker/app"))
    os.environ["GITHUB_EVENT_PATH"] = runner.env["GITHUB_EVENT_PATH"]
    code, out, _ = run(capsys, "comment", str(_report(tmp_path, "run.json")))
    assert code == 0
    assert out.startswith("::notice title=pytest-bsa::pull request #42 comes from a fork")
    assert runner.api.seen == []


def test_forbidden_token_gets_a_notice_and_succeeds(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", READ_ONLY)
    code, out, _ = run(capsys, "comment", str(_report(tmp_path, "run.json")))
    assert code == 0
    assert "::notice title=pytest-bsa::the token may not comment on #42" in out
    assert "HTTP 403: Resource not accessible by integration" in out
    assert runner.api.comments.get(PR, []) == []


def test_no_pull_request_or_no_token_is_a_notice(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    report = str(_report(tmp_path, "run.json"))
    monkeypatch.delenv("GITHUB_TOKEN")
    code, out, _ = run(capsys, "comment", report)
    assert code == 0 and "no GITHUB_TOKEN: no comment posted" in out
    runner.event({"ref": "refs/heads/main"}, name="push")
    monkeypatch.setenv("GITHUB_EVENT_PATH", runner.env["GITHUB_EVENT_PATH"])
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    code, out, _ = run(capsys, "comment", report)
    assert code == 0 and "no pull request in push: no comment posted" in out
    assert runner.api.seen == []


def test_comment_survives_a_transient_error_and_reports_others(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    report = str(_report(tmp_path, "run.json"))
    runner.api.fail_next = [502]
    code, out, _ = run(capsys, "comment", report)
    assert code == 0 and "created the comment" in out
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_UNKNOWN_TOKEN_CANARY")
    code, out, err = run(capsys, "comment", report)
    assert code == 1
    assert "commenting on #42 failed: GET /repos/octo/app/issues/42/comments answered HTTP" in err
    assert "401: Bad credentials" in err
    assert "ghs_UNKNOWN_TOKEN_CANARY" not in out + err


def test_bad_report_is_a_usage_error_before_any_call(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "comment", str(tmp_path / "missing.json"))
    assert code == 4 and "cannot read report" in err and "Traceback" not in err
    code, _, err = run(capsys, "comment", str(_report(tmp_path, "r.json")), "--id", "a b")
    assert code == 4 and "comment id 'a b' must be" in err
    assert runner.api.seen == []


# -- the baseline from the default branch --------------------------------------------------


def test_baseline_is_the_newest_successful_default_branch_report(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = runner.api
    wanted = b'{"schema_version": 1, "which": "newest good"}'
    api.add_report_artifact(b'{"which": "older"}', created_at="2026-01-01T00:00:00Z")
    wanted_id = api.add_report_artifact(wanted, created_at="2026-01-02T00:00:00Z")
    traps = {
        "failed run": dict(conclusion="failure"),
        "pull request branch": dict(branch="feature"),
        "fork's main": dict(from_fork=True),
        "pull_request event": dict(event="pull_request"),
        "expired": dict(expired=True),
        "other name": dict(name="other-report"),
    }
    for day, (label, trap) in enumerate(traps.items(), start=3):
        body = json.dumps({"which": label}).encode()
        api.add_report_artifact(body, created_at=f"2026-01-{day:02d}T00:00:00Z", **trap)
    code, out, err = run(capsys, "baseline", "--github-output", "path")
    assert code == 0, err
    path = Path(out.strip())
    sha = next(a for a in api.artifacts if a["id"] == wanted_id)["workflow_run"]["head_sha"]
    label = f"bsa-report-main-{sha[:12]}.json"
    assert path == tmp_path / "runner-temp" / "pytest-bsa-baseline" / label
    assert path.read_bytes() == wanted
    assert runner.outputs()["path"] == str(path)
    assert "pytest-bsa: baseline from run" in err and "on 'main'" in err
    # The token went to the API and never to the storage the download redirected to.
    assert api.seen and all(s.authorization == f"Bearer {CANARY}" for s in api.seen)
    assert [s.authorization for s in api.storage_seen] == [None]
    assert "signed-url-secret" not in out + err


def test_first_run_has_no_baseline_yet(runner: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    runner.api.add_report_artifact(b"{}", branch="feature")
    code, out, err = run(capsys, "baseline", "--github-output", "path")
    assert code == 0 and out == ""
    assert err.startswith("::notice title=pytest-bsa::no baseline yet: no 'bsa-report' artifact")
    assert runner.outputs() == {"path": ""}


def test_baseline_branch_name_and_file_options(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner.api.add_report_artifact(b"release", name="gate", branch="release", filename="r.json")
    dest = tmp_path / "base" / "r.json"
    code, out, _ = run(
        capsys, "baseline", "--branch", "release", "--name", "gate", "--file", "r.json",
        "--output", str(dest),
    )  # fmt: skip
    assert code == 0 and out.strip() == str(dest) and dest.read_bytes() == b"release"


def test_baseline_without_permission_names_the_fix(
    runner: Runner, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_NOT_KNOWN")
    code, _, err = run(capsys, "baseline")
    assert code == 1
    assert "fetching the baseline failed" in err and "`permissions: actions: read`" in err
    monkeypatch.delenv("GITHUB_TOKEN")
    code, _, err = run(capsys, "baseline")
    assert code == 4 and "no GITHUB_TOKEN" in err
