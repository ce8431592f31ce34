"""Reading and layering configuration: the YAML file, ``[tool.bsa]`` in pyproject.toml, and
:func:`build_settings` (CLI values over the file over defaults; pure)."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pytest_bsa.config.judge_policy import JudgeCheckPolicy, JudgeSection
from pytest_bsa.config.settings import (
    RESERVED_PARAMS,
    SIMULATED,
    ConfigError,
    FileConfig,
    Settings,
    check_api_base,
    check_env_name,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def _describe(err: ValidationError, source: str) -> str:
    lines = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the README's configuration reference)"
        lines.append(f"{source}: {where}: {msg}")
    return "\n".join(lines)


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice (the last one would silently win)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)
# YAML 1.2 floats: PyYAML (YAML 1.1) reads `1e-3` as a string, which the strict number fields
# of a policy refuse; read it as the number it is.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_file_config(path: Path) -> FileConfig:
    """Read a YAML config file; errors name the file, the key and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", exc)
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return parse_file_config(data, str(path))


def parse_file_config(data: Mapping[str, Any], source: str) -> FileConfig:
    try:
        return FileConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def load_pyproject_table(rootdir: Path) -> tuple[FileConfig, str] | None:
    """``[tool.bsa]`` of ``rootdir/pyproject.toml``, when present."""
    path = rootdir / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("bsa")
    except (OSError, tomllib.TOMLDecodeError):
        return None  # pytest itself reports a broken pyproject.toml
    if table is None:
        return None
    source = f"{path} [tool.bsa]"
    return parse_file_config(table, source), source


def _rebased(value: str | None, base: Path, keywords: tuple[str, ...] = ()) -> str | None:
    """``value`` against ``base`` when it is a relative path (not a keyword such as ``sample``)."""
    if not value or value in keywords:
        return value
    path = Path(value).expanduser()
    return value if path.is_absolute() else str(base / path)


def rebase_paths(fc: FileConfig, base: Path) -> FileConfig:
    """``fc`` with its relative path values resolved against ``base``, the directory of the
    file that holds them (``[tool.bsa]``: its pyproject.toml), so that pytest started from a
    subdirectory finds the same files."""
    update: dict[str, Any] = {
        "dataset": _rebased(fc.dataset, base, ("sample", "hf")),
        "rubric": _rebased(fc.rubric, base, ("bsa", "official")),
    }
    if fc.system_prompt and not is_prompt_spec(fc.system_prompt):
        update["system_prompt"] = _rebased(fc.system_prompt, base)
    if isinstance(fc.judge, JudgeSection) and fc.judge.labels:
        labels = _rebased(fc.judge.labels, base, ("shipped",))
        update["judge"] = fc.judge.model_copy(update={"labels": labels})
    return fc.model_copy(update=update)


_FILE_SCALARS = (
    "model",
    "api_base",
    "api_key_env",
    "judge_api_base",
    "judge_samples",
    "judge_api_key_env",
    "dataset",
    "samples",
    "seed",
    "temperature",
    "max_tokens",
    "gate",
    "max_errors",
    "gate_on",
    "hidden_reasoning",
    "rubric",
    "judge_temperature",
    "judge_max_tokens",
    "judge_reasoning_effort",
    "top_p",
    "max_unjudged",
    "no_answer",
    "no_reasoning",
    "breaker",
    "batch",
    "think_tags",
)


