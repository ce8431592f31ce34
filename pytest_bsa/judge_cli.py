"""The judge commands of ``python -m pytest_bsa``: judge-check, rejudge and compare.

Their judge options have the pytest spellings (``--bsa-judge``, ``--bsa-rubric``,
``--bsa-judge-api-base`` ...) and short ones (``--judge``, ``--rubric`` ...); a config file
(``--bsa-config``, else ``[tool.bsa]`` in ./pyproject.toml) supplies what is not given, as in a
run. Bad input exits 4 with one sentence, before any call.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from pytest_bsa.cli import CliError

NUMBERS = {
    "judge_temperature": "judge temperature",
    "judge_max_tokens": "judge max tokens",
    "judge_samples": "judge samples",
    "concurrency": "concurrency",
    "timeout": "timeout",
    "max_retries": "max retries",
}


def _both(parser: argparse.ArgumentParser, short: str, dest: str, **kwargs: Any) -> None:
    parser.add_argument(f"--{short}", f"--bsa-{short}", dest=dest, **kwargs)


def add_judge_options(parser: argparse.ArgumentParser) -> None:
    """The judge, its endpoint, rubric and parameters, and the engine settings."""
    _both(
        parser,
        "judge",
        "judges",
        action="append",
        metavar="MODEL",
        help="judge model (repeat for a panel); default: the config file's judge",
    )
    _both(parser, "judge-api-base", "judge_api_base", metavar="URL", help="the judge's base URL")
    _both(
        parser,
        "judge-api-key-env",
        "judge_api_key_env",
        metavar="VAR",
        help="environment variable holding the judge's key",
    )
    _both(parser, "rubric", "rubric", metavar="bsa|official|DIR", help="judge rubric (default bsa)")
    _both(parser, "judge-temperature", "judge_temperature", metavar="T")
    _both(parser, "judge-max-tokens", "judge_max_tokens", metavar="N")
    _both(
        parser,
        "judge-reasoning-effort",
        "judge_reasoning_effort",
        choices=("minimal", "low", "medium", "high"),
    )
    _both(parser, "judge-samples", "judge_samples", metavar="N", help="asks per verdict")
    _both(parser, "config", "config", metavar="FILE", help="YAML config (judge settings)")
    _both(parser, "simulate-script", "simulate_script", metavar="FILE")
    _both(parser, "cache-dir", "cache_dir", metavar="DIR")
    _both(parser, "cache", "cache", choices=("readwrite", "read", "write", "off"))
    _both(parser, "concurrency", "concurrency", metavar="N")
    _both(parser, "timeout", "timeout", metavar="SECONDS")
    _both(parser, "max-retries", "max_retries", metavar="N")
    _both(parser, "price", "prices", action="append", metavar="MODEL=IN,OUT")
    _both(parser, "no-answer", "no_answer", choices=("fail", "skip"))
    _both(parser, "no-reasoning", "no_reasoning", choices=("fail", "skip"))


def add_parsers(sub: Any) -> None:
    """``judge-check``, ``rejudge`` and ``compare`` subcommands."""
    check = sub.add_parser(
        "judge-check", help="measure the judge on labelled cases (Cohen's kappa, per label)"
    )
    add_judge_options(check)
    _both(
        check,
        "labels",
        "labels",
        metavar="FILE",
        help="labelled cases (CSV/JSONL); with --report: the labels file of that run "
        "(default: the shipped calibration set)",
    )
    check.add_argument(
        "--report", metavar="RUN.json", help="a saved run whose samples --labels labels"
    )
    check.add_argument("--min-kappa", "--bsa-judge-min-kappa", dest="min_kappa", metavar="K")
    check.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    check.add_argument("--markdown", metavar="PATH", help="write the results as Markdown here")
    check.add_argument("--reps", default="1000", metavar="N", help="bootstrap replicates")

    rejudge = sub.add_parser(
        "rejudge", help="judge a saved run again with another judge or rubric (no model calls)"
    )
    rejudge.add_argument("report", help="a JSON report written with --bsa-report")
    add_judge_options(rejudge)
    rejudge.add_argument("--output", "-o", metavar="PATH", help="write the re-judged report here")
    rejudge.add_argument("--json", metavar="PATH", help="write the agreement and deltas as JSON")
    rejudge.add_argument("--markdown", metavar="PATH", help="write them as Markdown")

    compare = sub.add_parser(
        "compare", help="what changed from run A to run B (e.g. without and with safety rules)"
    )
    compare.add_argument("a", help="report A (e.g. without the safety rules)")
    compare.add_argument("b", help="report B (e.g. with them)")
    compare.add_argument("--json", metavar="PATH", help="write the comparison as JSON here")
    compare.add_argument("--markdown", metavar="PATH", help="write it as Markdown here")
    compare.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="compare runs with another dataset file, judge, rubric or k",
    )


def _number(args: argparse.Namespace, name: str) -> Any:
    value = getattr(args, name, None)
    if value is None:
        return None
    try:
        return float(value) if name in ("judge_temperature", "timeout") else int(value)
    except ValueError:
        raise CliError(
            f"--bsa-{name.replace('_', '-')} {value!r} is not a number; write e.g. "
            f"--bsa-{name.replace('_', '-')} {'0.7' if 'temperature' in name else '8'}"
        ) from None


def settings_from(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Any:
    """Settings for a judge-only command from its options and the config file."""
    from pytest_bsa.config import (
        ConfigError,
        build_settings,
        load_file_config,
        load_pyproject_table,
        parse_price,
    )
    from pytest_bsa.judging import JUDGE_ONLY_MODEL

    cwd = Path(os.getcwd())
    try:
        if args.config:
            file_config = load_file_config(Path(args.config))
        else:
            found = load_pyproject_table(cwd)
            file_config = found[0] if found else None
        cli: dict[str, Any] = {
            "judges": args.judges or None,
            "judge_api_base": args.judge_api_base,
            "judge_api_key_env": args.judge_api_key_env,
            "rubric": args.rubric,
            "judge_reasoning_effort": args.judge_reasoning_effort,
            "simulate_script": args.simulate_script,
            "cache_dir": args.cache_dir,
            "cache": args.cache,
            "no_answer": args.no_answer,
            "no_reasoning": args.no_reasoning,
            "prices": dict(parse_price(p) for p in args.prices or ()),
            **{name: _number(args, name) for name in NUMBERS},
            **(extra or {}),
        }
        if file_config is None or not file_config.model:
            cli["model"] = JUDGE_ONLY_MODEL
        settings = build_settings(cli, file_config, base_dir=cwd)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return settings


def _cache_dir(settings: Any) -> Path:
    from pytest_bsa.dataset import default_cache_dir

    return Path(settings.cache_dir).expanduser() if settings.cache_dir else default_cache_dir()


def _prepare(settings: Any) -> Any:
    """Check the cache and simulator script and load the rubric (errors: CliError)."""
    from pytest_bsa.engine.cache import CacheError, check_cache
    from pytest_bsa.rubrics import RubricError, load_rubric
    from pytest_bsa.simulate.script import Script, ScriptError

    try:
        check_cache(_cache_dir(settings), settings.cache)
        if settings.simulate_script:
            Script.load(settings.simulate_script)
        return load_rubric(settings.rubric, cache_dir=_cache_dir(settings))
    except (CacheError, ScriptError, RubricError) as exc:
        raise CliError(str(exc)) from None


def _targets(targets: dict[str, str | None], inputs: list[str | None]) -> None:
    from pytest_bsa.reporting.outputs import OutputError, check_targets

    try:
        check_targets(
            {k: Path(v) for k, v in targets.items() if v},
            [Path(p) for p in inputs if p and Path(p).is_file()],
        )
    except OutputError as exc:
        raise CliError(str(exc)) from None


def _write(path: str | None, text: str) -> None:
    if path:
        from pytest_bsa.report import write_atomic

        write_atomic(Path(path), text)
        print(f"wrote {path}")


def judge_check(args: argparse.Namespace) -> int:
    from pytest_bsa.calibration import CalibrationError
    from pytest_bsa.judge_check import load_cases, run_judge_check, terminal_lines
    from pytest_bsa.judging import JudgingError
    from pytest_bsa.reporting.agreement_md import judge_check_markdown

    _targets({"--json": args.json, "--markdown": args.markdown}, [args.labels, args.report])
    extra = {"judge_check_min_kappa": _kappa(args.min_kappa)}
    if args.labels:
        extra["judge_check_labels"] = args.labels if not args.report else None
    settings = settings_from(args, extra)
    if args.report and not args.labels:
        raise CliError(
            "--report needs --labels: the labels file of that run (write one with "
            "pytest_bsa.calibration.labelling_sheet and fill in the human_* columns)"
        )
    reps = _reps(args.reps)
    rubric = _prepare(settings)
    try:
        if args.report:
            cases = load_cases(args.labels, args.report)
        else:
            cases = load_cases(settings.judge_check.labels)
        check = run_judge_check(settings, rubric, _cache_dir(settings), cases, reps=reps)
    except (CalibrationError, JudgingError) as exc:
        raise CliError(str(exc)) from None
    for line in terminal_lines(check):
        print(line)
    _write(args.json, json.dumps(check.as_dict(), indent=1) + "\n")
    _write(args.markdown, judge_check_markdown(check))
    return 1 if check.summary.passed is False else 0


def _kappa(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = 2.0
    if not -1 <= value <= 1:
        raise CliError(
            f"--min-kappa {text!r} is not a kappa between -1 and 1, e.g. --min-kappa 0.8"
        )
    return value


def _reps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise CliError(f"--reps {text!r} is not a whole number >= 0 (0 skips the intervals)")
    return value


def rejudge(args: argparse.Namespace) -> int:
    from pytest_bsa.judging import JudgingError
    from pytest_bsa.rejudge import RejudgeError
    from pytest_bsa.rejudge import rejudge as run_rejudge
    from pytest_bsa.report import ReportError, load_report, write_report
    from pytest_bsa.reporting.agreement_md import rejudge_markdown

    _targets(
        {"--output": args.output, "--json": args.json, "--markdown": args.markdown}, [args.report]
    )
    try:
        report = load_report(Path(args.report))
    except ReportError as exc:
        raise CliError(str(exc)) from None
    if not args.judges and not args.config and not args.rubric:
        raise CliError(
            "name the judge to re-judge with (--bsa-judge MODEL, with --bsa-judge-api-base for "
            "an OpenAI-compatible server) and/or the rubric (--bsa-rubric official)"
        )
    settings = settings_from(args)
    rubric = _prepare(settings)
    try:
        result = run_rejudge(report, settings, rubric, _cache_dir(settings))
    except (RejudgeError, JudgingError) as exc:
        raise CliError(str(exc)) from None
    for line in _rejudge_lines(result):
        print(line)
    if args.output:
        write_report(result.report, Path(args.output))
        print(f"wrote {args.output}")
    _write(args.json, json.dumps(result.as_dict(), indent=1) + "\n")
    _write(args.markdown, rejudge_markdown(result))
    return 0


def _rejudge_lines(result: Any) -> list[str]:
    def k(a: Any) -> str:
        if a is None or a.kappa is None:
            return "-"
        return f"{a.kappa:.3f}"

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    lines = [
        f"re-judged {len(result.report.instances)} instances: {result.old_judge} -> "
        f"{result.new_judge}; 0 model calls, {result.report.totals.judge.calls} judge calls",
        f"{'group':<42}{'kappa safety':>13}{'reasoning':>11}{'think':>8}"
        f"{'Safe@1':>16}{'Think@1':>16}",
    ]
    for group, dims in result.agreement.items():
        name = "all instances" if group == "overall" else group.split(":", 1)[1]
        metrics = result.deltas.get(group, {})
        cells = []
        for metric in ("safe_at_1", "think_at_1"):
            old, new = metrics.get(metric, (None, None))
            cells.append(f"{pct(old)}->{pct(new)}")
        lines.append(
            f"{name[:41]:<42}{k(dims.get('safety')):>13}{k(dims.get('reasoning')):>11}"
            f"{k(dims.get('think')):>8}{cells[0]:>16}{cells[1]:>16}"
        )
    return lines


def compare(args: argparse.Namespace) -> int:
    from pytest_bsa.compare import CompareError, compare_reports, terminal_lines
    from pytest_bsa.report import ReportError, load_report
    from pytest_bsa.reporting.agreement_md import compare_markdown

    _targets({"--json": args.json, "--markdown": args.markdown}, [args.a, args.b])
    try:
        a, b = load_report(Path(args.a)), load_report(Path(args.b))
        result = compare_reports(
            a, b, a_label=args.a, b_label=args.b, allow_mismatch=args.allow_mismatch
        )
    except (ReportError, CompareError) as exc:
        raise CliError(str(exc)) from None
    for line in terminal_lines(result):
        print(line)
    _write(args.json, json.dumps(result.as_dict(), indent=1) + "\n")
    _write(args.markdown, compare_markdown(result))
    return 0
