"""What a run will cost before it starts: calls, tokens, dollars and time (pure, no pytest).

Token counts and latencies come from the cache's history of the same model when there is one,
else from the documented defaults below; prompts are measured (4 characters per token), the
judge's as the run's rubric writes them (bsa-rubric-2's are ~500-600 words, with their JSON
schema) plus the text it grades. A judge verdict is an analysis then a label; a reasoning judge
(``--bsa-judge-reasoning-effort``) also thinks; both within ``--bsa-judge-max-tokens``. Every call
is counted (cache hits only make a resumed run cheaper), with two judge verdicts per sample
(fewer when reasoning is hidden, more when the judge must be re-asked), each asked of every
member of a judge panel and as often as ``--bsa-judge-samples`` says. The ceiling prices every
reply at its token limit (``--bsa-max-tokens``, ``--bsa-judge-max-tokens``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pytest_bsa.config import DEFAULT_JUDGE_MAX_TOKENS
from pytest_bsa.models import Instance
from pytest_bsa.rubrics import Rubric
from pytest_bsa.rubrics.bsa import BSA_RUBRIC

CHARS_PER_TOKEN = 4
DEFAULT_MODEL_OUTPUT_TOKENS = 1500  # a reasoning model's trace and answer to one BSA prompt
DEFAULT_JUDGE_OUTPUT_TOKENS = 250  # a verdict: an analysis written first, then the label
# A reasoning judge's thinking per verdict, by --bsa-judge-reasoning-effort (the budgets the
# Anthropic transport and litellm ask for).
JUDGE_THINKING_TOKENS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
DEFAULT_MODEL_LATENCY_S = 20.0
DEFAULT_JUDGE_LATENCY_S = 3.0
JUDGE_CALLS_PER_SAMPLE = 2
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and formatting per message
BATCH_WINDOW = "within 24 h (often much sooner)"
SIMULATED = "simulated"


class PriceLike(Protocol):
    source: str

    def per_call(self, input_tokens: float, output_tokens: float, *, batch: bool) -> float: ...

    def shown(self) -> str: ...  # e.g. "$2.5/$10 per 1M in/out, litellm's price map"


@dataclass(frozen=True)
class PanelPrice:
    """A judge panel's price per verdict: every member reads the same prompt and writes a
    verdict of the same length, so each gets an equal share of the judge's calls and tokens."""

    members: tuple[PriceLike, ...]

    @property
    def source(self) -> str:
        return ", ".join(sorted({p.source for p in self.members}))

    def per_call(self, input_tokens: float, output_tokens: float, *, batch: bool) -> float:
        n = len(self.members)
        return sum(
            p.per_call(input_tokens / n, output_tokens / n, batch=batch) for p in self.members
        )

    def shown(self) -> str:
        return "; ".join(p.shown() for p in self.members)


@dataclass(frozen=True)
class History:
    """Means over a model's completions in the cache."""

    calls: int
    prompt_tokens: float
    completion_tokens: float
    latency_s: float


@dataclass(frozen=True)
class RoleEstimate:
    role: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None: no price known
    price: PriceLike | None
    seconds: float | None  # None: a batch (the provider decides)
    latency_s: float
    basis: str  # where output tokens and latency came from
    batch: bool
    max_output_tokens: int = 0  # the token limit of one reply (0: unknown)

    @property
    def ceiling_usd(self) -> float | None:
        """The cost with every reply at its token limit (None: no price or no limit)."""
        if self.price is None or not self.max_output_tokens:
            return None
        tokens_out = self.calls * self.max_output_tokens
        return self.price.per_call(self.input_tokens, tokens_out, batch=self.batch)


