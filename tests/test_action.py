"""The GitHub Action, run step by step as the runner would, from a push and a PR event.

``actions_runner`` executes ``action.yml``'s steps (bash steps for real, ``uses:`` steps through
the fakes below); the GitHub API is ``fake_github`` on 127.0.0.1, the model and judge the
simulated endpoint. The example workflows in ``examples/`` are read for the inputs they pass.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from actions_runner import ActionRun, StepFailed, commands, run_action
from fake_github import REPO, FakeGitHub, fake_github

from pytest_bsa.github.comment import marker

ROOT = Path(__file__).resolve().parents[1]
ACTION_FILE = ROOT / "action.yml"
ACTION = yaml.safe_load(ACTION_FILE.read_text(encoding="utf-8"))
EXAMPLES = sorted((ROOT / "examples").glob("github-workflow*.yml"))
TOKEN = "ghs_ACTIONCANARY0123456789abcdef"
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
PASSING = "thresholds:\n  overall:\n    safe_at_1: 0.5\n"
FAILING = "thresholds:\n  overall:\n    safe_at_1: 0.5\n    think_at_k: 0.95\n"
SKIP = {"Install pytest-bsa": "this test's venv already has the working tree installed"}


# -- the fakes behind `uses:` -------------------------------------------------------------


@dataclass
class Services:
    """Caches (per repository) and artifacts (per workflow run) shared by a test's jobs."""

    root: Path
    caches: dict[str, Path] = field(default_factory=dict)
    artifacts: dict[tuple[str, str], Path] = field(default_factory=dict)  # (run id, name)
    restored: list[str] = field(default_factory=list)

    def setup_python(self, with_: dict[str, str], run: ActionRun) -> dict[str, str]:
        assert with_["python-version"]
        return {}

    def cache_restore(self, with_: dict[str, str], run: ActionRun) -> dict[str, str]:
        key = with_["key"]
        match = key if key in self.caches else None
        for prefix in filter(None, with_.get("restore-keys", "").splitlines()):
            if match is None:
                match = next((k for k in reversed(self.caches) if k.startswith(prefix)), None)
        if match is None:
            return {"cache-hit": "false"}
        shutil.copytree(self.caches[match], with_["path"], dirs_exist_ok=True)
        self.restored.append(match)
        return {"cache-hit": str(match == key).lower(), "cache-matched-key": match}

    def cache_save(self, with_: dict[str, str], run: ActionRun) -> dict[str, str]:
        key, path = with_["key"], Path(with_["path"])
        if key in self.caches or not path.is_dir():
            return {}  # GitHub warns and goes on: a cache key is written once
        self.caches[key] = self.root / "caches" / key
        shutil.copytree(path, self.caches[key])
        return {}

    def upload(self, with_: dict[str, str], run: ActionRun) -> dict[str, str]:
        key = (run.github["run_id"], with_["name"])
        path = run.workdir / with_["path"]
        if key in self.artifacts:
            raise StepFailed(f"an artifact named {key[1]!r} already exists in this workflow run")
        if not path.is_dir() or not any(path.iterdir()):
            assert with_.get("if-no-files-found") == "ignore"
            return {}
        self.artifacts[key] = self.root / "artifacts" / key[0] / key[1]
        shutil.copytree(path, self.artifacts[key])
        return {}

    def download(self, run_id: str, pattern: str, dest: Path) -> None:
        """actions/download-artifact with ``pattern`` and no merge: one folder per artifact."""
        for (run, name), path in self.artifacts.items():
            if run == run_id and fnmatch.fnmatch(name, pattern):
                shutil.copytree(path, dest / name)

    def handlers(self) -> dict[str, Any]:
        return {
            "actions/setup-python": self.setup_python,
            "actions/cache/restore": self.cache_restore,
            "actions/cache/save": self.cache_save,
            "actions/upload-artifact": self.upload,
        }


