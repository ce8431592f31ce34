"""The subcommands of ``python -m pytest_bsa`` (see :mod:`pytest_bsa.__main__`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_bsa.baseline import load_baseline
from pytest_bsa.config import ConfigError, GatePolicy, load_file_config
from pytest_bsa.evaluation import BaselineRun, RunEvaluation, evaluate_run
from pytest_bsa.panel_stats import panel_summary
from pytest_bsa.report import (
    BaselineSnapshot,
    Report,
    ReportError,
    evaluation_fields,
    load_report,
    write_report,
)
from pytest_bsa.reporting.outputs import OutputError, Outputs, check_targets, write_outputs
from pytest_bsa.tallies import outcome_counts, served_models

_MARK = {"passed": "PASS", "failed": "FAIL", "not_measurable": "N/M "}


class CliError(Exception):
    """A usage problem; printed as one line, exit code 4 (as pytest's usage errors)."""


def run_handled(command: str, run: Callable[[], int]) -> int:
    """Run one subcommand; a usage problem prints one line (``python -m pytest_bsa COMMAND:
    ...``) and returns 4."""
    try:
        return run()
    except CliError as exc:
        print(f"python -m pytest_bsa {command}: {exc}", file=sys.stderr)
        return 4


def load(path: str) -> Report:
    """The saved report at ``path``; a report that cannot be used is a usage problem."""
    try:
        return load_report(Path(path))
    except ReportError as exc:
        raise CliError(str(exc)) from None


def _policy(report: Report, args: argparse.Namespace) -> GatePolicy:
    policy = report.policy
    config = getattr(args, "config", None)
    if config:
        try:
            fc = load_file_config(Path(config))
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        update: dict[str, Any] = {
            "thresholds": fc.thresholds,
            "criteria": fc.criteria,
            "baseline": fc.baseline,
        }
        keys = ("gate", "max_errors", "gate_on", "hidden_reasoning", "max_unjudged")
        for key in (*keys, "no_answer", "no_reasoning"):
            if getattr(fc, key) is not None:
                update[key] = getattr(fc, key)
        policy = policy.model_copy(update=update)
    if getattr(args, "gate_on", None):
        policy = policy.model_copy(update={"gate_on": args.gate_on})
    return policy


def _targets(targets: dict[str, Path | None], inputs: list[str]) -> None:
    """Refuse output files that cannot be written before doing any work."""
    try:
        check_targets(
            {k: v for k, v in targets.items() if v is not None}, [Path(p) for p in inputs]
        )
    except OutputError as exc:
        raise CliError(str(exc)) from None


def _baseline(
    report: Report, path: str | None, allow: bool, allow_identical: bool = False
) -> BaselineRun | None:
    """The ``--baseline`` file; without one, the baseline the report's run was compared with."""
    if not path:
        saved = report.baseline_for_regate()
        if saved is not None and allow_identical:
            saved = dataclasses.replace(saved, allow_identical=True)
        return saved
    prov = report.provenance
    try:
        run, _ = load_baseline(
            Path(path),
            dataset_sha256=prov.dataset.sha256,
            judge_model=prov.judge.model,
            rubric_version=prov.rubric_version,
            samples=report.k,
            verdict_hash=prov.verdict_hash,
            judge_served=prov.judge.served,
            allow_mismatch=allow,
            override="--baseline-allow-mismatch",
        )
    except ReportError as exc:
        raise CliError(str(exc)) from None
    return dataclasses.replace(run, allow_identical=allow_identical)


def _print_verdict(evaluation: RunEvaluation) -> None:
    for gate in evaluation.gates:
        mark = "ADV " if gate.advisory and gate.status == "failed" else _MARK[gate.status]
        print(f"{mark} {gate.name}: {gate.sentence}")
    failed = len(evaluation.failed_gates)
    counts = {s: sum(g.status == s for g in evaluation.gates) for s in _MARK}
    advisory = len(evaluation.advisory_misses)
    tally = (
        f"{failed} failed, {counts['passed']} passed, {counts['not_measurable']} not measurable"
        + (f", {advisory} advisory misses" if advisory else "")
    )
    head = "FAILED" if failed else "PASSED"
    if evaluation.report_only:
        head = f"REPORT ONLY ({'integrity gates failed' if failed else 'nothing enforced failed'})"
    print(f"{head}: {tally}")


def _regated(report: Report, policy: GatePolicy, baseline: BaselineRun | None) -> Report:
    evaluation = evaluate_run(
        report.instances,
        policy,
        baseline=baseline,
        missing=report.missing,
        stopped=report.stopped,
    )
    _print_verdict(evaluation)
    return report.model_copy(
        update={
            "policy": policy,
            "baseline": baseline.label if baseline else None,
            "baseline_run": BaselineSnapshot.of(baseline, policy) if baseline else None,
            **evaluation_fields(evaluation),
        }
    )


def gate(args: argparse.Namespace) -> int:
    _targets({"--output": _path(args.output)}, [args.report])
    report = load(args.report)
    policy = _policy(report, args)
    baseline = _baseline(
        report, args.baseline, args.baseline_allow_mismatch, args.baseline_allow_identical
    )
    regated = _regated(report, policy, baseline)
    if args.output:
        write_report(regated, Path(args.output))
    return regated.exit_code


def render(args: argparse.Namespace) -> int:
    outputs = Outputs(
        junit=_path(args.junit),
        markdown=_path(args.markdown),
        markdown_full=args.markdown_full,
        html=_path(args.html),
        upstream=_path(args.upstream),
    )
    return render_report(args.report, outputs)


def render_report(path: str, outputs: Outputs) -> int:
    """Write ``outputs`` from the saved report at ``path`` (``python -m pytest_bsa report``)."""
    if not outputs.any:
        raise CliError("nothing to render: pass --markdown, --junit, --html or --upstream")
    options = {name: f"--{name}" for name in ("junit", "markdown", "html", "upstream")}
    _targets(dict(outputs.targets({**options, "report": "--report"})), [path])
    report = load(path)
    for line in write_outputs(report, outputs):
        print(line)
    return 0


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def merge(args: argparse.Namespace) -> int:
    return merge_reports(
        args.reports,
        args.output,
        baseline=args.baseline,
        allow_mismatch=args.baseline_allow_mismatch,
    )


def merge_reports(
    paths: Sequence[str], output: str, *, baseline: str | None = None, allow_mismatch: bool = False
) -> int:
    """Merge shard reports into one report at ``output`` and gate it
    (``python -m pytest_bsa merge``); returns the merged run's exit code."""
    _targets({"--output": _path(output)}, list(paths))
    reports = [(path, load(path)) for path in paths]
    first_path, first = reports[0]
    seen: dict[str, str] = {}
    for path, report in reports:
        _check_same_run(first_path, first, path, report)
        for result in report.instances:
            if result.instance.id in seen:
                raise CliError(
                    f"instance {result.instance.id} is in both {seen[result.instance.id]} and "
                    f"{path}: shards must be disjoint (same --bsa-shard N, different I)"
                )
            seen[result.instance.id] = path
    _check_all_shards(reports)
    instances = tuple(
        sorted((r for _, rep in reports for r in rep.instances), key=lambda r: r.instance.id)
    )
    selected = sum(rep.provenance.selection.instances for _, rep in reports)
    totals = _sum_totals([rep for _, rep in reports])
    prov = first.provenance
    selection = prov.selection.model_copy(update={"shard": None, "instances": selected})
    model_served, judge_served = served_models(instances)
    provenance = prov.model_copy(
        update={
            "selection": selection,
            "started_at": min(rep.provenance.started_at for _, rep in reports),
            "finished_at": max(rep.provenance.finished_at for _, rep in reports),
            "model": prov.model.model_copy(update={"served": model_served}),
            "judge": prov.judge.model_copy(update={"served": judge_served}),
        }
    )
    stopped = next((rep.stopped for _, rep in reports if rep.stopped), None)
    merged = Report(
        provenance=provenance,
        policy=first.policy,
        totals=totals,
        outcomes=outcome_counts(instances),
        instances=instances,
        complete=all(rep.complete for _, rep in reports) and len(instances) == selected,
        redacted=any(rep.redacted for _, rep in reports),
        stopped=stopped,
        baseline_run=first.baseline_run,
        judge_panel=panel_summary(instances),
        judge_check=first.judge_check,
    )
    compared = _baseline(merged, baseline, allow_mismatch)
    merged = _regated(merged, first.policy, compared)
    write_report(merged, Path(output))
    print(f"merged {len(reports)} reports, {len(instances)} instances -> {output}")
    return merged.exit_code


def _check_all_shards(reports: list[tuple[str, Report]]) -> None:
    """Every shard 1..N of one split, each once (unsharded reports merge as they are)."""
    shards = [(path, rep.provenance.selection.shard) for path, rep in reports]
    if all(shard is None for _, shard in shards):
        return
    if any(shard is None for _, shard in shards):
        raise CliError("cannot merge sharded and unsharded reports")
    totals = {shard.split("/")[1] for _, shard in shards if shard}
    if len(totals) != 1:
        raise CliError(f"the reports come from different splits ({', '.join(sorted(totals))})")
    total = int(totals.pop())
    seen: dict[int, str] = {}
    for path, shard in shards:
        index = int(str(shard).split("/")[0])
        if index in seen:
            raise CliError(f"{path} and {seen[index]} are both shard {index}/{total}")
        seen[index] = path
    missing = sorted(set(range(1, total + 1)) - set(seen))
    if missing:
        listed = ", ".join(f"{i}/{total}" for i in missing)
        raise CliError(f"shards missing: {listed}; merge every shard of the split")


def _check_same_run(first_path: str, first: Report, path: str, report: Report) -> None:
    a, b = first.provenance, report.provenance
    checks = {
        "dataset sha256": (a.dataset.sha256, b.dataset.sha256),
        "model": (a.model.model, b.model.model),
        "judge": (a.judge.model, b.judge.model),
        "rubric version": (a.rubric_version, b.rubric_version),
        "verdict hash": (a.verdict_hash, b.verdict_hash),
        "generation parameters": (a.generation_params, b.generation_params),
        "system prompt": (a.system_prompt_sha256, b.system_prompt_sha256),
        "gate policy": (first.policy, report.policy),
        "selection": (
            a.selection.model_copy(update={"shard": None, "instances": 0}),
            b.selection.model_copy(update={"shard": None, "instances": 0}),
        ),
    }
    for what, (x, y) in checks.items():
        if x != y:
            raise CliError(
                f"{path} and {first_path} differ in {what}: they are not shards of one run"
            )


def _sum_totals(reports: list[Report]) -> Any:
    first = reports[0].totals

    def add(role: str) -> Any:
        parts = [getattr(r.totals, role) for r in reports]
        costs = [p.cost_usd for p in parts]
        summed: dict[str, Any] = {
            field: sum(getattr(p, field) for p in parts)
            for field in (
                "calls",
                "cached",
                "failures",
                "prompt_tokens",
                "completion_tokens",
                "reasoning_tokens",
            )
        }
        retries = [p.retries for p in parts]
        summed["retries"] = None if None in retries else sum(r for r in retries if r is not None)
        summed["cost_usd"] = None if None in costs else sum(c for c in costs if c is not None)
        return getattr(first, role).model_copy(update=summed)

    return first.model_copy(
        update={
            "model": add("model"),
            "judge": add("judge"),
            "wall_seconds": max(r.totals.wall_seconds for r in reports),
        }
    )


def metrics(args: argparse.Namespace) -> int:
    from pytest_bsa.reporting.upstream import UpstreamError, metrics_command

    try:
        return metrics_command(args.csv, dataset=args.dataset, as_json=args.json, out=sys.stdout)
    except UpstreamError as exc:
        raise CliError(str(exc)) from None