def build_settings(
    cli: Mapping[str, Any], file_config: FileConfig | None, *, base_dir: Path
) -> Settings:
    """Merge the layers (CLI values that are ``None`` fall through) into validated settings."""
    fc = file_config or FileConfig()
    merged: dict[str, Any] = {}
    for key in _FILE_SCALARS:
        merged[key] = getattr(fc, key)
    merged["params"] = dict(fc.params)
    merged["thresholds"] = fc.thresholds
    merged["criteria"] = fc.criteria
    merged["baseline"] = fc.baseline
    check = _file_judge(fc, merged)
    prompt_path = fc.system_prompt
    for key, value in cli.items():
        if value is None or value == () or value == []:
            continue
        if key == "params":
            merged["params"] = {**merged["params"], **value}
        elif key == "system_prompt_path":
            prompt_path = value
        elif key == "judges":
            merged["judge"], merged["judges"] = value[0], tuple(value)
        elif key == "judge":
            merged["judge"], merged["judges"] = value, ()
        elif key.startswith("judge_check_"):
            check[key.removeprefix("judge_check_")] = value
        else:
            merged[key] = value
    merged["judge_check"] = _judge_check(check, base_dir)
    merged = {k: v for k, v in merged.items() if v is not None}
    _check_panel(merged)
    reserved = sorted(set(merged.get("params", {})) & RESERVED_PARAMS)
    if reserved:
        raise ConfigError(
            f"parameter {reserved[0]!r} is set by pytest-bsa itself and cannot be a generation "
            "parameter (--bsa-param / params:); use --bsa-model, --bsa-samples or the prompt"
        )
    for option, key in (("--bsa-api-base", "api_base"), ("--bsa-judge-api-base", "judge_api_base")):
        if merged.get(key):
            check_api_base(option, merged[key])
    for option, key in (
        ("--bsa-api-key-env", "api_key_env"),
        ("--bsa-judge-api-key-env", "judge_api_key_env"),
    ):
        if merged.get(key) is not None:
            check_env_name(option, merged[key])
    if not str(merged.get("model") or "").strip():
        raise ConfigError("--bsa-model is required to run the benchmark")
    if merged["model"] == SIMULATED:
        merged.setdefault("judge", SIMULATED)
    if not merged.get("judge"):
        raise ConfigError(
            "no judge model: pass --bsa-judge (a litellm model string, e.g. "
            "--bsa-judge openai/gpt-4o) or set `judge:` in the config file"
        )
    if prompt_path and is_prompt_spec(prompt_path):
        from pytest_bsa.safety_rules import SafetyRulesError, system_prompt_for

        cache_dir = merged.get("cache_dir")
        try:
            merged["system_prompt"] = system_prompt_for(prompt_path, cache_dir=cache_dir)
        except SafetyRulesError as exc:
            raise ConfigError(str(exc)) from None
        merged["system_prompt_source"] = prompt_path
    elif prompt_path:
        merged["system_prompt_source"] = "file"
        path = Path(prompt_path).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        try:
            merged["system_prompt"] = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"--bsa-system-prompt {prompt_path!r}: cannot read it ({exc.strerror}); "
                "pass a path to a UTF-8 text file"
            ) from None
        merged["system_prompt_path"] = str(path)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "settings")) from None


def is_prompt_spec(value: str) -> bool:
    """``official:NAME`` or ``bsa:NAME``: a named system prompt rather than a file."""
    return value.partition(":")[0] in ("official", "bsa") and ":" in value


def _file_judge(fc: FileConfig, merged: dict[str, Any]) -> dict[str, Any]:
    """The file's judge (a string, or a mapping with its check) and panel into ``merged``;
    returns the check settings the file gives."""
    section = fc.judge if isinstance(fc.judge, JudgeSection) else JudgeSection(model=fc.judge)
    if fc.judges is not None:
        if section.model:
            raise ConfigError(
                f"give judge: {section.model!r} or judges: {fc.judges!r}, not both (judges: is "
                "a panel whose first member is its judge)"
            )
        if not fc.judges:
            raise ConfigError("judges: is empty; list two or more judge models, or use judge:")
        merged["judge"], merged["judges"] = fc.judges[0], tuple(fc.judges)
    else:
        merged["judge"] = section.model
    check = {"run": section.check, "min_kappa": section.min_kappa}
    check.update({"on_short": section.on_short, "labels": section.labels})
    return check


def _judge_check(values: Mapping[str, Any], base_dir: Path) -> JudgeCheckPolicy:
    given = {k: v for k, v in values.items() if v is not None}
    labels = given.get("labels")
    if labels and labels != "shipped":
        path = Path(labels).expanduser()
        given["labels"] = str(path if path.is_absolute() else base_dir / path)
    try:
        return JudgeCheckPolicy.model_validate(given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "judge check")) from None


def _check_panel(merged: dict[str, Any]) -> None:
    """A panel names different judges; repeated asks need a temperature above 0."""
    asks = merged.get("judge_samples") or 1
    if asks > 1 and merged.get("judge_temperature") == 0:
        raise ConfigError(
            f"--bsa-judge-samples {asks} with --bsa-judge-temperature 0 asks for the same "
            "verdict several times at temperature 0, which measures nothing; set a temperature "
            "above 0 (e.g. --bsa-judge-temperature 0.7) or leave it unset (the provider's default)"
        )
    judges = tuple(merged.get("judges") or ())
    if len(judges) <= 1:
        merged["judges"] = ()
        return
    repeated = sorted({j for j in judges if judges.count(j) > 1})
    if repeated:
        raise ConfigError(
            f"the judge panel names {repeated[0]!r} twice: a judge agreeing with itself is not a "
            "second opinion; name different judges, or ask one judge several times with "
            "--bsa-judge-samples N"
        )
    if SIMULATED in judges:
        raise ConfigError(
            "a judge panel cannot include 'simulated' (its members would be one judge); serve "
            "the simulator with python -m pytest_bsa.simulate and name members such as "
            "openai/judge-a, openai/judge-b at its URL (--bsa-judge-api-base)"
        )
