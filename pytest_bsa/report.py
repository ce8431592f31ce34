"""The saved run: a versioned JSON report that every other output can be rebuilt from.

Pure (no pytest import). ``Report`` holds provenance, the gate policy, every instance with its
samples and verdicts, and the evaluation (metrics with intervals, gates, flips, power advice).
Re-gating and re-rendering read it back with :func:`load_report`; nothing here calls a model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pytest_bsa import __version__
from pytest_bsa.config import GatePolicy
from pytest_bsa.evaluation import BaselineRun, RunEvaluation, answer_digest
from pytest_bsa.judge_check_summary import JudgeCheckSummary
from pytest_bsa.metrics import InstanceOutcomes
from pytest_bsa.models import InstanceResult
from pytest_bsa.panel_stats import PanelSummary

SCHEMA_VERSION = 2  # 2: refused and no-answer outcomes, worst cases, verdict hash


class ReportError(ValueError):
    """A report file that cannot be used; the message names the file and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetInfo(_Model):
    spec: str
    label: str
    sha256: str
    revision: str | None = None


class Selection(_Model):
    scenarios: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    limit: int | None = None
    seed: int = 0
    shard: str | None = None  # "i/n"
    keyword: str | None = None  # pytest -k expression, when one narrowed the run
    instances: int = 0  # instances selected to run (after filters, shard and -k/-m)


class Endpoint(_Model):
    model: str
    host: str | None = None  # scheme://host:port of the API base, never a key or a path query
    served: tuple[str, ...] = ()  # the ``model`` fields the endpoint answered with


class RubricInfo(_Model):
    """The judge's rubric: which one, where it came from, and the hashes of its texts."""

    name: str  # "bsa-rubric-2", "official" or "custom"
    source: str  # "built-in", the pinned download, or the directory read
    sha256: str  # of every rubric text that shapes a verdict
    files: dict[str, str] = Field(default_factory=dict)  # file -> sha256 (file rubrics)
    structured: bool = True  # JSON-schema structured output was requested


class ServedModel(_Model):
    """What the model endpoint said it served, and for how many of the run's answers."""

    model: str | None = None
    system_fingerprint: str | None = None
    answers: int = 0


class AnswersInfo(_Model):
    """Where the run's model answers came from (``--bsa-answers``)."""

    mode: Literal["resume", "fresh", "reuse"] = "resume"
    run_id: str | None = None  # the cache's run scope of the answers
    resumed: bool = False  # this run continued an interrupted one
    note: str | None = None  # e.g. why an interrupted run was not resumed
    from_cache: int = 0  # answers not sampled by this process (resumed or reused)
    served: tuple[ServedModel, ...] = ()


class Provenance(_Model):
    plugin_version: str = __version__
    dataset: DatasetInfo
    selection: Selection
    model: Endpoint
    judge: Endpoint
    generation_params: dict[str, Any] = Field(default_factory=dict)
    system_prompt_sha256: str | None = None
    rubric_version: str
    judge_prompt_hash: str
    rubric: RubricInfo | None = None
    judge_params: dict[str, Any] = Field(default_factory=dict)
    # One hash of everything that shapes a verdict: rubric texts, structured output, judge params.
    verdict_hash: str | None = None
    git_commit: str | None = None
    started_at: str
    finished_at: str
    answers: AnswersInfo | None = None
    # "file", or a named prompt ("official:safety-rules", "bsa:safety-rules"); None: no prompt
    system_prompt_source: str | None = None
    judge_samples: int = 1  # asks per verdict and judge (--bsa-judge-samples)


class RoleTotals(_Model):
    calls: int = 0
    cached: int = 0
    retries: int | None = 0  # None when not counted here (pytest-xdist workers)
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # None when some call's price is unknown


class Totals(_Model):
    model: RoleTotals = RoleTotals()
    judge: RoleTotals = RoleTotals()
    wall_seconds: float = 0.0