@dataclass(frozen=True)
class RunEstimate:
    model: RoleEstimate
    judge: RoleEstimate
    concurrency: int

    @property
    def cost_usd(self) -> float | None:
        if self.model.cost_usd is None or self.judge.cost_usd is None:
            return None
        return self.model.cost_usd + self.judge.cost_usd

    @property
    def ceiling_usd(self) -> float | None:
        """The cost with every reply at its token limit."""
        if self.model.ceiling_usd is None or self.judge.ceiling_usd is None:
            return None
        return self.model.ceiling_usd + self.judge.ceiling_usd

    @property
    def seconds(self) -> float | None:
        """Wall time at the configured limits (None when a role goes through a batch)."""
        if self.model.seconds is None or self.judge.seconds is None:
            return None
        # The pools work side by side; the last sample still needs its model then judge call.
        tail = self.model.latency_s + self.judge.latency_s
        return max(self.model.seconds, self.judge.seconds) + tail

    def lines(self) -> list[str]:
        """The header / --collect-only lines."""
        m, j = self.model, self.judge
        tokens_in = _tokens(m.input_tokens + j.input_tokens)
        tokens_out = _tokens(m.output_tokens + j.output_tokens)
        lines = [
            f"bsa: estimate: {m.calls:,} model + ~{j.calls:,} judge calls | ~{tokens_in} tokens "
            f"in, ~{tokens_out} out (model answers: {m.basis}) | {self._time_text()}",
            f"bsa: estimate: cost {self._cost_text()}",
        ]
        ceiling = self.ceiling_usd
        simulated = all(r.price and r.price.source == "simulated" for r in self.roles)
        if ceiling is not None and not simulated:
            lines.append(
                f"bsa: estimate: at most ~{_usd(ceiling)} if every reply used its token limit "
                f"(model {m.max_output_tokens:,}, judge {j.max_output_tokens:,} tokens; "
                "--bsa-max-tokens, --bsa-judge-max-tokens)"
            )
        return lines

    def _cost_text(self) -> str:
        total = self.cost_usd
        if total is not None and all(r.price and r.price.source == "simulated" for r in self.roles):
            return "$0 (simulated endpoints)"
        parts = []
        for role in self.roles:
            if role.cost_usd is None or role.price is None:
                parts.append(
                    f"{role.role} unknown (no price for {role.model}: pass --bsa-price "
                    f"{role.model}=IN,OUT in USD per 1M tokens)"
                )
            else:
                batch = ", batch" if role.batch else ""
                parts.append(f"{role.role} {_usd(role.cost_usd)} ({role.price.shown()}{batch})")
        head = f"~{_usd(total)} = " if total is not None else "unknown: "
        return head + " + ".join(parts)

    @property
    def roles(self) -> tuple[RoleEstimate, RoleEstimate]:
        return self.model, self.judge

    def _time_text(self) -> str:
        seconds = self.seconds
        if seconds is None:
            batched = " and ".join(r.role for r in self.roles if r.batch)
            return f"{batched} through a batch API: results {BATCH_WINDOW}"
        return f"~{duration(seconds)} at concurrency {self.concurrency}"

    def refusal(self, max_cost: float) -> str | None:
        """Why a run with ``--bsa-max-cost max_cost`` must not start, or None when it may."""
        total = self.cost_usd
        if total is None:
            unknown = next(r for r in (self.model, self.judge) if r.cost_usd is None)
            return (
                f"--bsa-max-cost {max_cost:g} cannot be checked: no price is known for "
                f"{unknown.model}; pass --bsa-price {unknown.model}=IN,OUT (USD per million "
                "input and output tokens)"
            )
        if total > max_cost:
            return (
                f"the run is estimated to cost ~{_usd(total)} ({self.model.calls:,} model and "
                f"~{self.judge.calls:,} judge calls: model {_usd(self.model.cost_usd or 0.0)}, "
                f"judge {_usd(self.judge.cost_usd or 0.0)}), above --bsa-max-cost "
                f"{max_cost:g}; raise the limit or select fewer instances (--bsa-limit, "
                "--bsa-samples)"
            )
        return None


