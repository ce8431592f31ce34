"""Settings: layers merge in order; bad values name the key and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_bsa.config import (
    ConfigError,
    FileConfig,
    build_settings,
    load_file_config,
    load_pyproject_table,
    parse_file_config,
    parse_param,
)


def test_cli_beats_file_beats_defaults(tmp_path: Path) -> None:
    fc = FileConfig(
        model="openai/a", judge="openai/j", samples=3, temperature=0.2, params={"top_p": 0.9}
    )
    s = build_settings({"samples": 7, "params": {"seed": 1}}, fc, base_dir=tmp_path)
    assert (s.model, s.judge, s.samples, s.temperature) == ("openai/a", "openai/j", 7, 0.2)
    assert s.params == {"top_p": 0.9, "seed": 1}
    assert s.max_tokens == 8192 and s.gate == "thresholds"


def test_simulated_model_defaults_the_judge(tmp_path: Path) -> None:
    assert build_settings({"model": "simulated"}, None, base_dir=tmp_path).judge == "simulated"


def test_missing_judge_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--bsa-judge"):
        build_settings({"model": "openai/x"}, None, base_dir=tmp_path)


def test_system_prompt_is_read_relative_to_base(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("Be careful.", encoding="utf-8")
    s = build_settings(
        {"model": "simulated", "system_prompt_path": "p.txt"}, None, base_dir=tmp_path
    )
    assert s.system_prompt == "Be careful."
    with pytest.raises(ConfigError, match=r"'missing\.txt'.*cannot read"):
        build_settings(
            {"model": "simulated", "system_prompt_path": "missing.txt"}, None, base_dir=tmp_path
        )


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("thresholds:\n  categories:\n    Rumours: {safe_at_1: 0.9}\n", "did you mean 'Rumors'"),
        ("thresholds:\n  overall: {safe_at_1: 1.5}\n", "thresholds.overall.safe_at_1"),
        ("thresholds:\n  overall: {safe_at_one: 0.5}\n", "unknown key"),
        ("samplez: 3\n", "samplez: unknown key"),
        ("thresholds: [\n", "not valid YAML"),
        ("- a\n- b\n", "mapping"),
        (
            "thresholds:\n  scenarios:\n    Risk Omision: {safe_at_1: 0.5}\n",
            "did you mean 'Risk Omission'",
        ),
        ("thresholds:\n  subcategories:\n    Rumors: {safe_at_1: 0.5}\n", "Category-Subcategory"),
    ],
)
def test_bad_config_files_name_key_and_fix(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bsa.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_file_config(path)
    assert str(path) in str(info.value)


def test_policy_numbers_are_numbers(tmp_path: Path) -> None:
    """A quoted number is refused (a saved report's policy is strict too), and `1e-2` is the
    number YAML 1.2 says it is (PyYAML alone would read a string)."""
    path = tmp_path / "bsa.yaml"
    path.write_text(
        "thresholds:\n  overall: {safe_at_1: 9e-1}\nbaseline: {alpha: 1e-2, max_drop: 5E-2}\n",
        encoding="utf-8",
    )
    loaded = load_file_config(path)
    assert loaded.thresholds.overall.safe_at_1 == 0.9
    assert (loaded.baseline.alpha, loaded.baseline.max_drop) == (0.01, 0.05)
    for text, message in (
        ('thresholds:\n  overall: {safe_at_1: "0.9"}\n', "'0.9' is not a threshold"),
        ('criteria:\n  default: {safe: "1"}\n', "criteria.default.safe"),
        ("baseline: {alpha: '0.05'}\n", "baseline.alpha"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_file_config(path)


def test_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    for name in ("bsa.yaml", "strict.yaml"):
        load_file_config(root / "examples" / name)


def test_pyproject_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.bsa]\njudge = "openai/j"\n[tool.bsa.thresholds.overall]\nsafe_at_1 = 0.9\n',
        encoding="utf-8",
    )
    found = load_pyproject_table(tmp_path)
    assert found is not None
    fc, source = found
    assert fc.judge == "openai/j" and fc.thresholds.overall.safe_at_1 == 0.9
    assert "[tool.bsa]" in source


def test_criteria_take_the_strictest_category() -> None:
    fc = FileConfig.model_validate(
        {
            "criteria": {
                "default": {"safe": 0.6, "think": 0.6},
                "categories": {"Rumors": {"safe": 0.8, "think": 0.2}},
            }
        }
    )
    c = fc.criteria.for_categories(("Rumors", "Ethics and Morality"))
    assert (c.safe, c.think) == (0.8, 0.2)
    assert fc.criteria.for_categories(("Ethics and Morality",)).safe == 0.6


def test_parse_param() -> None:
    assert parse_param("top_p=0.95") == ("top_p", 0.95)
    assert parse_param("stop=END") == ("stop", "END")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_param("top_p")


def test_error_budget() -> None:
    s = build_settings({"model": "simulated", "max_errors": 0.1}, None, base_dir=Path())
    assert s.policy.error_budget(45) == 4
    s = build_settings({"model": "simulated", "max_errors": 3}, None, base_dir=Path())
    assert s.policy.error_budget(45) == 3


def test_duplicate_keys_and_boolean_thresholds_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bsa.yaml"
    path.write_text("samples: 3\nsamples: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate key 'samples'"):
        load_file_config(path)
    path.write_text("thresholds:\n  overall: {safe_at_1: true}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="True is not a threshold"):
        load_file_config(path)


def test_subcategory_thresholds_must_exist_in_the_dataset() -> None:
    from pytest_bsa.config import Thresholds, check_subcategories
    from pytest_bsa.dataset import load_dataset, resolve_source

    instances = load_dataset(resolve_source("sample").path)
    real = str(instances[0].labels[0])
    check_subcategories(Thresholds.model_validate({"subcategories": {real: {}}}), instances, "s")
    typo = real[:-2]
    with pytest.raises(ConfigError, match=f"did you mean {re.escape(repr(real))}"):
        check_subcategories(
            Thresholds.model_validate({"subcategories": {typo: {}}}), instances, "s"
        )


def test_judge_params_sampling_defaults_and_outcome_rules_layer_like_the_rest() -> None:
    s = build_settings({"model": "simulated"}, None, base_dir=Path())
    assert s.generation_params == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 8192}
    assert s.judge_params == {"max_tokens": 8192}  # temperature and effort left to the judge
    assert (s.rubric, s.max_unjudged, s.no_answer, s.no_reasoning) == ("bsa", 0.05, "fail", "fail")
    file_config = parse_file_config(
        {
            "rubric": "official",
            "judge_temperature": 0,
            "judge_max_tokens": 2048,
            "judge_reasoning_effort": "low",
            "top_p": 0.9,
            "max_unjudged": 0.1,
            "no_answer": "skip",
        },
        "bsa.yaml",
    )
    cli = {"model": "simulated", "top_p": 0.8, "judge_max_tokens": 4096, "no_reasoning": "skip"}
    s = build_settings(cli, file_config, base_dir=Path())
    assert s.rubric == "official"
    assert s.judge_params == {"temperature": 0, "max_tokens": 4096, "reasoning_effort": "low"}
    assert s.generation_params["top_p"] == 0.8  # the command line wins
    policy = s.policy
    assert (policy.max_unjudged, policy.no_answer, policy.no_reasoning) == (0.1, "skip", "skip")
    unset = build_settings({"model": "simulated", "params": {"top_p": None}}, None, base_dir=Path())
    assert "top_p" not in unset.generation_params  # a null param is not sent


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"judge_reasoning_effort": "extreme"}, "judge_reasoning_effort: Input should be"),
        ({"max_unjudged": 1.5}, "max_unjudged: Input should be less than or equal to 1"),
        ({"no_answer": "ignore"}, "no_answer: Input should be"),
        ({"top_p": 0}, "top_p: Input should be greater than 0"),
        ({"judge_max_tokens": 0}, "judge_max_tokens: Input should be greater than or equal to 1"),
    ],
)
def test_bad_judge_settings_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"bsa.yaml: {message}")):
        parse_file_config(data, "bsa.yaml")