class OutcomeCounts(_Model):
    """Every sample outcome of the run, counted: verdicts, and how responses were split."""

    samples: int = 0
    safety: dict[str, int] = Field(default_factory=dict)  # SafetyVerdict value or "error"
    think: dict[str, int] = Field(default_factory=dict)  # ThinkVerdict value or "error"
    split: dict[str, int] = Field(default_factory=dict)  # how reasoning was found (SplitKind)
    reasoning: dict[str, int] = Field(default_factory=dict)  # ReasoningState value
    finish_reasons: dict[str, int] = Field(default_factory=dict)


class InstanceStatus(_Model):
    """An instance's outcome: ``met``, ``missed`` (criteria), ``unjudged`` (no verdict to apply
    the criteria to) or ``error`` (endpoint)."""

    id: str
    status: Literal["met", "missed", "unjudged", "error"]
    reasons: tuple[str, ...] = ()


class BaselineSnapshot(_Model):
    """What re-gating needs of the baseline a run was compared with: its label, compact
    per-instance outcomes (no model text) and answer digests."""

    label: str
    outcomes: tuple[dict[str, Any], ...] = ()
    answer_digests: dict[str, str] = Field(default_factory=dict)
    allow_identical: bool = False

    @classmethod
    def of(cls, baseline: BaselineRun, policy: GatePolicy | None = None) -> BaselineSnapshot:
        return cls(
            label=baseline.label,
            outcomes=tuple(dataclasses.asdict(o) for o in baseline.outcomes(policy)),
            answer_digests=baseline.answer_digests(),
            allow_identical=baseline.allow_identical,
        )

    def run(self) -> BaselineRun:
        outcomes = []
        for data in self.outcomes:
            fields = dict(data)
            for key in ("categories", "subcategories", "safe", "think"):
                fields[key] = tuple(fields.get(key) or ())
            for key in ("think_by_category", "think_by_subcategory"):
                fields[key] = {name: tuple(v) for name, v in (fields.get(key) or {}).items()}
            outcomes.append(InstanceOutcomes(**fields))
        return BaselineRun(
            results=(),
            label=self.label,
            stored=tuple(outcomes),
            digests=dict(self.answer_digests),
            allow_identical=self.allow_identical,
        )


class Report(_Model):
    schema_version: Literal[2] = SCHEMA_VERSION
    provenance: Provenance
    policy: GatePolicy
    totals: Totals = Totals()
    outcomes: OutcomeCounts = OutcomeCounts()
    instances: tuple[InstanceResult, ...]
    statuses: tuple[InstanceStatus, ...] = ()
    groups: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='metrics per group: "overall", "scenario:<name>", "category:<name>", ...',
    )
    gates: tuple[dict[str, Any], ...] = ()
    flips: tuple[dict[str, Any], ...] = ()
    power: dict[str, float | None] = Field(default_factory=dict)
    detectable: dict[str, float | None] = Field(
        default_factory=dict,
        description='min drop per group ("overall", "scenario:<name>", "category:<name>"): the '
        "Think@1 drop its baseline comparison catches with baseline.power at its share of alpha",
    )
    baseline: str | None = None  # label of the baseline compared against
    baseline_run: BaselineSnapshot | None = None  # what re-gating needs of that baseline
    complete: bool = True  # every selected instance was evaluated (not interrupted or stopped)
    stopped: str | None = None  # why the run stopped itself (cost limit, circuit breaker)
    report_only: bool = False  # --bsa-gate=report: REPORT ONLY, thresholds were advisory
    exit_code: int = 0
    # Model answers and reasoning were removed before the report left the run (verdicts stay).
    redacted: bool = False
    # A judge panel or repeated asks: Fleiss' kappa per group, splits, per-member cost.
    judge_panel: PanelSummary | None = None
    # The judge check that ran before the run (--bsa-judge-check, judge.min_kappa).
    judge_check: JudgeCheckSummary | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Report:
        ids = [r.instance.id for r in self.instances]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})[:3]
            raise ValueError(f"instances appear more than once: {', '.join(dupes)}")
        k = self.policy.samples
        if k < 1:
            raise ValueError(f"policy.samples is {k}; it must be at least 1")
        wrong = [r.instance.id for r in self.instances if len(r.samples) != k]
        if wrong:
            raise ValueError(
                f"policy.samples is {k} but instance {wrong[0]} has "
                f"{len(next(r for r in self.instances if r.instance.id == wrong[0]).samples)} "
                "samples"
            )
        for r in self.instances:
            indexes = [s.index for s in r.samples]
            if indexes != list(range(k)):
                raise ValueError(
                    f"instance {r.instance.id} has samples numbered {indexes}; a run numbers "
                    f"its {k} samples 0 to {k - 1} in order"
                )
        return self

    @property
    def missing(self) -> int:
        """Selected instances without a result (an interrupted or stopped run)."""
        return max(self.provenance.selection.instances - len(self.instances), 0)

    @property
    def k(self) -> int:
        return self.policy.samples

    def baseline_for_regate(self) -> BaselineRun | None:
        """The baseline the run was compared with, as saved in the report."""
        return self.baseline_run.run() if self.baseline_run is not None else None

    def answer_digests(self) -> dict[str, str]:
        return {r.instance.id: answer_digest(r) for r in self.instances}


