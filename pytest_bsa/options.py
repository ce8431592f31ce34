"""The ``--bsa-*`` options and ini values (their values parsed at the edge by
:mod:`pytest_bsa.option_types`).

Imported by the plugin entry for every pytest run: argparse only, nothing heavy.
"""

from __future__ import annotations

import pytest

from pytest_bsa.option_types import (
    fraction,
    kappa,
    non_negative_float,
    non_negative_int,
    per_minute,
    poll_seconds,
    positive_float,
    positive_int,
    shard,
    whole_number,
)

CACHE_MODES = ("readwrite", "read", "write", "off")


def add_options(parser: pytest.Parser) -> None:
    """Every ``--bsa-*`` option, grouped, each help stating its default; and the ini values."""
    group = parser.getgroup("bsa", "Beyond Safe Answers benchmark (pytest-bsa)")
    add = group.addoption
    add(
        "--bsa-model",
        help="model under test, a litellm model string; `simulated` runs the "
        "built-in simulated reasoning endpoint (no key). Enables the plugin. Default: off.",
    )
    add(
        "--bsa-api-base",
        help="OpenAI-compatible base URL of the model, e.g. "
        "http://127.0.0.1:8000/v1 (use with --bsa-model openai/<name>). Default: provider's.",
    )
    add(
        "--bsa-api-key-env",
        metavar="VAR",
        help="environment variable holding the model's API key. Default: the provider's usual "
        "variable at the provider's own URL; no key for any other --bsa-api-base.",
    )
    add(
        "--bsa-judge",
        action="append",
        default=[],
        metavar="MODEL",
        help="judge model, a litellm model string; repeat it for a judge panel (each verdict "
        "the majority, ties counted apart as split). Default: `simulated` with "
        "--bsa-model=simulated, otherwise required.",
    )
    add(
        "--bsa-judge-api-base", help="OpenAI-compatible base URL of the judge. Default: provider's."
    )
    add(
        "--bsa-judge-api-key-env",
        metavar="VAR",
        help="environment variable holding the judge's API key. Default: the provider's usual "
        "variable at the provider's own URL; no key for any other --bsa-judge-api-base.",
    )
    add(
        "--bsa-dataset",
        help="`hf` (download the pinned benchmark file; the default), `sample` "
        "(bundled demo set) or a path to a CSV/JSONL in the upstream schema.",
    )
    add(
        "--bsa-scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="only this scenario (repeatable): 'Risk Omission', 'Cognitive Shortcut', "
        "'Over Sensitivity'. Default: all.",
    )
    add(
        "--bsa-category",
        action="append",
        default=[],
        metavar="NAME",
        help="only instances of this primary risk category (repeatable). Default: all.",
    )
    add(
        "--bsa-limit",
        type=positive_int,
        metavar="N",
        help="evaluate N instances, stratified over scenario x category. Default: all.",
    )
    add("--bsa-seed", type=whole_number, metavar="S", help="seed for --bsa-limit. Default: 0.")
    add(
        "--bsa-samples",
        type=positive_int,
        metavar="K",
        help="samples per instance (k of Safe@k/Think@k). Default: 5.",
    )
    add("--bsa-temperature", type=non_negative_float, help="sampling temperature. Default: 0.6.")
    add("--bsa-max-tokens", type=positive_int, help="max tokens per answer. Default: 8192.")
    add(
        "--bsa-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra generation parameter (JSON value), repeatable, e.g. top_p=0.95.",
    )
    add(
        "--bsa-system-prompt",
        metavar="FILE|NAME",
        help="system prompt under test: a text FILE, official:safety-rules (the paper's "
        "safety rules, downloaded at a pinned commit) or bsa:safety-rules (ours, one rule per "
        "risk category). Default: none.",
    )
    add(
        "--bsa-config",
        metavar="FILE",
        help="YAML config with thresholds, criteria and run "
        "settings. Default: [tool.bsa] in pyproject.toml when present.",
    )
    add(
        "--bsa-gate",
        choices=("thresholds", "instances", "report"),
        help="thresholds: thresholds and the baseline decide (a run needs one of them); "
        "instances: every instance that misses its criteria fails; report: measure only "
        "(REPORT ONLY: thresholds and baseline are advisory, an incomplete or unjudged run "
        "still fails). Default: thresholds.",
    )
    add(
        "--bsa-max-errors",
        type=non_negative_float,
        metavar="N",
        help="instances allowed to end in an endpoint error (a count, or a share when < 1). "
        "Default: 0.",
    )
    add(
        "--bsa-concurrency",
        type=positive_int,
        help="calls in flight at once per endpoint role (the ceiling in adaptive mode). "
        "Default: 16.",
    )
    add(
        "--bsa-concurrency-mode",
        choices=("adaptive", "fixed"),
        help="adaptive: lower the calls in flight on 429s and latency growth, raise them back "
        "up to --bsa-concurrency; fixed: always --bsa-concurrency. Default: adaptive.",
    )
    add(
        "--bsa-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="timeout of one call (> 0). Default: 600.",
    )
    add(
        "--bsa-max-retries",
        type=non_negative_int,
        metavar="N",
        help="retries of a failed call. Default: 6.",
    )
    add(
        "--bsa-breaker",
        type=positive_int,
        metavar="N",
        help="stop the run once N calls in a row to one endpoint failed after all their retries "
        "(circuit breaker). Default: 5.",
    )
    add(
        "--bsa-answers",
        choices=("resume", "fresh", "reuse"),
        help="model answers from the cache: resume (only to finish an interrupted run with the "
        "same settings), fresh (never), reuse (any cached answer to the same request; for "
        "judge or report iterations). Judge verdicts are always reused. Default: resume.",
    )
    add(
        "--bsa-batch",
        choices=("model", "judge", "both", "off"),
        help="send these calls through the provider's batch API (OpenAI-compatible /v1/batches "
        "or Anthropic message batches): half price, results within 24 h; a rerun picks up "
        "unfinished batches. Config file: batch. Default: off.",
    )
    add(
        "--bsa-batch-poll",
        type=poll_seconds,
        metavar="SECONDS",
        help="seconds between looks at a running batch. Default: 30.",
    )
    add("--bsa-cache-dir", metavar="DIR", help="cache directory. Default: ~/.cache/pytest-bsa.")
    add("--bsa-cache", choices=CACHE_MODES, help="response/verdict cache mode. Default: readwrite.")
    add(
        "--bsa-simulate-script",
        metavar="FILE",
        help="behaviour script for --bsa-model=simulated. Default: the built-in demo profile.",
    )
    add(
        "--bsa-gate-on",
        choices=("point", "lower"),
        help="point: a threshold compares the point estimate; lower: the 95%% interval's lower "
        "bound must clear it. Default: point.",
    )
    add(
        "--bsa-hidden-reasoning",
        choices=("skip", "fail"),
        help="instances without reasoning: skip their think metrics (reported as not "
        "measurable) or fail them. Default: skip.",
    )
    add(
        "--bsa-baseline",
        metavar="REPORT",
        help="a saved --bsa-report JSON to compare against (paired test per group). Default: none.",
    )
    add(
        "--bsa-baseline-allow-mismatch",
        action="store_true",
        default=False,
        help="compare with a baseline made with another dataset file, judge, rubric or k. "
        "Default: refuse.",
    )
    add(
        "--bsa-baseline-allow-identical",
        action="store_true",
        default=False,
        help="accept a comparison whose answers equal the baseline's on every shared instance "
        "(the model compared with itself). Default: refuse.",
    )
    add(
        "--bsa-shard",
        metavar="I/N",
        type=shard,
        help="run only shard I of N of the selection (deterministic; 1-based). Default: all.",
    )
    add(
        "--bsa-rpm",
        type=per_minute,
        metavar="N",
        help="requests per minute per endpoint, > 0 (calls wait their turn, never fail). "
        "Default: unlimited.",
    )
    add(
        "--bsa-tpm",
        type=per_minute,
        metavar="N",
        help="tokens per minute per endpoint, > 0. Default: unlimited.",
    )
    add(
        "--bsa-max-cost",
        type=non_negative_float,
        metavar="USD",
        help="refuse to start when the estimated cost exceeds USD (or no price is known), and "
        "stop issuing calls once the run's cost reaches it. Default: unlimited.",
    )
    add(
        "--bsa-price",
        action="append",
        default=[],
        metavar="MODEL=IN,OUT",
        help="USD per million input,output tokens for a model litellm does not price, e.g. "
        "openai/qwen3-8b=0.2,0.6 (repeatable).",
    )
    _add_judge_options(parser)
    report = parser.getgroup("bsa-reports", "pytest-bsa reports")
    report.addoption(
        "--bsa-report",
        metavar="PATH",
        help="write the JSON report (re-render and "
        "re-gate it with python -m pytest_bsa). Default: none.",
    )
    report.addoption(
        "--bsa-junit",
        metavar="PATH",
        help="JUnit XML with one <testsuite> per risk category. Default: none.",
    )
    report.addoption(
        "--bsa-markdown",
        metavar="PATH",
        help="Markdown summary (e.g. $GITHUB_STEP_SUMMARY). Default: none.",
    )
    report.addoption(
        "--bsa-markdown-full",
        action="store_true",
        default=False,
        help="include model output excerpts in the Markdown. Default: redacted.",
    )
    report.addoption(
        "--bsa-html", metavar="PATH", help="self-contained HTML report. Default: none."
    )
    report.addoption(
        "--bsa-export-upstream",
        metavar="PATH",
        help="the upstream BSA evaluation CSV (one row per sample). Default: none.",
    )
    parser.addini("bsa_model", "default for --bsa-model")
    parser.addini("bsa_report", "default for --bsa-report")
    parser.addini("bsa_judge", "default for --bsa-judge")
    parser.addini("bsa_dataset", "default for --bsa-dataset")
    parser.addini("bsa_config", "default for --bsa-config")
    parser.addini("bsa_samples", "default for --bsa-samples")
    parser.addini("bsa_cache_dir", "default for --bsa-cache-dir")


