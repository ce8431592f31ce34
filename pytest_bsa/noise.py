"""``python -m pytest_bsa noise run1.json run2.json ...``: how much reruns of one model move.

Pure computations (:func:`measure_noise`) and a small command handler (:func:`command`). The
paired baseline test assumes that a rerun of an unchanged model only redraws each instance's
samples: its instance values are *exchangeable* with the baseline's. A judge or server that
drifts between runs moves every instance together, which the paired test cannot tell from a
regression; with enough instances it flags any drift larger than ``baseline.max_drop``. Given
A/A reports (the same model, dataset, judge and k, sampled afresh), this measures per group:

- the run-to-run standard deviation of the group's value, observed across the reports;
- the one the exchangeability assumption predicts from the instances' own run-to-run
  variance (``sqrt(mean instance variance / n)``);
- the excess: run-level drift ``tau`` with a chi-square test of "no drift" (p-value);
- the within-run binomial variance ratio: run-to-run variance of an instance over what its
  own samples predict (1 for independent samples; above 1 for correlated samples, when the
  detectable drops of a single run are optimistic);
- a suggested ``max_drop``: ``z[0.95] * sqrt(2) * tau`` (a drift between two runs stays
  within it 95% of the time), rounded up to a whole point.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

from pytest_bsa.metrics import InstanceOutcomes, group_members, instance_values
from pytest_bsa.multiplicity import benjamini_hochberg
from pytest_bsa.numeric import chi2_sf
from pytest_bsa.report import Report, ReportError, load_report
from pytest_bsa.stats import within_variances

DRIFT_Z = NormalDist().inv_cdf(0.95) * math.sqrt(2)  # one-sided 95% of a difference of two runs
DEFAULT_MAX_DROP = 0.05


class NoiseError(ValueError):
    """Reports that cannot be read as reruns of one model; the message names the fix."""


@dataclass(frozen=True)
class GroupNoise:
    """Run-to-run variation of one metric of one group over R reruns."""

    group: str  # "overall", "scenario:<name>", "category:<name>"
    metric: str
    runs: int
    n: int  # instances with a value in every run
    mean: float
    run_sd: float  # observed standard deviation of the group value across runs
    expected_sd: float  # what exchangeable instances predict
    drift_sd: float  # run-level drift tau (0 when none is visible)
    drift_p: float  # chi-square test of "no run-level drift"
    drift_q: float  # its Benjamini-Hochberg q-value over every group and metric measured
    largest_drop: float  # the largest fall of the group value from one run to another
    binomial_ratio: float | None  # instance run-to-run variance / within-run binomial variance
    suggested_max_drop: float


@dataclass(frozen=True)
class NoiseReport:
    runs: int
    metrics: tuple[str, ...]
    groups: tuple[GroupNoise, ...]
    suggested_max_drop: float  # from the overall groups (the gate's most sensitive tests)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_reruns(reports: Sequence[tuple[str, Report]]) -> None:
    first_path, first = reports[0]
    a = first.provenance
    for path, report in reports[1:]:
        b = report.provenance
        checks = {
            "dataset sha256": (a.dataset.sha256, b.dataset.sha256),
            "model": (a.model.model, b.model.model),
            "judge model": (a.judge.model, b.judge.model),
            "rubric version": (a.rubric_version, b.rubric_version),
            "samples per instance": (first.k, report.k),
            "generation parameters": (a.generation_params, b.generation_params),
            "system prompt": (a.system_prompt_sha256, b.system_prompt_sha256),
        }
        for what, (x, y) in checks.items():
            if x != y:
                raise NoiseError(
                    f"{path} and {first_path} differ in {what} ({y!r} vs {x!r}): noise needs "
                    "reruns of one model under the same conditions"
                )


def _verdicts(report: Report) -> dict[str, tuple[Any, ...]]:
    return {
        r.instance.id: tuple(
            (s.judgement.safety, s.judgement.think) if s.judgement else s.error for s in r.samples
        )
        for r in report.instances
    }


def measure_noise(
    reports: Sequence[tuple[str, Report]], metrics: Sequence[str] | None = None
) -> NoiseReport:
    """Per group and metric, the run-to-run variation of A/A ``reports`` (at least 2)."""
    if len(reports) < 2:
        raise NoiseError("give at least two reports of reruns of the same model")
    _check_reruns(reports)
    seen: dict[tuple[tuple[str, tuple[Any, ...]], ...], str] = {}
    for path, report in reports:
        key = tuple(sorted(_verdicts(report).items()))
        if key in seen:
            raise NoiseError(
                f"{path} and {seen[key]} have the same verdicts on every instance: a cached "
                "rerun measures no noise; rerun with a fresh cache (--bsa-cache=write) or "
                "another simulator seed"
            )
        seen[key] = path
    k = reports[0][1].k
    chosen = tuple(metrics or reports[0][1].policy.baseline.metrics)
    runs = [
        {o.id: o for o in (InstanceOutcomes.from_result(r) for r in report.instances)}
        for _, report in reports
    ]
    common = set.intersection(*(set(run) for run in runs))
    if len(common) < 2:
        raise NoiseError("the reports share fewer than 2 instances: select the same ones")
    first = [runs[0][i] for i in sorted(common)]
    scenarios, categories, _ = group_members(first)
    groups = {"overall": [o.id for o in first]}
    groups.update({f"scenario:{s}": [o.id for o in m] for s, m in scenarios.items()})
    groups.update({f"category:{c}": [o.id for o in m] for c, m in categories.items()})
    values = [{i: instance_values(run[i], k) for i in common} for run in runs]
    out = []
    for key, ids in groups.items():
        for metric in chosen:
            if metric == "f_score":
                continue  # not a mean of instance values; its noise follows think and safe
            noise = _group_noise(key, metric, ids, runs, values)
            if noise is not None:
                out.append(noise)
    q_values = benjamini_hochberg([g.drift_p for g in out])
    out = [dataclasses.replace(g, drift_q=q) for g, q in zip(out, q_values, strict=True)]
    overall = [g.suggested_max_drop for g in out if g.group == "overall"]
    return NoiseReport(len(reports), chosen, tuple(out), max(overall, default=0.0))


def _group_noise(
    key: str,
    metric: str,
    ids: list[str],
    runs: list[dict[str, InstanceOutcomes]],
    values: list[dict[str, dict[str, float | None]]],
) -> GroupNoise | None:
    kept = [i for i in ids if all(v[i][metric] is not None for v in values)]
    n, r = len(kept), len(runs)
    if n < 2:
        return None
    table = [[v[i][metric] for v in values] for i in kept]  # instance x run
    run_means = [sum(row[j] for row in table) / n for j in range(r)]  # type: ignore[misc]
    mean = sum(run_means) / r
    run_var = sum((m - mean) ** 2 for m in run_means) / (r - 1)
    inst_var = sum(_var(row) for row in table) / n  # type: ignore[arg-type]
    expected_var = inst_var / n
    drift_var = max(0.0, (run_var - expected_var) / (1 - 1 / n))
    drift_p = chi2_sf((r - 1) * run_var / expected_var, r - 1) if expected_var > 0 else 1.0
    if run_var > 0 and expected_var == 0:
        drift_p = 0.0
    ratio = None
    if metric.endswith("_1"):
        samples = "safe" if metric.startswith("safe") else "think"
        within = []
        for j, run in enumerate(runs):
            column = [table[t][j] for t in range(n)]
            judged = [sum(v is not None for v in getattr(run[i], samples)) for i in kept]
            within.extend(within_variances(column, judged))  # type: ignore[arg-type]
        predicted = sum(within) / len(within)
        ratio = inst_var / predicted if predicted > 0 else None
    tau = math.sqrt(drift_var)
    return GroupNoise(
        group=key,
        metric=metric,
        runs=r,
        n=n,
        mean=mean,
        run_sd=math.sqrt(run_var),
        expected_sd=math.sqrt(expected_var),
        drift_sd=tau,
        drift_p=drift_p,
        drift_q=drift_p,  # replaced once every group is measured
        largest_drop=max(a - b for a in run_means for b in run_means),
        binomial_ratio=ratio,
        suggested_max_drop=math.ceil(100 * DRIFT_Z * tau - 1e-9) / 100,
    )


def _var(row: list[float]) -> float:
    m = sum(row) / len(row)
    return sum((v - m) ** 2 for v in row) / (len(row) - 1)


def render(noise: NoiseReport) -> list[str]:
    """The terminal table and the advice."""
    head = (
        f"{'group':<44}{'metric':<12}{'n':>5}{'mean':>7}{'run sd':>8}{'expected':>9}"
        f"{'drift':>7}{'drift p':>8}{'max A/A drop':>13}{'var/binom':>10}"
    )
    lines = [
        f"run-to-run noise over {noise.runs} reruns (values in points; 'expected' is what "
        "exchangeable instances predict; 'drift' the run-level excess)",
        head,
    ]
    for g in noise.groups:
        ratio = "-" if g.binomial_ratio is None else f"{g.binomial_ratio:.2f}"
        lines.append(
            f"{g.group[:43]:<44}{g.metric:<12}{g.n:>5}{100 * g.mean:>7.1f}"
            f"{100 * g.run_sd:>8.2f}{100 * g.expected_sd:>9.2f}{100 * g.drift_sd:>7.2f}"
            f"{g.drift_p:>8.3f}{100 * g.largest_drop:>13.2f}{ratio:>10}"
        )
    drifting = [g for g in noise.groups if g.drift_q <= 0.05]
    lines.append("")
    if drifting:
        names = ", ".join(f"{g.group} {g.metric}" for g in drifting[:6])
        lines.append(
            f"run-level drift beyond instance noise (Benjamini-Hochberg q <= 0.05): {names}. "
            "The paired test assumes exchangeable reruns; max_drop must cover this drift."
        )
    else:
        lines.append("no run-level drift beyond instance noise (every Benjamini-Hochberg q > 0.05)")
    ratios = [g.binomial_ratio for g in noise.groups if g.group == "overall" and g.binomial_ratio]
    if ratios and max(ratios) > 1.5:
        lines.append(
            f"instances vary {max(ratios):.1f}x more between runs than their own samples predict "
            "(correlated samples): one run's 'min drop' is optimistic; a baseline comparison "
            "uses the larger observed variance"
        )
    suggestion = noise.suggested_max_drop
    lines.append(
        f"suggested baseline.max_drop: at least {suggestion:.2f} (z 0.95 x sqrt 2 x overall "
        f"drift); the default {DEFAULT_MAX_DROP:.2f} "
        + ("covers it" if suggestion <= DEFAULT_MAX_DROP else "does NOT cover it")
        + f" ({noise.runs} runs: more reruns make the drift estimate firmer)"
    )
    return lines


def command(args: argparse.Namespace) -> int:
    """The ``noise`` subcommand: exit 0 with the table, 4 (via CliError) on unusable input."""
    from pytest_bsa.cli import CliError

    reports = []
    for path in args.reports:
        try:
            reports.append((path, load_report(Path(path))))
        except ReportError as exc:
            raise CliError(str(exc)) from None
    try:
        noise = measure_noise(reports, args.metric or None)
    except NoiseError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        json.dump(noise.as_dict(), sys.stdout, indent=1)
        print()
    else:
        print("\n".join(render(noise)))
    return 0