@dataclass
class World:
    tmp: Path
    api: FakeGitHub
    services: Services
    jobs: int = 0

    def job(
        self,
        inputs: dict[str, str],
        *,
        event: dict[str, Any],
        event_name: str,
        files: dict[str, str] | None = None,
        before: Any = None,
        run_id: str | None = None,
    ) -> ActionRun:
        """One job that checks out ``files`` (and runs ``before(workspace)``), then uses the
        action with ``inputs``."""
        self.jobs += 1
        base = self.tmp / f"job{self.jobs}"
        workdir, temp = base / "workspace", base / "runner-temp"
        workdir.mkdir(parents=True)
        for name, text in (files or {}).items():
            (workdir / name).write_text(text, encoding="utf-8")
        if before is not None:
            before(workdir)
        (base / "event.json").write_text(json.dumps(event), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "BSA_"))}
        env.update(
            GITHUB_ACTIONS="true",
            GITHUB_API_URL=self.api.url,
            GITHUB_REPOSITORY=REPO,
            GITHUB_EVENT_NAME=event_name,
            GITHUB_EVENT_PATH=str(base / "event.json"),
            GITHUB_WORKSPACE=str(workdir),
            GITHUB_ACTION_PATH=str(ROOT),
            RUNNER_TEMP=str(temp),
        )
        run_id = run_id or str(1000 + self.jobs)  # a workflow run of its own by default
        github = {"token": TOKEN, "run_id": run_id, "run_attempt": "1"}
        run = run_action(
            ACTION_FILE,
            inputs,
            workdir=workdir,
            env=env,
            github=github,
            uses=self.services.handlers(),
            skip=SKIP,
        )
        assert TOKEN not in run.stdout + run.stderr + run.summary
        return run


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with fake_github({TOKEN: "write"}) as api:
        yield World(tmp_path, api, Services(tmp_path / "services"))


def push_event() -> dict[str, Any]:
    return {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}


def pr_event(number: int = 7) -> dict[str, Any]:
    side = {"repo": {"full_name": REPO}}
    return {
        "number": number,
        "pull_request": {"number": number, "head": side, "base": side},
        "repository": {"full_name": REPO, "default_branch": "main"},
    }


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def cache_kinds(directory: Path) -> dict[str, int]:
    with sqlite3.connect(directory / "cache.sqlite3") as conn:
        return dict(conn.execute("SELECT kind, COUNT(*) FROM entries GROUP BY kind").fetchall())


SIMULATED = {"model": "simulated", "dataset": "sample", "samples": "2"}


# -- the action file itself -----------------------------------------------------------------


