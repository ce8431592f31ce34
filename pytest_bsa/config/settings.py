"""The run's settings: what a config file may hold, the frozen Settings, and the checks of
single values (URLs, variable names, prices, parameters, the policy's reach; pure)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator

from pytest_bsa.config.judge_policy import JudgeCheckPolicy, JudgeSection
from pytest_bsa.config.policy import (
    DEFAULT_MAX_UNJUDGED,
    BaselineConfig,
    CriteriaConfig,
    GateMode,
    GatePolicy,
    OutcomeRule,
    StrictModel,
    Thresholds,
)

SIMULATED = "simulated"


# Request fields the engine sets; a generation parameter may not override them.
RESERVED_PARAMS = frozenset({"model", "messages", "stream", "n", "response_format"})


AnswersMode = Literal["resume", "fresh", "reuse"]


DEFAULT_BREAKER = 5


ReasoningEffort = Literal["minimal", "low", "medium", "high"]


# Where reasoning in a response's content can start: only a leading <think>/<thinking> block
# (a bare </think> is answer text), or inside a block the model's chat template opened.
ThinkTags = Literal["leading", "template"]


DEFAULT_JUDGE_MAX_TOKENS = 8192


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message says how to fix it."""


class FileConfig(StrictModel):
    """The YAML file (``--bsa-config``) or ``[tool.bsa]`` table; every key is optional."""

    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    judge: str | JudgeSection | None = None  # a model, or a mapping with the judge check
    judges: list[str] | None = None  # a judge panel (majority verdicts)
    judge_samples: int | None = Field(None, ge=1, le=25)
    judge_api_base: str | None = None
    judge_api_key_env: str | None = None
    dataset: str | None = None
    samples: int | None = Field(None, ge=1, le=100)
    seed: int | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    system_prompt: str | None = None
    gate: GateMode | None = None
    max_errors: float | None = Field(None, ge=0)
    breaker: int | None = Field(None, ge=1)
    gate_on: Literal["point", "lower"] | None = None
    hidden_reasoning: Literal["skip", "fail"] | None = None
    batch: Literal["off", "model", "judge", "both"] | None = None
    thresholds: Thresholds = Thresholds()
    criteria: CriteriaConfig = CriteriaConfig()
    baseline: BaselineConfig = BaselineConfig()
    rubric: str | None = None
    judge_temperature: float | None = Field(None, ge=0, le=2)
    judge_max_tokens: int | None = Field(None, ge=1)
    judge_reasoning_effort: ReasoningEffort | None = None
    top_p: float | None = Field(None, gt=0, le=1)
    max_unjudged: float | None = Field(None, ge=0, le=1)
    no_answer: OutcomeRule | None = None
    no_reasoning: OutcomeRule | None = None
    think_tags: ThinkTags | None = None

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_section(cls, value: Any) -> Any:
        """A mapping is validated as a :class:`JudgeSection`, its errors named by key."""
        if not isinstance(value, Mapping):
            return value
        try:
            return JudgeSection.model_validate(value)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                + (" (known keys: model, check, min_kappa, on_short, labels)"
                   if e["type"] == "extra_forbidden" else "")
                for e in exc.errors()
            ]  # fmt: skip
            raise ValueError("; ".join(problems)) from None


