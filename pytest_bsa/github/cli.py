"""``python -m pytest_bsa github ...``: the GitHub side of a run, one subcommand per job.

comment REPORT      create or update the sticky pull-request comment
baseline            download the newest report of a successful run on the default branch
publish REPORT      job summary, annotations and step outputs of a saved run
prepare | run       the Action's own steps (inputs from BSA_IN_* variables)
prune-cache [DIR]   keep only the judge verdicts in a cache directory before it is saved

Exit codes: 0 done (or a notice that there was nothing to do), 1 the GitHub API failed, 4 a
usage problem. The token (``GITHUB_TOKEN``) is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO


def add_github_parser(sub: Any) -> None:
    """The ``github`` subcommand group (argparse only: importing this module is cheap)."""
    github = sub.add_parser(
        "github", help="GitHub Actions: sticky PR comment, baseline from the default branch"
    )
    group = github.add_subparsers(dest="github_command", required=True, metavar="COMMAND")

    comment = group.add_parser("comment", help="create or update the sticky PR comment")
    comment.add_argument("report", help="a JSON report written with --bsa-report")
    comment.add_argument("--baseline", help="the baseline report, for the before/after table")
    comment.add_argument(
        "--id",
        default="bsa-report",
        help="tells this gate's comment from another gate's on the same PR (default bsa-report)",
    )
    comment.add_argument(
        "--full", action="store_true", help="include model output excerpts (default: redacted)"
    )

    baseline = group.add_parser(
        "baseline", help="download the newest report of a successful run on the default branch"
    )
    baseline.add_argument(
        "--branch", help="branch whose runs count (default: the repository's default branch)"
    )
    baseline.add_argument("--name", default="bsa-report", help="artifact name (default bsa-report)")
    baseline.add_argument(
        "--file", default="report.json", help="report file in the artifact (default report.json)"
    )
    baseline.add_argument(
        "--output",
        help="where to write the report (default $RUNNER_TEMP/pytest-bsa-baseline/"
        "NAME-BRANCH-COMMIT.json: the file name labels the baseline in reports)",
    )
    baseline.add_argument(
        "--github-output",
        metavar="NAME",
        help="also set step output NAME to the path (empty when there is no baseline yet)",
    )

    publish = group.add_parser(
        "publish", help="job summary, annotations and step outputs of a saved report"
    )
    publish.add_argument("report", help="a JSON report written with --bsa-report")
    publish.add_argument("--baseline", help="the baseline report, for the before/after table")
    publish.add_argument(
        "--exit-code", type=int, help="the run's exit code (default: the report's)"
    )
    publish.add_argument("--markdown", help="also write the Markdown summary here")
    publish.add_argument("--junit", help="the JUnit file to name in the `junit` output")

    group.add_parser("prepare", help="the Action's first step: check inputs, name the artifact")
    group.add_parser("run", help="the Action's gate step: run or merge, redact, publish")
    prune = group.add_parser(
        "prune-cache", help="delete model answers from a cache, keeping the judge verdicts"
    )
    prune.add_argument("dir", nargs="?", help="cache directory (default $BSA_CACHE_DIR)")


def _in_actions(env: Mapping[str, str]) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


def _say(level: str, message: str, stream: TextIO, env: Mapping[str, str]) -> None:
    """A notice or warning: an annotation in a workflow, a plain line elsewhere."""
    from pytest_bsa.github.commands import annotation

    if _in_actions(env):
        print(annotation(level, message, title="pytest-bsa"), file=stream)
    else:
        print(f"pytest-bsa: {level}: {message}", file=stream)


class _Failure(Exception):
    """The GitHub API failed (exit 1); the message is safe to print."""


def _runner(env: Mapping[str, str]) -> Any:
    from pytest_bsa.cli import CliError
    from pytest_bsa.github.context import ContextError, Runner

    try:
        return Runner.from_environ(env)
    except ContextError as exc:
        raise CliError(str(exc)) from None


def _report(path: str | None) -> Any:
    from pytest_bsa.cli import load

    return load(path) if path else None


def comment(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    from pytest_bsa.cli import CliError
    from pytest_bsa.github.api import GitHubClient, GitHubError
    from pytest_bsa.github.comment import comment_body, marker, upsert_comment

    try:
        mark = marker(args.id)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    report, baseline = _report(args.report), _report(args.baseline)
    runner = _runner(env)
    pr = runner.pull_request()
    if pr is None:
        event = runner.event_name or "this event"
        _say("notice", f"no pull request in {event}: no comment posted", sys.stdout, env)
        return 0
    if runner.token is None:
        message = "no GITHUB_TOKEN: no comment posted (the job summary has the result)"
        _say("notice", message, sys.stdout, env)
        return 0
    if pr.from_fork and runner.event_name == "pull_request":
        _say(
            "notice",
            f"pull request #{pr.number} comes from a fork, whose workflow token cannot comment: "
            "the job summary has the result",
            sys.stdout,
            env,
        )
        return 0
    body = comment_body(report, baseline=baseline, full=args.full, comment_id=args.id)
    try:
        with GitHubClient(runner.api_url, runner.token) as client:
            posted = upsert_comment(client, runner.repository, pr.number, body, mark)
    except GitHubError as exc:
        if exc.status == 403:
            _say(
                "notice",
                f"the token may not comment on #{pr.number} ({exc}); give the job "
                "`permissions: pull-requests: write`, or read the job summary",
                sys.stdout,
                env,
            )
            return 0
        raise _Failure(f"commenting on #{pr.number} failed: {exc}") from None
    print(f"pytest-bsa: {posted.action} the comment on #{pr.number} {posted.url}".rstrip())
    return 0


def baseline(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    from pytest_bsa.cli import CliError
    from pytest_bsa.github.api import GitHubClient, GitHubError
    from pytest_bsa.github.baseline import download_baseline, find_baseline
    from pytest_bsa.github.commands import write_outputs

    runner = _runner(env)
    if runner.token is None:
        raise CliError(
            "no GITHUB_TOKEN: pass the workflow token (the github-token input) to read the "
            "default branch's artifacts"
        )
    branch = args.branch or runner.default_branch or "main"
    root = Path(env.get("RUNNER_TEMP") or ".") / "pytest-bsa-baseline"
    try:
        with GitHubClient(runner.api_url, runner.token) as client:
            found = find_baseline(client, runner.repository, branch, args.name)
            path = None
            if found is not None:
                # The file name is the baseline's label in reports: say where it came from.
                label = f"{args.name}-{branch}-{found.head_sha[:12]}.json".replace("/", "-")
                dest = Path(args.output) if args.output else root / label
                path = download_baseline(client, runner.repository, found, dest, args.file)
    except GitHubError as exc:
        hint = ""
        if exc.status in (401, 403, 404):
            hint = "; give the job `permissions: actions: read` and pass the workflow token"
        raise _Failure(f"fetching the baseline failed: {exc}{hint}") from None
    output = env.get("GITHUB_OUTPUT")
    if args.github_output and output:
        write_outputs(Path(output), {args.github_output: str(path) if path else ""})
    if path is None or found is None:
        _say(
            "notice",
            f"no baseline yet: no {args.name!r} artifact from a successful run on {branch!r}; "
            "this run gates on thresholds only (a successful run on that branch saves one)",
            sys.stderr,
            env,
        )
        return 0
    print(
        f"pytest-bsa: baseline from run {found.run_id} (commit {found.head_sha[:12]}) on "
        f"{branch!r}",
        file=sys.stderr,
    )
    print(path)
    return 0


def publish(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    from pytest_bsa.github.publish import publish as publish_report

    report, baseline = _report(args.report), _report(args.baseline)
    summary, output = env.get("GITHUB_STEP_SUMMARY"), env.get("GITHUB_OUTPUT")
    done = publish_report(
        report,
        exit_code=report.exit_code if args.exit_code is None else args.exit_code,
        report_path=Path(args.report),
        markdown_path=Path(args.markdown) if args.markdown else None,
        junit_path=Path(args.junit) if args.junit else None,
        baseline=baseline,
        summary_file=Path(summary) if summary else None,
        output_file=Path(output) if output else None,
    )
    for line in done.annotations:
        print(line)
    return 0


def prepare(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    from pytest_bsa.github.action import prepare as prepare_step
    from pytest_bsa.github.commands import write_outputs

    outputs = prepare_step(env)
    output = env.get("GITHUB_OUTPUT")
    if output:
        write_outputs(Path(output), outputs)
    for name, value in outputs.items():
        print(f"pytest-bsa: {name} {value}")
    return 0


def run(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    from pytest_bsa.github.action import run_gate

    code = run_gate(env)
    print(f"pytest-bsa: gate exit code {code}; the Action's last step ends the job with it")
    return 0


def prune_cache(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    from pytest_bsa.cli import CliError
    from pytest_bsa.engine.cache import CacheError, drop_completions

    directory = args.dir or env.get("BSA_CACHE_DIR")
    if not directory:
        raise CliError("no cache directory: pass DIR or set BSA_CACHE_DIR")
    try:
        kept, removed = drop_completions(Path(directory))
    except CacheError as exc:
        raise CliError(str(exc)) from None
    print(f"pytest-bsa: kept {kept} judge verdicts, removed {removed} model answers")
    return 0


HANDLERS = {
    "comment": comment,
    "baseline": baseline,
    "publish": publish,
    "prepare": prepare,
    "run": run,
    "prune-cache": prune_cache,
}


def main(args: argparse.Namespace) -> int:
    """Run one ``github`` subcommand; API failures print one line and exit 1."""
    from pytest_bsa.cli import CliError
    from pytest_bsa.github.action import InputError

    try:
        return HANDLERS[args.github_command](args)
    except InputError as exc:
        raise CliError(str(exc)) from None
    except _Failure as exc:
        token = os.environ.get("GITHUB_TOKEN")
        message = str(exc).replace(token, "***") if token else str(exc)
        print(f"python -m pytest_bsa github {args.github_command}: {message}", file=sys.stderr)
        if _in_actions(os.environ):
            from pytest_bsa.github.commands import annotation

            print(annotation("error", message, title="pytest-bsa"))
        return 1
