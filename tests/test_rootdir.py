"""Configuration is found where the user is, whatever the spelling of a path-valued option.

pytest decides its rootdir before plugins add their options (pytest#8846): in ``--bsa-dataset
/elsewhere/x.csv`` the value looks like a test path. Every path-valued ``--bsa-*`` option is run
here both as ``--opt=value`` and ``--opt value`` with the value in a directory outside the
project: the project's ``[tool.bsa]`` and ``bsa_*`` ini values apply, the rootdir stays the
project, nothing is written next to the value, and both spellings end alike.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO, run_bsa

from pytest_bsa.rootdir import may_be_affected

PYPROJECT = """\
[tool.pytest.ini_options]
bsa_samples = "2"

[tool.bsa]
thresholds = { overall = { safe_at_1 = 0.5 } }
"""
UNSAFE = "default: {safe: false, covered: true}\n"  # every answer unsafe: safe_at_1 = 0
CONFIG = "thresholds:\n  overall: {safe_at_1: 0.5}\n"
PATH_OPTIONS = (
    "--bsa-dataset",
    "--bsa-config",
    "--bsa-system-prompt",
    "--bsa-simulate-script",
    "--bsa-cache-dir",
    "--bsa-baseline",
    "--bsa-report",
    "--bsa-junit",
    "--bsa-markdown",
    "--bsa-html",
    "--bsa-export-upstream",
)


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory outside the project, holding one existing file per path-valued option."""
    where = tmp_path_factory.mktemp("elsewhere")
    shutil.copy(REPO / "pytest_bsa" / "data" / "sample.csv", where / "dataset.csv")
    (where / "bsa.yaml").write_text(CONFIG, encoding="utf-8")
    (where / "system.txt").write_text("Answer carefully.", encoding="utf-8")
    (where / "unsafe.yaml").write_text(UNSAFE, encoding="utf-8")
    (where / "cache").mkdir()
    for name in ("old.json", "old.xml", "old.md", "old.html", "old.csv"):
        (where / name).write_text("from an earlier run\n", encoding="utf-8")
    return where


def _value(option: str, outside: Path) -> Path:
    return (
        outside
        / {
            "--bsa-dataset": "dataset.csv",
            "--bsa-config": "bsa.yaml",
            "--bsa-system-prompt": "system.txt",
            "--bsa-simulate-script": "unsafe.yaml",
            "--bsa-cache-dir": "cache",
            "--bsa-baseline": "baseline.json",
            "--bsa-report": "old.json",
            "--bsa-junit": "old.xml",
            "--bsa-markdown": "old.md",
            "--bsa-html": "old.html",
            "--bsa-export-upstream": "old.csv",
        }[option]
    )


