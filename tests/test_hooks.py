"""The pytest_bsa_* extension points, used from a conftest.py."""

from __future__ import annotations

import json

import pytest

CONFTEST = """
import json

def pytest_bsa_select(instances, config):
    return [i for i in instances if i.scenario == "Risk Omission"][:4]

done = []

def pytest_bsa_instance_done(result, config):
    done.append(result.instance.id)

def pytest_bsa_report(report, config):
    with open("hooked.json", "w") as f:
        json.dump({"done": sorted(done), "ids": sorted(r.instance.id for r in report.instances),
                   "exit_code": report.exit_code}, f)
"""


def test_hooks_select_observe_and_receive_the_report(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_subprocess(
        "--bsa-model=simulated",
        "--bsa-dataset=sample",
        "--bsa-gate=report",
        "--bsa-cache=off",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["collected 4 items"])
    seen = json.loads((pytester.path / "hooked.json").read_text())
    assert len(seen["ids"]) == 4 and seen["done"] == seen["ids"] and seen["exit_code"] == 0


def test_hooks_are_inert_when_the_plugin_is_inactive(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "hooked.json").exists()
