"""JUnit XML from a saved run: one ``<testsuite>`` per primary risk category, plus ``overall``.

Pure (no pytest import). Each category suite holds that category's instances (an instance with
two categories is in both suites) and its category gates, with the category's metrics as suite
properties. The ``overall`` suite holds the overall, scenario, subcategory and error-budget
gates (and gates of categories this run did not measure). Test case text carries reasons and
judge explanations, never model answers or reasoning. The dialect is described by
``junit.xsd`` next to this module.

An instance that missed its criteria was run and measured: it is a ``<failure
type="bsa.missed">`` in every gate mode (dashboards show ``<skipped>`` as "not run"); whether
the run passed is the gates' verdict. Instance test case names carry scenario and category
(``risk-omission::rumors::<id>``). A measure-only run says REPORT ONLY in every suite's
``verdict`` property, and its advisory threshold misses are skipped (not enforced).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_bsa.report import InstanceStatus, Report, write_atomic
from pytest_bsa.reporting.view import (
    RATE_COLUMNS,
    REPORT_ONLY,
    InstanceResult,
    describe_failure,
    instance_statuses,
    slug,
)

OVERALL_SUITE = "overall"
XSD_PATH = Path(__file__).with_name("junit.xsd")

# Characters XML 1.0 forbids (C0 controls but tab/newline/CR, surrogates, U+FFFE, U+FFFF).
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: object) -> str:
    """``text`` as a string holding only characters XML 1.0 allows (the others are dropped)."""
    return _ILLEGAL_XML.sub("", str(text))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def suite_properties(report: Report, group: Mapping[str, Any] | None) -> dict[str, str]:
    """Metrics of one group (with 95% intervals) and the run's provenance, as strings."""
    props: dict[str, str] = {}
    if group is not None:
        props["n"] = _fmt(group.get("n_instances"))
        props["k"] = _fmt(group.get("samples", report.k))
        intervals = group.get("intervals") or {}
        for metric in RATE_COLUMNS:
            props[metric] = _fmt(group.get(metric))
            if metric in intervals:
                low, high = intervals[metric]
                props[f"{metric}_ci95"] = f"{low:.6f}-{high:.6f}"
        worst = group.get("worst") or {}
        for metric in RATE_COLUMNS:
            if worst.get(metric) is not None:
                props[f"{metric}_worst"] = _fmt(worst[metric])
        for count in (
            "unjudged_samples",
            "refused_samples",
            "no_answer_samples",
            "no_reasoning_samples",
            "unavailable_samples",
            "error_samples",
            "total_samples",
        ):
            if count in group:
                props[count] = _fmt(group[count])
    prov = report.provenance
    props.update(
        {
            "rubric_version": prov.rubric_version,
            "verdict_hash": prov.verdict_hash or "-",
            "model": prov.model.model,
            "judge": prov.judge.model,
            "dataset": prov.dataset.label,
            "dataset_sha256": prov.dataset.sha256,
            "plugin_version": prov.plugin_version,
            "gate": report.policy.gate,
            "verdict": REPORT_ONLY
            if report.report_only
            else ("failed" if report.exit_code else "passed"),
        }
    )
    return {xml_safe(k): xml_safe(v) for k, v in props.items()}


def instance_case(result: InstanceResult, status: InstanceStatus, category: str) -> Any:
    """The test case of one instance inside ``category``'s suite."""
    from junit_xml import TestCase

    inst = result.instance
    case = TestCase(
        name=xml_safe(f"{slug(inst.scenario)}::{slug(category)}::{inst.id}"),
        classname=f"bsa.{slug(inst.scenario)}.{slug(category)}",
    )
    if status.status == "met":
        return case
    if status.status == "error":
        errors = result.errors
        message = f"{len(errors)} of {len(result.samples)} samples failed: {errors[0]}"
        case.add_error_info(
            message=xml_safe(message),
            output=xml_safe(describe_failure(result, "endpoint errors after all retries")),
            error_type="bsa.endpoint_error",
        )
        return case
    reasons = "; ".join(status.reasons) or "no reason recorded"
    if status.status == "unjudged":
        # Run but not measured: a dashboard must not read it as "not run" (skipped).
        message = f"not judged: {reasons}"
        case.add_failure_info(
            message=xml_safe(message), output=xml_safe(message), failure_type="bsa.unjudged"
        )
        return case
    message = f"missed its criteria: {reasons}"
    output = xml_safe(describe_failure(result, message))
    case.add_failure_info(message=xml_safe(message), output=output, failure_type="bsa.missed")
    return case


def gate_case(gate: Mapping[str, Any]) -> Any:
    """A gate verdict as a test case named like pytest's (``bsa.gate.<where>`` / metric)."""
    from junit_xml import TestCase

    *where, metric = str(gate["name"]).split("::")
    case = TestCase(name=xml_safe(metric), classname=xml_safe(".".join(["bsa", "gate", *where])))
    sentence = xml_safe(gate.get("sentence", ""))
    if gate["status"] == "failed" and gate.get("advisory"):
        advisory = f"{REPORT_ONLY} (advisory, not enforced): {sentence}"
        case.add_skipped_info(message=advisory, output=advisory)
    elif gate["status"] == "failed":
        case.add_failure_info(message=sentence, output=sentence, failure_type="bsa.gate")
    elif gate["status"] == "not_measurable":
        case.add_skipped_info(message=sentence, output=sentence)
    return case


def _suite_of_gate(gate: Mapping[str, Any], categories: Iterable[str]) -> str:
    if gate.get("level") == "category" and gate.get("group") in categories:
        return str(gate["group"])
    return OVERALL_SUITE


def build_suites(report: Report) -> list[Any]:
    """``overall`` then one suite per primary category present, in the report's group order."""
    from junit_xml import TestSuite

    present = {c for r in report.instances for c in r.instance.categories}
    ordered = [key.split(":", 1)[1] for key in report.groups if key.startswith("category:")]
    categories = [c for c in ordered if c in present]
    categories += sorted(present - set(categories))
    statuses = instance_statuses(report)
    cases: dict[str, list[Any]] = {OVERALL_SUITE: [], **{c: [] for c in categories}}
    for result in report.instances:
        status = statuses[result.instance.id]
        for category in result.instance.categories:
            cases[category].append(instance_case(result, status, category))
    for gate in report.gates:
        if gate.get("kind") == "instances":
            continue  # the instances themselves are the test cases
        cases[_suite_of_gate(gate, categories)].append(gate_case(gate))
    timestamp = report.provenance.started_at
    suites = []
    for name, members in cases.items():
        key = OVERALL_SUITE if name == OVERALL_SUITE else f"category:{name}"
        suites.append(
            TestSuite(
                name=xml_safe(name),
                test_cases=members,
                timestamp=xml_safe(timestamp),
                properties=suite_properties(report, report.groups.get(key)),
            )
        )
    return suites


def render_junit(report: Report) -> str:
    """The JUnit XML document as a string."""
    from junit_xml import to_xml_report_string

    text = to_xml_report_string(build_suites(report), prettyprint=True, encoding="utf-8")
    # junit-xml 1.9 writes disabled="0" on <testsuites>, which the common JUnit schemas lack.
    return text.replace('<testsuites disabled="0" ', "<testsuites ", 1)


def write_junit(report: Report, path: Path) -> None:
    """Write the JUnit XML file atomically, UTF-8."""
    write_atomic(Path(path), render_junit(report))
