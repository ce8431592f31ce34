"""Judge settings: panels, repeated asks and the judge check, in files and options."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_bsa

from pytest_bsa.config import ConfigError, build_settings, parse_file_config


def _settings(cli: dict, file: dict | None = None, base: Path = Path("/tmp")):
    fc = parse_file_config(file, "bsa.yaml") if file is not None else None
    return build_settings({"model": "openai/m", **cli}, fc, base_dir=base)


def test_a_panel_from_the_command_line_or_the_file() -> None:
    s = _settings({"judges": ["openai/a", "openai/b", "openai/c"]})
    assert (s.judge, s.judges) == ("openai/a", ("openai/a", "openai/b", "openai/c"))
    assert s.judge_label == "panel: openai/a, openai/b, openai/c"
    single = _settings({"judges": ["openai/a"]})
    assert (single.judge, single.judges, single.judge_label) == ("openai/a", (), "openai/a")
    filed = _settings({}, {"judges": ["openai/x", "openai/y"]})
    assert filed.judge_models == ("openai/x", "openai/y")
    # The command line wins over the file, a judge named in pytest's ini too.
    assert _settings({"judges": ["openai/a"]}, {"judges": ["openai/x", "openai/y"]}).judges == ()
    assert _settings(
        {"judge": "openai/ini"}, {"judges": ["openai/x", "openai/y"]}
    ).judge_models == ("openai/ini",)


def test_the_judge_as_a_mapping_with_its_check(tmp_path: Path) -> None:
    s = _settings(
        {},
        {
            "judge": {
                "model": "openai/j",
                "min_kappa": 0.8,
                "on_short": "advisory",
                "labels": "labels.csv",
            }
        },
        base=tmp_path,
    )
    assert s.judge == "openai/j"
    check = s.judge_check
    assert (check.min_kappa, check.on_short, check.active) == (0.8, "advisory", True)
    assert check.labels == str(tmp_path / "labels.csv")
    plain = _settings({"judges": ["openai/j"]})
    assert plain.judge_check.active is False and plain.judge_check.labels == "shipped"
    asked = _settings({"judges": ["openai/j"], "judge_check_run": True})
    assert asked.judge_check.active is True and asked.judge_check.min_kappa is None
    cli = _settings(
        {"judge_check_min_kappa": 0.6}, {"judge": {"model": "openai/j", "min_kappa": 0.9}}
    )
    assert cli.judge_check.min_kappa == 0.6


@pytest.mark.parametrize(
    ("cli", "file", "message"),
    [
        ({}, {"judge": "openai/a", "judges": ["openai/b", "openai/c"]}, "not both"),
        ({}, {"judges": []}, "judges: is empty"),
        ({"judges": ["openai/a", "openai/a"]}, None, "names 'openai/a' twice"),
        ({"judges": ["simulated", "openai/a"]}, None, "cannot include 'simulated'"),
        (
            {"judges": ["openai/a"], "judge_samples": 3, "judge_temperature": 0},
            None,
            "--bsa-judge-samples 3 with --bsa-judge-temperature 0",
        ),
        (
            {"judges": ["openai/a"]},
            {"judge": {"min_kappa": 2}},
            "judge: min_kappa: Input should be less",
        ),
        (
            {"judges": ["openai/a"]},
            {"judge": {"on_short": "skip"}},
            "judge: on_short: Input should be",
        ),
        ({"judges": ["openai/a"]}, {"judge_samples": 0}, "judge_samples"),
    ],
    ids=["both", "empty", "twice", "simulated", "temperature", "kappa", "on-short", "samples"],
)
def test_bad_judge_settings(cli: dict, file: dict | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _settings(cli, file)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bsa-judge-min-kappa=1.2"], "'1.2' is not a kappa between -1 and 1"),
        (["--bsa-judge-samples=0"], "'0' is not a positive whole number"),
        (["--bsa-judge-on-short=maybe"], "invalid choice: 'maybe'"),
        (["--bsa-judge-check", "--bsa-judge-labels=missing.csv"], "missing.csv"),
    ],
)
def test_bad_judge_options_exit_4(pytester, cache_dir, args: list[str], message: str) -> None:
    result = run_bsa(
        pytester, "--bsa-model=simulated", "--bsa-dataset=sample", *args, cache_dir=cache_dir
    )
    assert result.ret == 4
    assert message in result.stderr.str() and "Traceback" not in result.stderr.str()
