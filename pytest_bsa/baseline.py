"""Loading a saved report as a baseline, and refusing comparisons that would mislead (pure)."""

from __future__ import annotations

from pathlib import Path

from pytest_bsa.evaluation import BaselineRun
from pytest_bsa.report import Report, ReportError, load_report

OVERRIDE = "--bsa-baseline-allow-mismatch"


class BaselineMismatch(ReportError):
    """The baseline was made under conditions that make a paired comparison meaningless."""


def mismatches(
    baseline: Report,
    *,
    dataset_sha256: str,
    judge_model: str,
    rubric_version: str,
    samples: int,
    verdict_hash: str | None = None,
    judge_served: tuple[str, ...] = (),
) -> list[str]:
    """What differs between the baseline's conditions and this run's, in sentences.

    ``verdict_hash`` covers everything that shapes a verdict (rubric texts, structured output,
    judge parameters); ``judge_served`` (the judge's served model names) is compared when both
    runs recorded one.
    """
    prov = baseline.provenance
    problems = []
    if prov.dataset.sha256 != dataset_sha256:
        problems.append(
            f"dataset sha256 {prov.dataset.sha256[:12]}… differs from this run's "
            f"{dataset_sha256[:12]}… (different benchmark file)"
        )
    if prov.judge.model != judge_model:
        problems.append(
            f"judge model {prov.judge.model!r} differs from this run's {judge_model!r} "
            "(a different judge labels differently: a change would be the judge's, not the model's)"
        )
    if prov.rubric_version != rubric_version:
        problems.append(
            f"rubric version {prov.rubric_version!r} differs from this run's {rubric_version!r}"
        )
    elif verdict_hash is not None and prov.verdict_hash != verdict_hash:
        problems.append(
            f"verdict hash {prov.verdict_hash or 'none'} differs from this run's {verdict_hash} "
            "(the rubric text, structured output or judge parameters changed)"
        )
    served = prov.judge.served
    if served and judge_served and set(served) != set(judge_served):
        problems.append(
            f"the judge answered as {', '.join(served)} in the baseline but as "
            f"{', '.join(judge_served)} here (the provider changed the model behind the name)"
        )
    if baseline.k != samples:
        problems.append(f"samples per instance {baseline.k} differ from this run's {samples}")
    return problems


def load_baseline(
    path: Path,
    *,
    dataset_sha256: str,
    judge_model: str,
    rubric_version: str,
    samples: int,
    verdict_hash: str | None = None,
    judge_served: tuple[str, ...] = (),
    allow_mismatch: bool = False,
    override: str = OVERRIDE,
) -> tuple[BaselineRun, Report]:
    """Read and check a baseline; raises :class:`BaselineMismatch` explaining the refusal."""
    report = load_report(path)
    problems = mismatches(
        report,
        dataset_sha256=dataset_sha256,
        judge_model=judge_model,
        rubric_version=rubric_version,
        samples=samples,
        verdict_hash=verdict_hash,
        judge_served=judge_served,
    )
    if problems and not allow_mismatch:
        listed = "\n  - ".join(problems)
        raise BaselineMismatch(
            f"refusing to compare with baseline {path}:\n  - {listed}\n"
            f"Rerun the baseline under the same conditions, or pass {override} to compare "
            "anyway (the verdict then mixes both changes)."
        )
    return BaselineRun(results=report.instances, label=path.name), report
