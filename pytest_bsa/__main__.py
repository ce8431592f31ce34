"""``python -m pytest_bsa``: re-gate, re-render, merge and score saved runs, calling no model.

python -m pytest_bsa gate report.json [--baseline base.json] [--config bsa.yaml]
    (without --baseline: the baseline the run was compared with, as the report keeps it)
python -m pytest_bsa report report.json [--markdown F] [--junit F] [--html F] [--upstream F]
python -m pytest_bsa merge shard-1.json shard-2.json ... -o report.json
python -m pytest_bsa metrics upstream.csv [--dataset dataset.csv] [--json]
python -m pytest_bsa github comment|baseline|publish|prepare|run|prune-cache ...
python -m pytest_bsa noise run1.json run2.json ... [--metric M] [--json]
python -m pytest_bsa judge-check --bsa-judge MODEL [--bsa-rubric R] [--labels FILE] [--json F]
python -m pytest_bsa rejudge run.json --bsa-judge MODEL [--bsa-rubric R] [-o rejudged.json]
python -m pytest_bsa compare a.json b.json [--json F] [--markdown F]
    (judge-check and rejudge call the judge only, never the model under test)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_bsa", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gate = sub.add_parser("gate", help="recompute the gate verdicts of a saved report")
    gate.add_argument("report", help="a JSON report written with --bsa-report")
    gate.add_argument("--baseline", help="a baseline report to compare against")
    gate.add_argument(
        "--baseline-allow-mismatch",
        action="store_true",
        help="compare even when dataset, judge, rubric or k differ",
    )
    gate.add_argument(
        "--baseline-allow-identical",
        action="store_true",
        help="accept answers identical to the baseline's on every shared instance",
    )
    gate.add_argument(
        "--config", help="YAML config whose thresholds and criteria replace the report's own"
    )
    gate.add_argument("--gate-on", choices=("point", "lower"), help="override the report's")
    gate.add_argument("--output", "-o", help="also write the re-gated JSON report here")

    report = sub.add_parser("report", help="render outputs from a saved report")
    report.add_argument("report", help="a JSON report written with --bsa-report")
    report.add_argument("--markdown", help="write the Markdown summary here")
    report.add_argument("--markdown-full", action="store_true", help="include model excerpts")
    report.add_argument("--junit", help="write JUnit XML (one suite per category) here")
    report.add_argument("--html", help="write the self-contained HTML report here")
    report.add_argument("--upstream", help="write the upstream-format evaluation CSV here")

    merge = sub.add_parser("merge", help="merge shard reports into one report and verdict")
    merge.add_argument("reports", nargs="+", help="shard reports (--bsa-report of each shard)")
    merge.add_argument("--output", "-o", required=True, help="where to write the merged report")
    merge.add_argument("--baseline", help="a baseline report to compare against")
    merge.add_argument(
        "--baseline-allow-mismatch",
        action="store_true",
        help="compare even when dataset, judge, rubric or k differ",
    )

    metrics = sub.add_parser("metrics", help="BSA metrics of an upstream-format evaluation CSV")
    metrics.add_argument(
        "csv",
        help="CSV with model_name,id,dataset_name,Safe_Ans_Check,"
        "Thk_Acc_Judge (one row per sample)",
    )
    metrics.add_argument("--dataset", help="the benchmark CSV, for per-category metrics")
    metrics.add_argument("--json", action="store_true", help="print JSON instead of a table")

    # GitHub Actions: the sticky PR comment, the default branch's baseline, the Action's steps.
    from pytest_bsa.github.cli import add_github_parser

    add_github_parser(sub)

    noise = sub.add_parser(
        "noise", help="run-to-run noise of A/A reruns of one model; suggests baseline.max_drop"
    )
    noise.add_argument("reports", nargs="+", help="reports of reruns of the same model (>= 2)")
    noise.add_argument(
        "--metric",
        action="append",
        choices=("safe_at_1", "safe_at_k", "think_at_1", "think_at_k"),
        help="a metric to measure (repeatable; default: the reports' baseline.metrics)",
    )
    noise.add_argument("--json", action="store_true", help="print JSON instead of a table")

    # Measure the judge, re-judge a saved run, compare two runs (pytest_bsa.judge_cli).
    from pytest_bsa.judge_cli import add_parsers

    add_parsers(sub)
    return parser


def _github(args: argparse.Namespace) -> int:
    from pytest_bsa.github.cli import main as github_main

    return github_main(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from pytest_bsa import cli, judge_cli, noise

    handler = {
        "gate": cli.gate,
        "report": cli.render,
        "merge": cli.merge,
        "metrics": cli.metrics,
        "github": _github,
        "noise": noise.command,
        "judge-check": judge_cli.judge_check,
        "rejudge": judge_cli.rejudge,
        "compare": judge_cli.compare,
    }[args.command]
    return cli.run_handled(args.command, lambda: handler(args))


if __name__ == "__main__":
    sys.exit(main())
