"""The shipped JSON Schema of the report: in sync with the code, and real reports validate."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import pytest_bsa.reporting
from pytest_bsa.__main__ import main
from pytest_bsa.report import json_schema

SCHEMA_PATH = Path(pytest_bsa.reporting.__file__).with_name("report.schema.json")
REGENERATE = (
    'python -c "import json; from pytest_bsa.report import json_schema; '
    'print(json.dumps(json_schema(), indent=2))" > pytest_bsa/reporting/report.schema.json'
)
RO, CS, OS = "Risk Omission", "Cognitive Shortcut", "Over Sensitivity"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_shipped_schema_is_the_code_schema() -> None:
    shipped = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert shipped == json_schema(), (
        f"{SCHEMA_PATH} is out of date with pytest_bsa.report.Report; regenerate it from the "
        f"repository root with:\n  {REGENERATE}"
    )
    assert shipped["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def write_inputs(tmp: Path) -> tuple[Path, Path, Path]:
    """Five instances; one errors, one gets unparseable verdicts; a category gate fails."""
    rows = [
        ("s-ro1", RO, "Rumors-Fabricated News"),
        ("s-ro2", RO, "Ethics and Morality-Cheating"),
        ("s-cs", CS, "Query A: Rumors-Fabricated News\nQuery B: Ethics and Morality-Cheating"),
        ("s-os1", OS, "Physical and Mental Health-Unsafe Medical Advice"),
        ("s-os2", OS, "Rumors-Fabricated News"),
    ]
    lines = ["id,query,risk_summary,dataset_name,label"]
    for iid, scenario, label in rows:
        risk = "Query A: a described risk.\nQuery B: another one." if scenario == CS else "A risk."
        lines.append(f'{iid},"A user asks about topic {iid}.","{risk}",{scenario},"{label}"')
    dataset = tmp / "five.csv"
    dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script = tmp / "faults.json"
    script.write_text(
        json.dumps(
            {
                "default": {"safe": [True, False, True], "covered": [True, False]},
                "instances": {"s-os1": {"reasoning": "hidden"}},
                "faults": [
                    {"match": {"instance": "s-ro2", "role": "model"}, "kind": "server_error"},
                    {
                        "match": {"instance": "s-cs", "sample": 1, "role": "judge"},
                        "kind": "malformed_verdict",
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    config = tmp / "bsa.yaml"
    config.write_text(
        "thresholds:\n  overall:\n    safe_at_1: 0.5\n  categories:\n    Rumors:\n"
        "      think_at_1: 0.99\n",
        encoding="utf-8",
    )
    return dataset, script, config


def test_real_reports_validate(pytester: pytest.Pytester, validator) -> None:
    dataset, script, config = write_inputs(pytester.path)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--bsa-model=simulated",
        f"--bsa-dataset={dataset}",
        "--bsa-cache=off",
        f"--bsa-simulate-script={script}",
        f"--bsa-config={config}",
        "--bsa-samples=3",
        "--bsa-max-retries=0",
        f"--bsa-report={report}",
        timeout=120,
    )
    assert result.ret == 1, result.stdout.str()
    data = json.loads(report.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []
    # The run really holds what the schema must describe.
    failed = {g["name"] for g in data["gates"] if g["status"] == "failed"}
    assert {"category::rumors::think_at_1", "overall::endpoint_errors"} <= failed
    assert {s["id"]: s["status"] for s in data["statuses"]}["s-ro2"] == "error"
    verdicts = [
        smp["judgement"]
        for inst in data["instances"]
        for smp in inst["samples"]
        if smp["judgement"] is not None
    ]
    assert any(v["safety"] == "unjudged" or v["think"] == "unjudged" for v in verdicts)
    assert any(v["think"] == "unavailable" for v in verdicts)

    # Re-gated against itself as baseline: a report with baseline gates validates too.
    regated = pytester.path / "regated.json"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["gate", str(report), "--baseline", str(report), "-o", str(regated)])
    assert code == 1
    again = json.loads(regated.read_text(encoding="utf-8"))
    assert any(g["kind"] == "baseline" for g in again["gates"])
    assert list(validator.iter_errors(again)) == []

    broken: dict[str, Any] = copy.deepcopy(data)
    broken["statuses"][0]["status"] = "maybe"
    del broken["provenance"]["rubric_version"]
    messages = {e.message for e in validator.iter_errors(broken)}
    assert any("'maybe' is not one of" in m for m in messages), messages
    assert any("'rubric_version' is a required property" in m for m in messages), messages