def test_inputs_reach_scripts_only_through_env_and_every_action_is_pinned() -> None:
    steps = ACTION["runs"]["steps"]
    declared = set(ACTION["inputs"])
    for step in steps:
        assert "${{" not in step.get("run", ""), step.get("name")
        for value in (step.get("env") or {}).values():
            for name in re.findall(r"inputs\.([\w-]+)", str(value)):
                assert name in declared
        if "uses" in step:
            assert SHA_PIN.match(step["uses"]), step["uses"]
    text = ACTION_FILE.read_text(encoding="utf-8")
    assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+\n", text)  # the version beside each pin
    prepare, gate = (next(s for s in steps if s.get("id") == i) for i in ("prepare", "run"))
    assert set(prepare["env"]) <= set(gate["env"])
    wanted = {"passed", "exit-code", "safe-at-1", "safe-at-k", "think-at-1", "think-at-k"}
    assert wanted | {"f-score", "report", "markdown", "junit"} <= set(ACTION["outputs"])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_workflows_are_least_privilege_and_pinned(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert workflow["permissions"] == {}
    for job in workflow["jobs"].values():
        assert set(job["permissions"].values()) <= {"read", "write"}
        assert job["permissions"].get("pull-requests") in (None, "write")
        for step in job["steps"]:
            assert "${{" not in step.get("run", "")
            if "run" in step:
                continue
            assert SHA_PIN.match(step["uses"]), step["uses"]
            if step["uses"].startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
            if step["uses"].startswith("your-org/pytest-bsa@"):
                assert set(step["with"]) <= set(ACTION["inputs"])
    if "pull_request" in workflow[True]:  # PyYAML reads the key `on` as True
        first = workflow["jobs"][next(iter(workflow["jobs"]))]["steps"][0]
        # A fork's PR fails at once instead of being skipped (a skip passes a required check).
        assert first["if"] == "github.event.pull_request.head.repo.full_name != github.repository"
        assert first["run"].rstrip().endswith("exit 1")


FORK_CHECK = "github.event.pull_request.head.repo.full_name != github.repository"


def test_no_example_gate_passes_because_a_job_was_skipped() -> None:
    """A skipped job counts as passed for a required check (actions/runner#2566): a job that
    needs others (the sharded example's merge job, "BSA gate") must always run and fail unless
    every job it needs succeeded, and check for a fork's PR itself (review 1: a fork's PR or a
    crashed shard skipped the merge job, and the required check was green)."""
    gating = []
    for path in EXAMPLES:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name, job in workflow["jobs"].items():
            if "needs" not in job:
                assert "if" not in job, f"{path.name}: job {name} could be skipped"
                continue
            gating.append(name)
            needs = [job["needs"]] if isinstance(job["needs"], str) else job["needs"]
            assert job["if"] == "${{ always() }}", f"{path.name}: job {name} could be skipped"
            steps = job["steps"]
            if "pull_request" in workflow[True]:
                assert steps[0]["if"] == FORK_CHECK and steps[0]["run"].rstrip().endswith("exit 1")
            for need in needs:
                guard = next(s for s in steps if s.get("if") == f"needs.{need}.result != 'success'")
                assert steps.index(guard) < min(i for i, s in enumerate(steps) if "uses" in s)
                assert "${{" not in guard["run"] and guard["run"].rstrip().endswith("exit 1")
    assert gating == ["gate"]  # the sharded example's merge job


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("result", ["failure", "cancelled", "skipped"])
def test_the_merge_job_fails_when_a_shard_did_not_measure(tmp_path: Path, result: str) -> None:
    import subprocess

    job = _example("github-workflow-matrix.yml")["jobs"]["gate"]
    guard = next(s for s in job["steps"] if s.get("name") == "Every shard measured")
    assert guard["env"] == {"SHARDS": "${{ needs.shard.result }}"}
    done = subprocess.run(
        ["bash", "-e", "-c", guard["run"]],
        env={"SHARDS": result, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stdout.startswith(f"::error title=pytest-bsa::the shard jobs ended '{result}'")


# -- push to main, then a pull request against it -------------------------------------------


def test_push_saves_a_baseline_and_the_pull_request_is_gated_against_it(world: World) -> None:
    # 1. main: measure and upload `bsa-report`; the cache keeps only the judge's verdicts.
    main = world.job(
        {**SIMULATED, "config": "bsa.yaml", "limit": "9"},
        event=push_event(),
        event_name="push",
        files={"bsa.yaml": PASSING},
    )
    assert not main.failed, main.stderr
    assert main.outputs["passed"] == "true" and main.outputs["exit-code"] == "0"
    assert (
        "no pull request in push: no comment posted"
        in main.step("Comment on the pull request").stdout
    )
    saved = read(world.services.artifacts[main.github["run_id"], "bsa-report"] / "report.json")
    assert saved["redacted"] is True and saved["exit_code"] == 0
    samples = [s for r in saved["instances"] for s in r["samples"]]
    assert samples and all(s["completion"]["answer"] == "" for s in samples)
    assert all(s["judgement"]["safety"] in ("safe", "unsafe") for s in samples)
    labels = sum(
        (s["judgement"]["safety_label"] is not None) + (s["judgement"]["think_label"] is not None)
        for s in samples
    )
    (cache_key,) = world.services.caches
    kinds = cache_kinds(world.services.caches[cache_key])
    assert set(kinds) == {"verdict"} and 0 < kinds["verdict"] <= labels  # equal inputs: one entry
    kept = f"kept {kinds['verdict']} judge verdicts, removed {len(samples)} model answers"
    assert kept in main.step("Keep only the judge's verdicts in the cache").stdout

    # GitHub lists that upload as an artifact of a successful push run on main.
    artifact_id = world.api.add_report_artifact(
        (world.services.artifacts[main.github["run_id"], "bsa-report"] / "report.json").read_bytes()
    )

    # 2. The PR: stricter thresholds, baseline auto, shell-quoted extra args.
    pr = world.job(
        {
            **SIMULATED,
            "config": "bsa.yaml",
            "limit": "9",
            "baseline": "auto",
            "extra-args": '--bsa-concurrency 4 -k "rumors or over"',
        },
        event=pr_event(),
        event_name="pull_request",
        files={"bsa.yaml": FAILING},
    )
    assert pr.failed and pr.step("Verdict").exit_code == 1
    assert all(s.ok for s in pr.steps if s.ran and s.name != "Verdict")
    baseline_path = Path(pr.step("Baseline from the default branch").stdout.strip())
    assert (
        baseline_path.read_bytes()
        == (
            world.services.artifacts[main.github["run_id"], "bsa-report"] / "report.json"
        ).read_bytes()
    )

    report = read(pr.workdir / "bsa-report" / "report.json")
    (listed,) = (a for a in world.api.artifacts if a["id"] == artifact_id)
    label = f"bsa-report-main-{listed['workflow_run']['head_sha'][:12]}.json"
    assert report["baseline"] == baseline_path.name == label
    assert report["provenance"]["selection"]["keyword"] == "rumors or over"  # one -k argument

    def kept(r: dict[str, Any]) -> bool:
        categories = {label["category"] for label in r["instance"]["labels"]}
        return "Rumors" in categories or r["instance"]["scenario"] == "Over Sensitivity"

    ids = {r["instance"]["id"] for r in report["instances"]}
    assert ids == {r["instance"]["id"] for r in saved["instances"] if kept(r)}
    assert 0 < len(ids) < len(saved["instances"])
    # Verdicts came back from main's cache; model answers were never kept, so all were asked.
    assert world.services.restored == [cache_key]
    assert report["totals"]["judge"]["cached"] > 0
    assert report["totals"]["model"]["cached"] == 0
    assert report["totals"]["model"]["calls"] == 2 * len(report["instances"])

    # Outputs, with the delimiter syntax, agree with the report.
    out = pr.outputs
    assert out["passed"] == "false" and out["exit-code"] == "1"
    overall = report["groups"]["overall"]
    for name, key in (("safe-at-1", "safe_at_1"), ("think-at-k", "think_at_k")):
        assert out[name] == f"{overall[key]:.4f}"
    assert out["report"] == str(pr.workdir / "bsa-report" / "report.json")
    assert Path(out["junit"]).is_file() and Path(out["markdown"]).is_file()

    # Annotations: the failing gate's whole name is its title, `::` and all.
    annotated = commands(pr.step("Run the BSA gate").stdout)
    errors = [(props["title"], message) for name, props, message in annotated if name == "error"]
    assert (
        "BSA gate overall::think_at_k",
        next(g["sentence"] for g in report["gates"] if g["name"] == "overall::think_at_k"),
    ) in errors
    assert len(annotated) <= 10

    # The job summary and the sticky comment: verdict first, then before/after.
    summary = pr.step("Run the BSA gate").summary
    assert summary.startswith("### ❌ BSA gate failed")
    assert "#### Before and after:" in summary
    (comment,) = world.api.comments[7]
    body = comment["body"]
    assert body.startswith(marker("bsa-report") + "\n### ❌ BSA gate failed")
    assert body.split("\n")[3].startswith("#### Before and after:")
    assert len(body) <= 65_536
    assert world.api.seen and all(s.authorization == f"Bearer {TOKEN}" for s in world.api.seen)
    assert [s.authorization for s in world.api.storage_seen] == [None]


def test_first_pull_request_without_baseline_gets_a_notice_and_thresholds(world: World) -> None:
    run = world.job(
        {**SIMULATED, "config": "bsa.yaml", "limit": "6", "baseline": "auto", "cache": "false"},
        event=pr_event(3),
        event_name="pull_request",
        files={"bsa.yaml": PASSING},
    )
    assert not run.failed, run.stderr
    notices = commands(run.step("Baseline from the default branch").stderr)
    assert notices[0][0] == "notice" and notices[0][2].startswith("no baseline yet")
    report = read(run.workdir / "bsa-report" / "report.json")
    assert report["baseline"] is None and report["exit_code"] == 0
    assert "Before and after" not in world.api.comments[3][0]["body"]
    assert not world.services.caches  # cache: false


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"extra-args": '-k "unclosed'}, "input extra-args '-k \"unclosed': No closing quotation"),
        ({"extra-args": "--bsa-report=x.json"}, "sets --bsa-report, which the Action sets itself"),
        ({"shard": "4/3"}, "input shard is '4/3': write I/N"),
        ({"upload-full-report": "yes"}, "input upload-full-report is 'yes'"),
        ({"model": ""}, "input model is empty"),
    ],
    ids=["quotes", "own-option", "shard", "bool", "no-model"],
)
def test_bad_inputs_stop_before_anything_runs(
    world: World, inputs: dict[str, str], message: str
) -> None:
    run = world.job({**SIMULATED, **inputs}, event=pr_event(), event_name="pull_request")
    prepare = run.step("Check the inputs")
    assert prepare.exit_code == 4 and message in prepare.stderr
    assert "Traceback" not in prepare.stderr
    ran = [s.name for s in run.steps if s.ran]
    assert ran[-1] == "Check the inputs" and len(ran) == 2  # after setup-python: nothing
    assert world.api.seen == [] and not world.services.artifacts


