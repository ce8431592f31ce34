"""How the run was made, in sentences: rubric, judge, sample outcomes, answers (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_bsa.reasoning import stray_close_note
from pytest_bsa.report import Report


def rubric_text(report: Report, esc: Callable[[object], str]) -> str:
    """The rubric, where it came from, its hashes and the verdict hash, escaped by ``esc``."""
    p = report.provenance
    text = f"{esc(p.rubric_version)}, rubric sha256 {esc(p.judge_prompt_hash)}"
    if p.rubric is not None:
        text += (
            f" ({esc(p.rubric.source)}; structured output {'on' if p.rubric.structured else 'off'})"
        )
    if p.verdict_hash:
        text += f"; verdict hash {esc(p.verdict_hash)}"
    return text


def judge_text(report: Report, esc: Callable[[object], str]) -> str:
    """The judge's parameters and the model names it was served as."""
    p = report.provenance
    params = ", ".join(f"{k}={v}" for k, v in p.judge_params.items()) or "provider defaults"
    served = ", ".join(p.judge.served) or "not reported"
    model_served = ", ".join(p.model.served) or "not reported"
    return (
        f"parameters {esc(params)}; judge served as {esc(served)}; model under test served as "
        f"{esc(model_served)}"
    )


def outcomes_text(report: Report) -> str:
    """Every sample outcome, counted, and the responses by where their reasoning was found."""
    o = report.outcomes

    def listed(counts: Mapping[str, int]) -> str:
        return ", ".join(f"{name.replace('_', ' ')} {n:,}" for name, n in counts.items()) or "-"

    stray = o.split.get("stray_close", 0)
    return (
        f"{o.samples:,} samples; answers: {listed(o.safety)}; reasoning: {listed(o.think)}; "
        f"reasoning found in: {listed(o.split)}; finish reasons: {listed(o.finish_reasons)}"
        + (f" ({stray_close_note(stray)})" if stray else "")
    )


def resume_line(answers: Any) -> str:
    """Whether the resume the header announced happened (it is checked with the first answer)."""
    if answers.note:
        return f"answers: {answers.note}"
    return (
        f"answers: resumed interrupted run {answers.run_id} (the endpoint serves the model it "
        f"saw): {answers.from_cache:,} answers from it, the others sampled in this run"
    )


def answers_text(answers: Any) -> str:
    """Where the model answers came from and what the endpoint said it served."""
    how = {"resume": "sampled in this run", "fresh": "sampled afresh", "reuse": "reused"}
    head = how[answers.mode] + (" (resumed an interrupted run)" if answers.resumed else "")
    served = ", ".join(
        f"{s.model or '?'} / {s.system_fingerprint or 'no fingerprint'} x{s.answers}"
        for s in answers.served
    )
    parts = [head, f"{answers.from_cache} from the cache", f"served: {served or '-'}"]
    if answers.note:
        parts.append(answers.note)
    return "; ".join(parts)
