"""Golden files: every renderer's output on fixed reports stays byte-identical.

The reports are ``tests/data/golden/*.json`` (built once by :mod:`golden`); each renderer's
output on them is compared byte for byte with the file saved next to them. A change that is
meant to alter an output regenerates the files with ``BSA_UPDATE_GOLDEN=1 pytest
tests/test_golden.py`` and says why in its commit; the diff of the golden file shows the change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from golden import GOLDEN, build_all

from pytest_bsa.report import Report, load_report
from pytest_bsa.reporting import terminal
from pytest_bsa.reporting.html import render_html
from pytest_bsa.reporting.junit import render_junit
from pytest_bsa.reporting.markdown import render_markdown
from pytest_bsa.reporting.pytest_junit import rewrite
from pytest_bsa.reporting.upstream import export_upstream

UPDATE = os.environ.get("BSA_UPDATE_GOLDEN") == "1"
REPORTS = ("gated", "report-only")


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    if UPDATE:
        for name, report in build_all().items():
            if name == "base":  # only its metrics are shown (the before/after table)
                report = report.model_copy(update={"instances": ()})
            (GOLDEN / f"{name}.json").write_text(report.model_dump_json(), encoding="utf-8")
    return {name: load_report(GOLDEN / f"{name}.json") for name in ("base", *REPORTS, "clean")}


def check(name: str, text: str) -> None:
    """``text`` equals the golden file ``name`` (or replaces it under BSA_UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(text.encode("utf-8"))
    expected = path.read_bytes().decode("utf-8")
    assert text == expected, f"{name} changed; diff it against {path}"


def terminal_text(report: Report) -> str:
    """The end-of-run table and footer the terminal shows for the run saved in ``report``."""
    return "\n".join([*terminal.table_lines(report), *terminal.footer_lines(report)]) + "\n"


@pytest.mark.parametrize("name", REPORTS)
def test_markdown(reports: dict[str, Report], name: str) -> None:
    check(f"{name}.md", render_markdown(reports[name]))


def test_markdown_full_with_the_baseline_table(reports: dict[str, Report]) -> None:
    text = render_markdown(reports["gated"], full=True, baseline=reports["base"])
    check("gated-full.md", text)


def test_markdown_cut_to_a_small_limit(reports: dict[str, Report]) -> None:
    check("gated-8000.md", render_markdown(reports["gated"], full=True, limit=8_000))


@pytest.mark.parametrize("name", REPORTS)
def test_html(reports: dict[str, Report], name: str) -> None:
    check(f"{name}.html", render_html(reports[name]))


@pytest.mark.parametrize("name", [*REPORTS, "clean"])
def test_terminal_table_and_footer(reports: dict[str, Report], name: str) -> None:
    check(f"{name}.terminal.txt", terminal_text(reports[name]))


@pytest.mark.parametrize("name", REPORTS)
def test_junit_by_category(reports: dict[str, Report], name: str) -> None:
    check(f"{name}.junit.xml", render_junit(reports[name]))


def test_upstream_export(reports: dict[str, Report], tmp_path: Path) -> None:
    export_upstream(reports["gated"], tmp_path / "upstream.csv")
    check("gated.upstream.csv", (tmp_path / "upstream.csv").read_bytes().decode("utf-8"))


def test_pytest_junitxml_rewrite(tmp_path: Path) -> None:
    """pytest's own --junitxml file as the session rewrites it (a missed instance, a met one,
    a gate and a user's own xfail; REPORT ONLY in every suite)."""
    path = tmp_path / "pytest.xml"
    path.write_bytes((GOLDEN / "pytest-junit.in.xml").read_bytes())
    missed = "missed its criteria: 2 of 3 answers unsafe; 1 of 3 reasoning traces missed the risk"
    cases = {
        "bsa::risk-omission::rumors::" + "a" * 32: (missed, f"{missed} <details & more>"),
        "bsa::cognitive-shortcut::rumors::" + "b" * 32: None,
    }
    rewrite(path, cases, prefix="ci", properties={"bsa_verdict": "REPORT ONLY"})
    check("pytest-junit.out.xml", path.read_bytes().decode("utf-8"))