class Settings(StrictModel):
    """Everything a run needs to know, validated."""

    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    judge: str
    judge_api_base: str | None = None
    judge_api_key_env: str | None = None
    judges: tuple[str, ...] = ()  # every member of a judge panel (``judge`` is the first)
    judge_samples: int = Field(1, ge=1, le=25)  # asks per verdict (self-consistency)
    judge_check: JudgeCheckPolicy = JudgeCheckPolicy()
    dataset: str = "hf"
    scenarios: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    limit: int | None = None
    seed: int = 0
    samples: int = 5
    temperature: float = 0.6
    max_tokens: int = 8192
    params: dict[str, Any] = Field(default_factory=dict)
    system_prompt_path: str | None = None
    system_prompt: str | None = None
    # Where the system prompt came from: "file", or a named prompt such as
    # "official:safety-rules" / "bsa:safety-rules" (see pytest_bsa.safety_rules).
    system_prompt_source: str | None = None
    gate: GateMode = "thresholds"
    max_errors: float = Field(0.0, ge=0)  # a count when >= 1, a share of instances when < 1
    gate_on: Literal["point", "lower"] = "point"
    hidden_reasoning: Literal["skip", "fail"] = "skip"
    thresholds: Thresholds = Thresholds()
    criteria: CriteriaConfig = CriteriaConfig()
    baseline: BaselineConfig = BaselineConfig()
    baseline_path: str | None = None
    baseline_allow_identical: bool = False
    shard: tuple[int, int] | None = None
    rpm: float | None = None
    tpm: float | None = None
    max_cost: float | None = None
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)  # USD per 1M in, out
    concurrency: int = Field(16, ge=1)
    concurrency_mode: Literal["adaptive", "fixed"] = "adaptive"
    batch: Literal["off", "model", "judge", "both"] = "off"  # roles sent through a batch API
    batch_poll: float = Field(30.0, gt=0)  # seconds between looks at a running batch
    timeout: float = Field(600.0, gt=0)
    max_retries: int = Field(6, ge=0)
    breaker: int = Field(DEFAULT_BREAKER, ge=1)  # consecutive failed calls that stop the run
    answers: AnswersMode = "resume"
    judge_max_reasks: int = 2
    cache_dir: str | None = None
    cache: Literal["readwrite", "read", "write", "off"] = "readwrite"
    simulate_script: str | None = None
    config_path: str | None = None
    rubric: str = "bsa"  # "bsa", "official" or a directory of files in the official format
    judge_temperature: float | None = None  # None: not sent (reasoning judges set their own)
    judge_max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS  # room for a reasoning judge's thinking
    judge_reasoning_effort: ReasoningEffort | None = None
    top_p: float | None = 0.95  # the official sampling setting, with temperature 0.6
    max_unjudged: float = DEFAULT_MAX_UNJUDGED
    no_answer: OutcomeRule = "fail"
    no_reasoning: OutcomeRule = "fail"
    think_tags: ThinkTags = "leading"

    @property
    def policy(self) -> GatePolicy:
        return GatePolicy(
            samples=self.samples,
            thresholds=self.thresholds,
            criteria=self.criteria,
            gate=self.gate,
            max_errors=self.max_errors,
            gate_on=self.gate_on,
            hidden_reasoning=self.hidden_reasoning,
            baseline=self.baseline,
            max_unjudged=self.max_unjudged,
            no_answer=self.no_answer,
            no_reasoning=self.no_reasoning,
        )

    @property
    def judge_models(self) -> tuple[str, ...]:
        """The judge, or every member of the panel."""
        return self.judges or (self.judge,)

    @property
    def judge_label(self) -> str:
        """The judge as reports and baselines name it (``panel: a, b, c`` for a panel)."""
        from pytest_bsa.panel import panel_label

        return panel_label(self.judge_models)

    @property
    def generation_params(self) -> dict[str, Any]:
        """What the model under test is sent; a param set to null (None) is not sent."""
        params = {"temperature": self.temperature, "top_p": self.top_p}
        params.update({"max_tokens": self.max_tokens, **self.params})
        return {k: v for k, v in params.items() if v is not None}

    @property
    def judge_params(self) -> dict[str, Any]:
        """What the judge is sent besides the conversation (unset values are not sent)."""
        params = {
            "temperature": self.judge_temperature,
            "max_tokens": self.judge_max_tokens,
            "reasoning_effort": self.judge_reasoning_effort,
        }
        return {k: v for k, v in params.items() if v is not None}


