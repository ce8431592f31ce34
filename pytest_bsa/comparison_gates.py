"""A decided baseline comparison as a gate: its verdict, its numbers and the sentence that
says why (passed, failed, or not measurable with the observed change; pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_bsa.comparison import BaselineTest, p_text, plan_tests, points_text, share_text
from pytest_bsa.config import BaselineConfig
from pytest_bsa.gate import GateResult
from pytest_bsa.metrics import InstanceOutcomes


def baseline_gates(
    current: Sequence[InstanceOutcomes],
    baseline: Sequence[InstanceOutcomes],
    cfg: BaselineConfig,
    k: int,
    label: str,
    *,
    seed: int = 0,
) -> list[GateResult]:
    """The gate results of a comparison with a baseline run, in level, group, metric order."""
    return [gate_result(t, cfg, label) for t in plan_tests(current, baseline, cfg, k, seed=seed)]


def gate_result(t: BaselineTest, cfg: BaselineConfig, label: str) -> GateResult:
    """A decided test as a gate: passed or failed when it blocks, else not measurable."""
    where = "overall" if t.level == "overall" else f"{t.level} {t.group!r}"
    c = t.comparison
    flagged = t.q_value is not None and t.q_value <= cfg.alpha
    extra: dict[str, Any] = {
        "p_value": None if c is None else c.p_value,
        "p_adjusted": t.p_adjusted,
        "q_value": t.q_value,
        "alpha_share": t.alpha,
        "power": t.power,
        "detectable_drop": t.detectable,
        "n_shared": t.n,
        "blocking": t.blocking,
        "flagged": flagged,
    }
    if c is None:
        sentence = (
            f"{t.metric} of {where} is not measurable (n = {t.n}: fewer than 2 "
            f"instances shared with baseline {label} have a value in both runs)"
        )
        return GateResult(
            t.level,  # type: ignore[arg-type]
            t.group,
            t.metric,
            cfg.max_drop,
            None,
            None,
            "not_measurable",
            sentence,
            kind="baseline",
            **extra,
        )
    change = (
        f"went from {c.baseline:.3f} ({label}) to {c.current:.3f} on {c.n_shared} shared "
        f"instances ({c.delta:+.3f}, 95% CI {c.ci[0]:+.3f} to {c.ci[1]:+.3f}, one-sided "
        f"p={p_text(c.p_value)}"
    )
    flag = f"; flagged by Benjamini-Hochberg (q={p_text(t.q_value)})" if flagged else ""
    if not t.blocking:
        sentence = (
            f"{t.metric} of {where} is not measurable ({t.problem}); advisory: it {change}){flag}"
        )
        status = "not_measurable"
    else:
        failed = (t.p_adjusted or 1.0) <= cfg.alpha + 1e-12
        holm = f"Holm-adjusted p={p_text(t.p_adjusted)} {'<=' if failed else '>'} {cfg.alpha:g}"
        if failed:
            verdict = f"a significant drop larger than the allowed {cfg.max_drop:.3f}"
        else:
            verdict = (
                f"no significant drop beyond {cfg.max_drop:.3f} (a "
                f"{points_text(cfg.power_drop)}-point drop would be caught {share_text(t.power)} "
                "of the time)"
            )
        sentence = f"{t.metric} of {where} {change}, {holm}): {verdict}{'' if failed else flag}"
        status = "failed" if failed else "passed"
    return GateResult(
        t.level,  # type: ignore[arg-type]
        t.group,
        t.metric,
        cfg.max_drop,
        c.delta,
        c.ci,
        status,  # type: ignore[arg-type]
        sentence,
        kind="baseline",
        **extra,
    )