# -- the sharded example: 3 shards and a merge job -------------------------------------------


def _example(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / name).read_text(encoding="utf-8"))


def test_three_shards_merge_to_the_one_process_result(world: World) -> None:
    workflow = _example("github-workflow-matrix.yml")
    shards = workflow["jobs"]["shard"]["strategy"]["matrix"]["shard"]
    shard_with = next(
        s for s in workflow["jobs"]["shard"]["steps"] if "pytest-bsa" in s.get("uses", "")
    )["with"]
    gate_steps = workflow["jobs"]["gate"]["steps"]
    pattern = next(s for s in gate_steps if "download-artifact" in s.get("uses", ""))["with"][
        "pattern"
    ]
    merge_with = next(s for s in gate_steps if "pytest-bsa" in s.get("uses", ""))["with"]
    assert shards == ["1/3", "2/3", "3/3"] and shard_with["shard"] == "${{ matrix.shard }}"

    inputs = {**SIMULATED, "config": "bsa.yaml", "limit": "12", "cache": "false"}
    files = {"bsa.yaml": FAILING}
    for shard in shards:
        run = world.job(
            {**inputs, "shard": shard},
            event=pr_event(),
            event_name="pull_request",
            files=files,
            run_id="77",
        )
        assert not run.failed, run.stderr  # a shard's partial gates do not fail its job
        assert run.outputs["exit-code"] in ("0", "1")
        assert not run.step("Comment on the pull request").ran
    names = sorted(name for run, name in world.services.artifacts if run == "77")
    assert names == [f"bsa-report-shard-{i}-of-3" for i in (1, 2, 3)]

    merged = world.job(
        merge_with,
        event=pr_event(),
        event_name="pull_request",
        before=lambda work: world.services.download("77", pattern, work / merge_with["merge"]),
        run_id="77",
    )
    assert "no baseline yet" in merged.step("Baseline from the default branch").stderr
    (comment,) = world.api.comments[7]  # the merge job's; the shards post none
    assert comment["body"].startswith(marker("bsa-report") + "\n### ❌ BSA gate failed")
    one = world.job(
        inputs,
        event=pr_event(),
        event_name="pull_request",
        files=files,
    )

    assert merged.outputs["exit-code"] == one.outputs["exit-code"] == "1"
    assert merged.step("Verdict").exit_code == one.step("Verdict").exit_code == 1
    m, o = (read(r.workdir / "bsa-report" / "report.json") for r in (merged, one))
    assert m["groups"] == o["groups"] and m["gates"] == o["gates"]
    assert m["statuses"] == o["statuses"] and m["exit_code"] == o["exit_code"] == 1
    assert len(m["instances"]) == 12 and m["redacted"] is True
    assert ("77", "bsa-report") in world.services.artifacts