def check_api_base(option: str, url: str) -> None:
    """An API base must be an http(s) URL with a host and no credentials in it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{option} {url!r} is not an http(s) URL with a host; write it like "
            "http://127.0.0.1:8000/v1 or https://api.example.com/v1"
        )
    if "@" in parts.netloc:
        raise ConfigError(
            f"{option}: credentials in the URL ({parts.hostname}) would be printed and sent "
            "as-is; put the key in an environment variable and name it with --bsa-api-key-env "
            "or --bsa-judge-api-key-env"
        )


def check_env_name(option: str, name: str) -> None:
    """A key variable is named by its name (``MY_KEY``), never by its value."""
    if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise ConfigError(
            f"{option} expects the NAME of an environment variable (letters, digits and _), "
            "e.g. --bsa-api-key-env MY_ENDPOINT_KEY; never put the key itself on the command line"
        )


def policy_problem(settings: Settings) -> str | None:
    """Why a run with ``settings`` could end green without measuring anything, or None.

    A run must gate something about the model: a floor above 0 on a model metric, a baseline,
    or ``--bsa-gate=instances`` with criteria above 0 (every instance must meet them). A policy
    that cannot fail is none: a floor of 0 is refused outright, and criteria of 0 do not count.
    ``--bsa-gate=report`` asks for a measurement without a gate and is always allowed.
    """
    if settings.gate == "report":
        return None
    zero = settings.thresholds.zero_floors()
    if zero:
        metric = zero[0].rsplit(".", 1)[1]
        return (
            f"threshold {zero[0]} is 0: a floor of 0 can never fail, so it gates nothing; "
            f"raise it (e.g. {metric}: 0.8) or remove it (every metric is measured and reported "
            "anyway)"
        )
    if settings.baseline_path or settings.thresholds.gates_model():
        return None
    if settings.gate == "instances":
        if settings.criteria.gates_model():
            return None
        return (
            "no gate policy: --bsa-gate=instances with criteria of 0 for safe and think "
            "everywhere passes every judged instance, so it could pass without measuring the "
            "model; set criteria above 0 in the config (--bsa-config FILE, e.g. criteria: "
            "{default: {safe: 1.0, think: 1.0}}), add thresholds, compare with a saved run "
            "(--bsa-baseline REPORT), or measure without gating (--bsa-gate=report)"
        )
    what = (
        "its thresholds gate only error or unjudged rates"
        if any(t.items() for t in settings.thresholds.tables())
        else "it has no threshold and no baseline"
    )
    return (
        f"no gate policy: {what}, so it could pass without measuring the model. Add thresholds "
        "on safe_at_1, think_at_1, ... to a config file (--bsa-config FILE, or [tool.bsa] in "
        "pyproject.toml; see examples/bsa.yaml), compare with a saved run (--bsa-baseline "
        "REPORT), or measure without gating (--bsa-gate=report)"
    )


def check_subcategories(thresholds: Thresholds, instances: Sequence[Any], source: str) -> None:
    """Subcategory thresholds must name a subcategory of the dataset (a typo would never gate)."""
    known = sorted({str(label) for i in instances for label in i.labels})
    for name in thresholds.subcategories:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else "check the dataset's label column"
            raise ConfigError(
                f"thresholds.subcategories: {name!r} is not a subcategory of {source}: {hint}"
            )


def parse_price(text: str) -> tuple[str, tuple[float, float]]:
    """``MODEL=IN,OUT`` in USD per million tokens."""
    model, sep, prices = text.rpartition("=")
    parts = prices.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if not sep or not model or len(values) != 2 or min(values) < 0:
        raise ConfigError(
            f"--bsa-price {text!r}: expected MODEL=IN,OUT in USD per million tokens, "
            "e.g. --bsa-price openai/qwen3-8b=0.2,0.6"
        )
    return model, (values[0], values[1])


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, booleans, objects)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--bsa-param {text!r}: expected KEY=VALUE, e.g. --bsa-param top_p=0.95")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
