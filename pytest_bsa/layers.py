"""A run's settings as pytest hands them in: command-line options, ini values filling their
gaps, the config file (``--bsa-config``, ``bsa_config`` or ``[tool.bsa]``), and where each
came from (for the run's header). :func:`pytest_bsa.config.build_settings` layers and checks
them."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import pytest

from pytest_bsa.config import (
    ConfigError,
    FileConfig,
    load_file_config,
    load_pyproject_table,
    parse_param,
    parse_price,
    rebase_paths,
)

CLI_OPTIONS = {
    "model": "bsa_model",
    "api_base": "bsa_api_base",
    "api_key_env": "bsa_api_key_env",
    "judges": "bsa_judge",
    "judge_api_base": "bsa_judge_api_base",
    "judge_api_key_env": "bsa_judge_api_key_env",
    "dataset": "bsa_dataset",
    "scenarios": "bsa_scenario",
    "categories": "bsa_category",
    "limit": "bsa_limit",
    "seed": "bsa_seed",
    "samples": "bsa_samples",
    "temperature": "bsa_temperature",
    "max_tokens": "bsa_max_tokens",
    "system_prompt_path": "bsa_system_prompt",
    "gate": "bsa_gate",
    "max_errors": "bsa_max_errors",
    "concurrency": "bsa_concurrency",
    "concurrency_mode": "bsa_concurrency_mode",
    "batch": "bsa_batch",
    "batch_poll": "bsa_batch_poll",
    "timeout": "bsa_timeout",
    "max_retries": "bsa_max_retries",
    "breaker": "bsa_breaker",
    "answers": "bsa_answers",
    "cache_dir": "bsa_cache_dir",
    "cache": "bsa_cache",
    "simulate_script": "bsa_simulate_script",
    "gate_on": "bsa_gate_on",
    "hidden_reasoning": "bsa_hidden_reasoning",
    "baseline_path": "bsa_baseline",
    "baseline_allow_identical": "bsa_baseline_allow_identical",
    "shard": "bsa_shard",
    "rpm": "bsa_rpm",
    "tpm": "bsa_tpm",
    "max_cost": "bsa_max_cost",
    "rubric": "bsa_rubric",
    "judge_temperature": "bsa_judge_temperature",
    "judge_max_tokens": "bsa_judge_max_tokens",
    "judge_reasoning_effort": "bsa_judge_reasoning_effort",
    "top_p": "bsa_top_p",
    "max_unjudged": "bsa_max_unjudged",
    "no_answer": "bsa_no_answer",
    "no_reasoning": "bsa_no_reasoning",
    "think_tags": "bsa_think_tags",
    "judge_samples": "bsa_judge_samples",
    "judge_check_run": "bsa_judge_check",
    "judge_check_min_kappa": "bsa_judge_min_kappa",
    "judge_check_on_short": "bsa_judge_on_short",
    "judge_check_labels": "bsa_judge_labels",
}
INI_OPTIONS = ("model", "judge", "dataset", "samples", "cache_dir")


def _ini_samples(config: pytest.Config, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"bsa_samples = {text!r} in {config.inipath} is not a positive whole number; "
            "write e.g. bsa_samples = 5"
        )
    return value


def read_layers(config: pytest.Config) -> tuple[dict[str, Any], FileConfig | None, list[str]]:
    """CLI values, with ini values filling the gaps, the config file, and where they came
    from (for the header)."""
    values: dict[str, Any] = {key: config.getoption(opt) for key, opt in CLI_OPTIONS.items()}
    values["judges"] = list(values["judges"] or ()) or None  # --bsa-judge, repeatable
    values["judge_check_run"] = values["judge_check_run"] or None
    sources: list[str] = []
    from_ini = []
    for key in INI_OPTIONS:
        if key == "judge" and values["judges"]:
            continue
        if values.get(key) is None and (ini := config.getini(f"bsa_{key}")):
            if key == "samples":
                values[key] = _ini_samples(config, ini)
            elif key in _INI_PATHS:
                values[key] = _ini_path(config, ini, _INI_PATHS[key])
            else:
                values[key] = ini
            from_ini.append(f"bsa_{key}")
    values["scenarios"] = tuple(values["scenarios"] or ())
    values["categories"] = tuple(values["categories"] or ())
    values["params"] = dict(parse_param(p) for p in config.getoption("bsa_param") or ())
    values["prices"] = dict(parse_price(p) for p in config.getoption("bsa_price") or ())
    if not values["baseline_allow_identical"]:
        values["baseline_allow_identical"] = None
    config_path = config.getoption("bsa_config")
    if not config_path and (config_path := config.getini("bsa_config")):
        from_ini.append("bsa_config")
        config_path = _ini_path(config, config_path)
    if not config.getoption("bsa_report") and config.getini("bsa_report"):
        from_ini.append("bsa_report")  # read by Outputs.from_options
    if from_ini:
        sources.append(f"{', '.join(from_ini)} from {config.inipath}")
    if config_path:
        path = Path(config_path).expanduser()
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        values["config_path"] = str(path)
        return values, load_file_config(path), [str(path), *sources]
    where = _pyproject_dir(config)
    found = load_pyproject_table(where)
    if found is None:
        return values, None, sources
    return values, rebase_paths(found[0], where), [found[1], *sources]


# Path-valued ini options and the words they take that are not paths.
_INI_PATHS: dict[str, tuple[str, ...]] = {"dataset": ("sample", "hf"), "cache_dir": ()}


def _ini_path(config: pytest.Config, value: str, keywords: tuple[str, ...] = ()) -> str:
    """An ini value that is a relative path, resolved against the ini file's directory (as
    pytest resolves its own ini paths), so that pytest started from a subdirectory finds it."""
    path = Path(value).expanduser()
    if value in keywords or path.is_absolute() or config.inipath is None:
        return value
    return str(config.inipath.parent / path)


def _pyproject_dir(config: pytest.Config) -> Path:
    """Where ``[tool.bsa]`` is read: the directory of pytest's ini file, else its rootdir."""
    inipath = config.inipath
    return inipath.parent if inipath is not None else config.rootpath


def model_on_command_line(config: pytest.Config) -> bool:
    """Whether ``--bsa-model`` was typed (command line or ``PYTEST_ADDOPTS``), as opposed to
    set in a file (``bsa_model``, or ``addopts`` in the ini file)."""
    args = [
        *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
        *(str(a) for a in config.invocation_params.args),
    ]
    return any(a == "--bsa-model" or a.startswith("--bsa-model=") for a in args)