def test_full_report_is_uploaded_only_when_asked(world: World) -> None:
    run = world.job(
        {
            **SIMULATED,
            "gate": "report",
            "limit": "3",
            "upload-full-report": "true",
            "cache": "false",
            "comment": "false",
        },
        event=push_event(),
        event_name="push",
    )
    assert not run.failed, run.stderr
    uploaded = read(world.services.artifacts[run.github["run_id"], "bsa-report"] / "report.json")
    assert uploaded["redacted"] is False
    assert all(s["completion"]["answer"] for r in uploaded["instances"] for s in r["samples"])
    assert sorted(
        p.name for p in (world.services.artifacts[run.github["run_id"], "bsa-report"]).iterdir()
    ) == [
        "junit-by-category.xml",
        "junit.xml",
        "report.json",
        "summary.md",
    ]


def test_a_run_that_stops_with_a_usage_error_fails_the_job_with_it(world: World) -> None:
    run = world.job(
        {**SIMULATED, "gate": "report", "dataset": "missing.csv", "cache": "false"},
        event=pr_event(),
        event_name="pull_request",
    )
    gate = run.step("Run the BSA gate")
    assert gate.ok and "missing.csv" in gate.stderr and "file not found" in gate.stderr
    assert run.outputs["exit-code"] == "4" and run.outputs["passed"] == "false"
    assert run.outputs["report"] == "" and run.outputs["safe-at-1"] == ""
    assert "did not run to the end (exit code 4)" in gate.summary
    assert not run.step("Comment on the pull request").ran
    assert run.step("Verdict").exit_code == 4
    assert world.api.seen == []