def estimate_run(
    instances: Sequence[Instance],
    *,
    samples: int,
    system_prompt: str | None,
    max_tokens: int = DEFAULT_MODEL_OUTPUT_TOKENS,
    model: str,
    judge: str,
    model_price: PriceLike | None,
    judge_price: PriceLike | None,
    model_history: History | None = None,
    judge_history: History | None = None,
    concurrency: int = 16,
    rpm: float | None = None,
    tpm: float | None = None,
    batch: frozenset[str] = frozenset(),
    rubric: Rubric = BSA_RUBRIC,
    judge_max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS,
    judge_reasoning_effort: str | None = None,
    judge_asks: int = 1,
) -> RunEstimate:
    """Estimate a run of ``instances`` x ``samples`` (see the module docstring); each verdict is
    asked ``judge_asks`` times (the members of a judge panel times ``--bsa-judge-samples``)."""
    n = len(instances) * samples
    system = len(system_prompt or "") // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS
    model_in = sum(len(i.query) // CHARS_PER_TOKEN for i in instances) * samples
    model_in += n * (system if system_prompt else MESSAGE_OVERHEAD_TOKENS)
    model_out_each, model_latency, model_basis = _means(
        model_history, min(DEFAULT_MODEL_OUTPUT_TOKENS, max_tokens), DEFAULT_MODEL_LATENCY_S
    )
    if model == SIMULATED and model_history is None:
        model_out_each, model_latency, model_basis = 80.0, 0.0, "the simulator's"
    # Each verdict sees the rubric's prompt (and its JSON schema), the request, the risk summary
    # and half of the model's output (the answer, or the reasoning).
    judge_frame = sum(
        judge_prompt_chars(rubric, kind, i) for i in instances for kind in ("safety", "reasoning")
    )
    judge_calls = n * JUDGE_CALLS_PER_SAMPLE * judge_asks
    judge_in = judge_asks * samples * judge_frame // CHARS_PER_TOKEN
    judge_in += round(judge_calls * (model_out_each / 2 + MESSAGE_OVERHEAD_TOKENS))
    verdict_tokens = DEFAULT_JUDGE_OUTPUT_TOKENS + JUDGE_THINKING_TOKENS.get(
        judge_reasoning_effort or "", 0
    )
    judge_out_each, judge_latency, judge_basis = _means(
        judge_history, min(verdict_tokens, judge_max_tokens), DEFAULT_JUDGE_LATENCY_S
    )
    if judge == SIMULATED:
        judge_out_each, judge_latency = 20.0, 0.0
    roles = []
    for role, name, calls, tokens_in, out_each, latency, basis, price, limit in (
        ("model", model, n, model_in, model_out_each, model_latency, model_basis, model_price,
         max_tokens),
        ("judge", judge, judge_calls, judge_in, judge_out_each, judge_latency, judge_basis,
         judge_price, judge_max_tokens),
    ):  # fmt: skip
        tokens_out = round(calls * out_each)
        batched = role in batch
        cost = None if price is None else price.per_call(tokens_in, tokens_out, batch=batched)
        seconds = None
        if not batched:
            seconds = _seconds(calls, tokens_in + tokens_out, latency, concurrency, rpm, tpm)
        roles.append(
            RoleEstimate(
                role, name, calls, tokens_in, tokens_out, cost, price, seconds, latency, basis,
                batched, limit,
            )
        )  # fmt: skip
    return RunEstimate(roles[0], roles[1], concurrency)


def _means(history: History | None, tokens: int, latency: float) -> tuple[float, float, str]:
    if history is None or not history.calls:
        return float(tokens), latency, "defaults (see the README)"
    return (
        history.completion_tokens,
        history.latency_s,
        f"the cache's last {history.calls:,} answers",
    )


def _seconds(
    calls: int, tokens: int, latency: float, concurrency: int, rpm: float | None, tpm: float | None
) -> float:
    seconds = calls * latency / max(1, concurrency)
    if rpm:
        seconds = max(seconds, calls / (rpm / 60.0))
    if tpm:
        seconds = max(seconds, tokens / (tpm / 60.0))
    return seconds


def judge_prompt_chars(rubric: Rubric, kind: str, instance: Instance) -> int:
    """Characters the judge reads for one verdict besides the graded text: the rubric's
    messages and, for structured output, its JSON schema."""
    prompt = rubric.prompt(
        kind,  # type: ignore[arg-type]
        instance,
        "",
        truncated=False,
        structured=rubric.structured,
    )
    chars = sum(len(str(m.get("content", ""))) for m in prompt.messages)
    if prompt.response_format is not None:
        chars += len(json.dumps(prompt.response_format))
    return chars


def _tokens(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.1f}M"
    if count >= 10_000:
        return f"{count / 1e3:.0f}k"
    return f"{count:,}"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def duration(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h20m``."""
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"