@pytest.fixture(scope="module")
def baseline(outside: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved run the --bsa-baseline cases compare with (made with '=' spellings)."""
    path = outside / "baseline.json"
    work = tmp_path_factory.mktemp("baseline-run")
    shutil.copy(outside / "unsafe.yaml", work / "unsafe.yaml")
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--bsa-model=simulated",
            "--bsa-dataset=sample", "--bsa-limit=3", "--bsa-samples=2", "--bsa-gate=report",
            "--bsa-simulate-script=unsafe.yaml", "--bsa-cache=off", f"--bsa-report={path}",
        ],
        cwd=work, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    return path


@pytest.mark.parametrize("spelling", ["equals", "space"])
@pytest.mark.parametrize("option", PATH_OPTIONS)
def test_a_path_value_outside_the_project_keeps_config_and_rootdir(
    pytester: pytest.Pytester,
    outside: Path,
    baseline: Path,
    cache_dir: Path,
    option: str,
    spelling: str,
) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    (pytester.path / "unsafe.yaml").write_text(UNSAFE, encoding="utf-8")
    value = _value(option, outside)
    given = [f"{option}={value}"] if spelling == "equals" else [option, str(value)]
    args = ["--bsa-model=simulated", "--bsa-limit=3", "--bsa-cache=off", *given]
    if option != "--bsa-dataset":
        args.append("--bsa-dataset=sample")
    if option != "--bsa-simulate-script":
        args.append("--bsa-simulate-script=unsafe.yaml")
    before = {p: p.stat().st_mtime_ns for p in outside.rglob("*")}
    result = run_bsa(pytester, *args, "--bsa-gate=thresholds", cache_dir=cache_dir)
    out = result.stdout.str()

    assert result.ret == 1, out + result.stderr.str()
    result.stdout.fnmatch_lines([f"rootdir: {pytester.path}*"])
    result.stdout.fnmatch_lines(["*| 3 instances selected x 2 samples |*"])  # bsa_samples = 2
    source = (
        f"bsa: config {outside / 'bsa.yaml'}"
        if option == "--bsa-config"
        else f"bsa: config {pytester.path / 'pyproject.toml'} [tool.bsa]"
    )
    result.stdout.fnmatch_lines([f"{source}; bsa_samples from {pytester.path / 'pyproject.toml'}"])
    result.stdout.fnmatch_lines(["GATE FAILED overall::safe_at_1: safe_at_1 of overall is 0.000*"])
    # Nothing is written next to the value (outputs only where they were asked for).
    assert not (outside / ".pytest_cache").exists()
    assert (pytester.path / ".pytest_cache").is_dir()
    changed = {p for p in outside.rglob("*") if before.get(p) != p.stat().st_mtime_ns}
    assert changed <= ({value} if value.suffix in (".json", ".xml", ".md", ".html", ".csv") and
                       option != "--bsa-baseline" else set())  # fmt: skip


def test_an_unaffected_command_line_costs_nothing() -> None:
    assert not may_be_affected(["--bsa-model=x", "--bsa-dataset=/data/x.csv", "tests"])
    assert may_be_affected(["--bsa-model=x", "--bsa-dataset", "/data/x.csv"])


def _foreign(pytester: pytest.Pytester, tmp_path_factory, ini: str) -> tuple[Path, Path]:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    (pytester.path / "unsafe.yaml").write_text(UNSAFE, encoding="utf-8")
    other = tmp_path_factory.mktemp("other-project")
    (other / "pytest.ini").write_text(ini, encoding="utf-8")
    shutil.copy(REPO / "pytest_bsa" / "data" / "sample.csv", other / "dataset.csv")
    return other, other / "dataset.csv"


def test_a_foreign_ini_next_to_the_value_is_not_read(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> None:
    other, dataset = _foreign(pytester, tmp_path_factory, "[pytest]\nbsa_samples = 4\n")
    result = run_bsa(
        pytester, "--bsa-model=simulated", "--bsa-dataset", str(dataset), "--bsa-limit=3",
        "--bsa-simulate-script=unsafe.yaml", "--bsa-cache=off", "--bsa-gate=thresholds",
        cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines([f"rootdir: {pytester.path}*", "*x 2 samples*"])
    assert not (other / ".pytest_cache").exists()


def test_a_foreign_ini_that_changed_the_session_is_refused(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> None:
    """Its pythonpath was already applied: the run stops and names the '=' spelling."""
    other, dataset = _foreign(pytester, tmp_path_factory, "[pytest]\npythonpath = .\n")
    result = run_bsa(
        pytester, "--bsa-model=simulated", "--bsa-dataset", str(dataset),
        "--bsa-cache=off", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"read the config file {other / 'pytest.ini'}" in err
    assert "write the option with '='" in err
    assert "Traceback" not in err


# -- relative paths in files resolve against the file that holds them (review 1) -------------

INI = """\
[pytest]
bsa_config = conf/bsa.yaml
bsa_dataset = data/ds.csv
bsa_cache_dir = cache
bsa_report = reports/run.json
"""
TOOL_BSA = """\
[tool.pytest.ini_options]
bsa_report = "reports/run.json"

[tool.bsa]
dataset = "data/ds.csv"
system_prompt = "prompts/system.txt"
thresholds = { overall = { safe_at_1 = 0.5 } }
"""


def _project(root: Path) -> Path:
    (root / "data").mkdir()
    shutil.copy(REPO / "pytest_bsa" / "data" / "sample.csv", root / "data" / "ds.csv")
    (root / "unsafe.yaml").write_text(UNSAFE, encoding="utf-8")
    sub = root / "tests" / "deeper"
    sub.mkdir(parents=True)
    return sub


@pytest.mark.parametrize("where", ["pytest.ini", "pyproject.toml"])
def test_relative_paths_in_the_ini_file_and_tool_bsa_follow_the_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Review 1: from a subdirectory, bsa_config = bsa.yaml was looked for in the subdirectory
    (exit 4) and bsa_report = reports/run.json written into it; the header left bsa_report out."""
    root = pytester.path
    sub = _project(root)
    if where == "pytest.ini":
        (root / "conf").mkdir()
        (root / "conf" / "bsa.yaml").write_text(CONFIG, encoding="utf-8")
        (root / "pytest.ini").write_text(INI, encoding="utf-8")
    else:
        (root / "prompts").mkdir()
        (root / "prompts" / "system.txt").write_text("Answer carefully.", encoding="utf-8")
        (root / "pyproject.toml").write_text(TOOL_BSA, encoding="utf-8")
    monkeypatch.chdir(sub)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--bsa-model=simulated",
        "--bsa-limit=3", "--bsa-samples=2", f"--bsa-simulate-script={root / 'unsafe.yaml'}",
        *(["--bsa-cache=off"] if where == "pyproject.toml" else []),
    )  # fmt: skip
    out = result.stdout.str()
    assert result.ret == 1, out + result.stderr.str()  # measured, and the unsafe model failed
    result.stdout.fnmatch_lines(["GATE FAILED overall::safe_at_1: safe_at_1 of overall is 0.000*"])
    report = root / "reports" / "run.json"
    assert report.is_file() and not (sub / "reports").exists()
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["provenance"]["dataset"]["spec"] == str(root / "data" / "ds.csv")
    if where == "pytest.ini":
        result.stdout.fnmatch_lines(
            [
                f"bsa: config {root / 'conf' / 'bsa.yaml'}; bsa_dataset, bsa_cache_dir, "
                f"bsa_config, bsa_report from {root / 'pytest.ini'}"
            ]
        )
        assert (root / "cache").is_dir() and not (sub / "cache").exists()
    else:
        result.stdout.fnmatch_lines(
            [
                f"bsa: config {root / 'pyproject.toml'} [tool.bsa]; bsa_report from "
                f"{root / 'pyproject.toml'}"
            ]
        )
        assert data["provenance"]["system_prompt_sha256"]


def test_rebase_paths_leaves_keywords_and_absolute_paths() -> None:
    from pytest_bsa.config import parse_file_config, rebase_paths

    base = Path("/project")
    fc = parse_file_config(
        {
            "dataset": "data/ds.csv",
            "system_prompt": "p.txt",
            "rubric": "rubrics/mine",
            "judge": {"model": "openai/j", "labels": "labels.csv"},
        },
        "test",
    )
    moved = rebase_paths(fc, base)
    assert moved.dataset == "/project/data/ds.csv" and moved.system_prompt == "/project/p.txt"
    assert moved.rubric == "/project/rubrics/mine" and moved.judge.labels == "/project/labels.csv"
    kept = parse_file_config(
        {"dataset": "sample", "system_prompt": "official:safety-rules", "rubric": "official",
         "judge": {"model": "openai/j", "labels": "shipped"}},
        "test",
    )  # fmt: skip
    assert rebase_paths(kept, base) == kept
    absolute = parse_file_config({"dataset": "/data/ds.csv", "rubric": "bsa"}, "test")
    assert rebase_paths(absolute, base) == absolute