def _add_judge_options(parser: pytest.Parser) -> None:
    """The judge's rubric and parameters, and how samples without a verdict count."""
    group = parser.getgroup("bsa-judge", "pytest-bsa judge and sample outcomes")
    add = group.addoption
    add(
        "--bsa-rubric",
        metavar="bsa|official|DIR",
        help="judge rubric: bsa (ours, bsa-rubric-2), official (the official BSA prompts, "
        "downloaded at a pinned commit and checked) or a directory of files in the official "
        "format. Default: bsa.",
    )
    add(
        "--bsa-judge-temperature",
        type=non_negative_float,
        help="judge sampling temperature. Default: not sent (reasoning judges set their own).",
    )
    add(
        "--bsa-judge-max-tokens",
        type=positive_int,
        help="judge max tokens per reply (room for a reasoning judge's thinking). Default: 8192.",
    )
    add(
        "--bsa-judge-reasoning-effort",
        choices=("minimal", "low", "medium", "high"),
        help="reasoning effort requested from a reasoning judge. Default: not sent.",
    )
    add(
        "--bsa-judge-samples",
        type=positive_int,
        metavar="N",
        help="ask the judge N times per verdict (temperature above 0): the verdict is the "
        "majority, and reports list the verdicts that changed between asks. Default: 1.",
    )
    add(
        "--bsa-judge-check",
        action="store_true",
        default=False,
        help="before the run, measure the judge on labelled cases (the shipped calibration "
        "set, or --bsa-judge-labels) and report its Cohen's kappa. Default: off (on when "
        "--bsa-judge-min-kappa is set).",
    )
    add(
        "--bsa-judge-min-kappa",
        type=kappa,
        metavar="K",
        help="the judge check's overall kappa (answer safety and think) must reach K, else "
        "--bsa-judge-on-short applies; config judge.min_kappa. Default: none.",
    )
    add(
        "--bsa-judge-on-short",
        choices=("refuse", "advisory"),
        help="a judge below the minimum kappa: refuse (exit 4 before any model call) or run "
        "with every threshold and baseline gate advisory (REPORT ONLY). Default: refuse.",
    )
    add(
        "--bsa-judge-labels",
        metavar="FILE",
        help="labelled cases for the judge check (CSV or JSONL, the calibration format). "
        "Default: the shipped calibration set.",
    )
    add(
        "--bsa-top-p",
        type=fraction,
        help="top_p of the model under test (the official setting, with temperature 0.6). "
        "Default: 0.95.",
    )
    add(
        "--bsa-think-tags",
        choices=("leading", "template"),
        help="reasoning in a response's content (no reasoning field): leading (only a block "
        "that starts with <think> or <thinking>; a bare </think> stays answer text, judged "
        "for safety) or template (the model's chat template opens <think>: the content up to "
        "the first </think> is reasoning); config think_tags. Default: leading.",
    )
    add(
        "--bsa-max-unjudged",
        type=fraction,
        metavar="SHARE",
        help="largest share of samples without a usable verdict (unjudged or refused by the "
        "judge) allowed in overall and in every gated group. Default: 0.05.",
    )
    add(
        "--bsa-no-answer",
        choices=("fail", "skip"),
        help="a sample the model left without an answer (empty, or cut at the token limit): "
        "fails safety, or is counted apart. Default: fail.",
    )
    add(
        "--bsa-no-reasoning",
        choices=("fail", "skip"),
        help="a sample the model left without reasoning (an empty block, or none): fails "
        "think, or is counted apart. Default: fail.",
    )
