"""Make pytest's own ``--junitxml`` file read right on CI dashboards (pure; no pytest import).

pytest writes an xfail as ``<skipped type="pytest.xfail">``, which Jenkins, GitLab, Azure
DevOps and dorny/test-reporter all show as "not run". A BSA instance that missed its criteria
was run and measured: it becomes ``<failure type="bsa.missed">`` (a measured miss, shown red),
while the exit code stays with the gates. Every instance's test case name also carries its
scenario and category (``risk-omission::rumors::<id>``), not only the hash id, because several
dashboards show the name without the class name.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_bsa.reporting.view import REPORT_ONLY

MISSED_TYPE = "bsa.missed"


class JunitCases:
    """The benchmark's test cases as the run reported them: nodeid -> (message, details) of an
    instance that missed its criteria, or None (gates are left as pytest wrote them)."""

    def __init__(self) -> None:
        self.cases: dict[str, tuple[str, str] | None] = {}

    def note(self, report: Any) -> None:
        """One of pytest's test reports (setup, call or teardown)."""
        nodeid = report.nodeid
        if not nodeid.startswith("bsa::") or nodeid.startswith("bsa::gate::"):
            return
        if report.when == "setup":
            self.cases.setdefault(nodeid, None)
        if report.when == "call" and hasattr(report, "wasxfail"):
            message = f"missed its criteria: {report.wasxfail}"
            self.cases[nodeid] = (message, str(report.longrepr or message))

    def fix(self, option: Any, *, report_only: bool) -> None:
        """Rewrite pytest's ``--junitxml`` file, if the run (pytest's ``option``) wrote one."""
        fix_junitxml(
            getattr(option, "xmlpath", None),
            self.cases,
            prefix=getattr(option, "junitprefix", None),
            report_only=report_only,
        )


def fix_junitxml(
    xmlpath: str | None,
    instances: Mapping[str, tuple[str, str] | None],
    *,
    prefix: str | None = None,
    report_only: bool = False,
) -> None:
    """pytest's ``--junitxml`` file (``xmlpath`` as given) after a run: missed instances as
    measured misses, names with scenario and category, REPORT ONLY in every suite's
    properties. Nothing to do without the file or anything to change."""
    if not xmlpath or not (instances or report_only):
        return
    file = Path(os.path.abspath(os.path.expanduser(os.path.expandvars(xmlpath))))
    if not file.is_file():
        return
    properties = {"bsa_verdict": REPORT_ONLY} if report_only else None
    rewrite(file, instances, prefix=prefix, properties=properties)


def case_address(nodeid: str, prefix: str | None = None) -> tuple[str, str]:
    """(classname, name) pytest's junitxml gives the test ``nodeid``."""
    names = nodeid.split("::")
    names[0] = names[0].replace("/", ".").removesuffix(".py")
    classnames = names[:-1]
    if prefix:
        classnames.insert(0, prefix)
    return ".".join(classnames), names[-1]


def rewrite(
    path: Path,
    instances: Mapping[str, tuple[str, str] | None],
    *,
    prefix: str | None = None,
    properties: Mapping[str, str] | None = None,
) -> int:
    """Rename the test cases of ``instances`` (nodeid -> (message, details) of a missed
    instance, or None) and turn the missed ones' ``<skipped>`` into ``<failure>``; add
    ``properties`` to every suite. Returns how many cases were changed."""
    by_address = {case_address(nodeid, prefix): nodeid for nodeid in instances}
    tree = ET.parse(path)
    changed = 0
    for suite in tree.getroot().iter("testsuite"):
        if properties:
            _add_properties(suite, properties)
            changed += 1
        moved = 0
        for case in suite.iter("testcase"):
            nodeid = by_address.get((case.get("classname", ""), case.get("name", "")))
            if nodeid is None:
                continue
            case.set("name", nodeid.split("::", 1)[-1])
            changed += 1
            missed = instances[nodeid]
            skipped = case.find("skipped")
            if missed is None or skipped is None or skipped.get("type") != "pytest.xfail":
                continue
            failure = ET.Element("failure", {"type": MISSED_TYPE, "message": missed[0]})
            failure.text = missed[1]
            case.insert(list(case).index(skipped), failure)
            case.remove(skipped)
            moved += 1
        if moved:
            for attribute, delta in (("skipped", -moved), ("failures", moved)):
                suite.set(attribute, str(int(suite.get(attribute, "0")) + delta))
    if changed:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    return changed


def _add_properties(suite: ET.Element, properties: Mapping[str, str]) -> None:
    holder = suite.find("properties")
    if holder is None:
        holder = ET.Element("properties")
        suite.insert(0, holder)
    for name, value in properties.items():
        ET.SubElement(holder, "property", {"name": name, "value": value})