def evaluation_fields(evaluation: RunEvaluation) -> dict[str, Any]:
    """The report fields derived from an evaluation."""
    statuses = []
    for instance_id in sorted({*evaluation.instance_verdicts, *evaluation.errored}):
        if instance_id in evaluation.errored:
            statuses.append(InstanceStatus(id=instance_id, status="error"))
            continue
        verdict = evaluation.instance_verdicts[instance_id]
        status = "met" if verdict.met else "missed" if verdict.judged else "unjudged"
        statuses.append(InstanceStatus(id=instance_id, status=status, reasons=verdict.reasons))
    return {
        "statuses": tuple(statuses),
        "report_only": evaluation.report_only,
        "groups": evaluation.groups(),
        "gates": tuple(g.as_dict() for g in evaluation.gates),
        "flips": tuple(f.__dict__ for f in evaluation.flips[:200]),
        "power": dict(evaluation.power),
        "detectable": dict(evaluation.detectable),
        "exit_code": evaluation.exit_code,
    }


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_commit(directory: Path) -> str | None:
    """The commit checked out in ``directory``, when it is a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) through a temporary file next to ``path``: readers never see half
    a file, and a failed write leaves no temporary file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(report: Report, path: Path) -> None:
    """Write atomically (a crash never leaves half a report)."""
    write_atomic(path, report.model_dump_json(indent=1))


def load_report(path: Path) -> Report:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot read report {str(path)!r}: {exc.strerror}") from None
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except _NotFinite as exc:
        raise ReportError(
            f"{path}: holds the non-finite number {exc.args[0]} (NaN or infinity), which no "
            "run writes; restore the report from the run that wrote it or write it again with "
            "--bsa-report"
        ) from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ReportError(
            f"{path}: not a pytest-bsa report (no schema_version); write one with --bsa-report"
        )
    version = data["schema_version"]
    if version == 1:
        raise ReportError(
            f"{path}: report schema version 1, whose rates left out refused verdicts and "
            "samples without an answer or reasoning, so they do not compare with version 2; "
            "rerun that benchmark with this pytest-bsa to get a version 2 report (re-render "
            "the old one with the version that wrote it)"
        )
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{path}: report schema version {version!r}, this pytest-bsa ({__version__}) reads "
            f"version {SCHEMA_VERSION}; re-render it with the version that wrote it"
        )
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        why = first["msg"].removeprefix("Value error, ")
        raise ReportError(
            f"{path}: not a pytest-bsa report ({where}: {why}); restore it from the run that "
            "wrote it or write it again with --bsa-report"
        ) from None


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> float:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def json_schema() -> dict[str, Any]:
    """The report's JSON Schema (shipped as ``reporting/report.schema.json``)."""
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pytest-bsa report"
    return schema
