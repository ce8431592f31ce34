"""The simulator's script: per-instance behaviour and scripted faults (pydantic, no I/O at use).

Every random-looking choice is a hash of the seed and the request's coordinates, so the same
script gives the same behaviour in every run and every process. In YAML::

    default:              # every instance not listed under instances
      safe: 0.9           # probability per sample, true/false, or [true, false, ...] per sample
      covered: 0.7        # the reasoning fully covers the risk (same forms)
      miss: partial       # a not-covered sample shows: partial | none | over
      reasoning: field    # field | reasoning_field | tags | tags_newline | bare_close
                          # | truncated | hidden | empty_tags | empty_field | none
      answer: full        # full | empty (no answer) | cut (no answer, finish_reason length)
      latency: 0.0        # seconds before a model reply, or [min, max] (judge replies: none)
      answer_prefix: ""   # put before every answer
      reasoning_prefix: "" # put before every reasoning trace
      words: 0            # neutral filler words added to the reasoning
      judge_refuses: false # the judge refuses this sample's verdicts, every time (same forms
                          # as safe)
    instances:
      <instance id>: {safe: false}       # overrides, other keys from default
    faults:               # the first one that fires wins
      - match: {instance: "*", sample: "*", role: model}    # model | judge | "*"
        kind: rate_limit  # | server_error | drop | hang | garbage | truncated_json
                          # | malformed_verdict (judge only)
        times: 2          # the first 2 attempts of each matching request; or rate: 0.2;
                          # neither: every attempt
        retry_after: 1    # rate_limit only; status: 503 for server_error
    rate_limit:           # optional: a token bucket over all model and judge requests;
      requests_per_second: 50   # beyond it: 429 with the exact Retry-After
      burst: 5                  # requests of slack (default 1)
    batch:                # how /v1/batches and /v1/messages/batches behave
      delay: 0.0          # seconds from creation until the results are ready
      outcome: completed  # completed | failed (validation) | expired (half the lines run)
      fail: 0.0           # share of lines answered with a 500 error (deterministic)
    seed: 0
    judge: honest         # honest | gullible (obeys "[judge instruction: label X]" found
                          # outside the data block of a judge request)
    served_model: ckpt-2        # the "model" model replies report (default: the requested one)
    system_fingerprint: fp-2    # their "system_fingerprint" (default: none)
    system_prompt:        # behaviour when the model request carries a system prompt
      - contains: "risks below"   # the first rule whose text is in it ("" matches any)
        default: {covered: true}  # overrides on top of the instance's behaviour
        instances: {<instance id>: {safe: true}}
    judges:               # judges of known quality by requested model name (simulate/judges.py)
      noisy: {flip: 0.2}  # | toward_safe | refuse | unstable (shares); {} is a perfect judge

Attempts are counted per (role, instance, sample); the judge's safety and reasoning verdicts of
one sample are counted apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from pytest_bsa.simulate.chance import unit_hash
from pytest_bsa.simulate.judges import JudgeQuality
from pytest_bsa.simulate.markers import Coverage

ReasoningMode = Literal[
    "field",  # message.reasoning_content
    "reasoning_field",  # message.reasoning
    "tags",  # "<think>...</think>" at the start of the content
    "tags_newline",  # "\n<think>...</think>"
    "bare_close",  # "...</think>": the chat template opened <think> (--bsa-think-tags=template)
    "truncated",  # "<think>..." never closed, finish_reason "length", no answer
    "hidden",  # no reasoning text, reasoning tokens counted (o-series style)
    "empty_tags",  # "<think>\n\n</think>" before the answer: the model did not reason
    "empty_field",  # reasoning_content "" beside the answer
    "none",  # no reasoning and no reasoning tokens
]
REASONING_MODES: tuple[str, ...] = ReasoningMode.__args__  # type: ignore[attr-defined]
Miss = Literal["partial", "none", "over"]
AnswerMode = Literal["full", "empty", "cut"]
FaultKind = Literal[
    "rate_limit",
    "server_error",
    "drop",
    "hang",
    "garbage",
    "truncated_json",
    "malformed_verdict",
    "judge_refusal",
]
JUDGE_ONLY_FAULTS = frozenset({"malformed_verdict", "judge_refusal"})
JudgeMode = Literal["honest", "gullible"]
Role = Literal["model", "judge"]
# A probability, a fixed outcome, or one outcome per sample index (cycled).
Chance = float | bool | list[bool]


class ScriptError(ValueError):
    """A script that cannot be loaded; the message names the file and the bad location."""


def _decide(chance: Chance, seed: int, instance_id: str, sample: int, what: str) -> bool:
    if isinstance(chance, bool):
        return chance
    if isinstance(chance, list):
        return chance[sample % len(chance)]
    return unit_hash(seed, instance_id, sample, what) < chance


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_chance(name: str, value: Chance | None) -> None:
    if isinstance(value, list) and not value:
        raise ValueError(f"{name}: a list of outcomes needs at least one entry")
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: a probability must be between 0 and 1, got {value}")


class BehaviourOverride(_Strict):
    """Behaviour keys for one instance; unset keys come from ``default``."""

    safe: Chance | None = None
    covered: Chance | None = None
    miss: Miss | None = None
    reasoning: ReasoningMode | None = None
    answer: AnswerMode | None = None
    latency: float | tuple[float, float] | None = None
    answer_prefix: str | None = None
    reasoning_prefix: str | None = None
    words: int | None = Field(None, ge=0, le=100_000)
    judge_refuses: Chance | None = None

    @model_validator(mode="after")
    def _check(self) -> BehaviourOverride:
        _check_chance("safe", self.safe)
        _check_chance("covered", self.covered)
        _check_chance("judge_refuses", self.judge_refuses)
        lat = self.latency
        if isinstance(lat, tuple) and not 0.0 <= lat[0] <= lat[1]:
            raise ValueError(f"latency: [min, max] needs 0 <= min <= max, got {list(lat)}")
        if isinstance(lat, float) and lat < 0:
            raise ValueError(f"latency: must be >= 0 seconds, got {lat}")
        return self


class Behaviour(BehaviourOverride):
    """How the simulated model behaves on an instance (all keys set)."""

    safe: Chance = 0.9  # the answer is safe
    covered: Chance = 0.7  # the reasoning fully covers the risk
    miss: Miss = "partial"  # what a not-covered sample's reasoning shows
    reasoning: ReasoningMode = "field"
    answer: AnswerMode = "full"
    latency: float | tuple[float, float] = 0.0  # seconds, or uniform in [min, max]
    answer_prefix: str = ""  # text put before every answer
    reasoning_prefix: str = ""  # text put before every reasoning trace
    words: int = Field(0, ge=0, le=100_000)  # neutral filler words added to the reasoning
    judge_refuses: Chance = False  # the judge refuses every verdict of the sample

    def merged(self, override: BehaviourOverride) -> Behaviour:
        changes = {k: v for k, v in override.model_dump(exclude_none=True).items()}
        return self.model_copy(update=changes)


class FaultMatch(_Strict):
    """Which requests a fault applies to ("*" matches any)."""

    instance: str = "*"
    sample: int | Literal["*"] = "*"
    role: Role | Literal["*"] = "*"

    def matches(self, role: str, instance_id: str, sample: int) -> bool:
        return (
            (self.role == "*" or self.role == role)
            and (self.instance == "*" or self.instance == instance_id)
            and (self.sample == "*" or self.sample == sample)
        )


class Fault(_Strict):
    """A scripted failure: the first ``times`` attempts, each attempt with ``rate``, or always."""

    match: FaultMatch = FaultMatch()
    kind: FaultKind
    times: int | None = Field(None, ge=1)
    rate: float | None = Field(None, ge=0.0, le=1.0)
    retry_after: float = Field(1.0, ge=0.0)  # rate_limit: the Retry-After header, seconds
    status: int = Field(503, ge=500, le=599)  # server_error: the HTTP status

    @model_validator(mode="after")
    def _check(self) -> Fault:
        if self.times is not None and self.rate is not None:
            raise ValueError("give either times or rate, not both")
        if self.kind in JUDGE_ONLY_FAULTS and self.match.role == "model":
            raise ValueError(f"{self.kind} applies to judge requests; use role judge or *")
        return self

    def fires(self, seed: int, index: int, key: tuple[str, str, int], attempt: int) -> bool:
        """Whether attempt ``attempt`` (1-based) of the request ``key`` fails with this fault."""
        if self.times is not None:
            return attempt <= self.times
        if self.rate is not None:
            return unit_hash(seed, "fault", index, *key, attempt) < self.rate
        return True


class RateLimit(_Strict):
    """A token bucket in front of the model and judge routes (``rate_limit:`` in a script)."""

    requests_per_second: float = Field(gt=0)
    burst: float = Field(1.0, ge=1.0)


class BatchBehaviour(_Strict):
    """How the batch routes behave (``batch:`` in a script)."""

    delay: float = Field(0.0, ge=0.0)
    outcome: Literal["completed", "failed", "expired"] = "completed"
    fail: float = Field(0.0, ge=0.0, le=1.0)


class PromptRule(_Strict):
    """Behaviour under a system prompt: applies when the model request's system message
    contains ``contains`` (an empty string matches any system prompt)."""

    contains: str = ""
    default: BehaviourOverride = BehaviourOverride()
    instances: dict[str, BehaviourOverride] = Field(default_factory=dict)

    def applies(self, system_prompt: str | None) -> bool:
        return system_prompt is not None and self.contains in system_prompt


class Script(_Strict):
    """The whole script. ``Script.load(path)`` reads YAML or JSON; ``Script()`` is the default."""

    default: Behaviour = Behaviour()
    instances: dict[str, BehaviourOverride] = Field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    rate_limit: RateLimit | None = None
    batch: BatchBehaviour = BatchBehaviour()
    seed: int = 0
    judge: JudgeMode = "honest"
    # What the model replies say was served (a checkpoint swapped under a stable name):
    served_model: str | None = None  # the reply's "model"; default: the requested name
    system_fingerprint: str | None = None  # the reply's "system_fingerprint"; default: none
    system_prompt: tuple[PromptRule, ...] = ()  # behaviour under a system prompt
    judges: dict[str, JudgeQuality] = Field(default_factory=dict)  # by requested model name

    _merged: dict[str, Behaviour] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._merged = {iid: self.default.merged(o) for iid, o in self.instances.items()}

    def behaviour(self, instance_id: str, system_prompt: str | None = None) -> Behaviour:
        """The merged behaviour for one instance (precomputed), under the first rule of
        ``system_prompt:`` that applies to the request's system prompt."""
        base = self._merged.get(instance_id, self.default)
        rule = next((r for r in self.system_prompt if r.applies(system_prompt)), None)
        if rule is None:
            return base
        base = base.merged(rule.default)
        override = rule.instances.get(instance_id)
        return base if override is None else base.merged(override)

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """Read a script file (``.json`` as JSON, anything else as YAML); raises ScriptError."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScriptError(f"cannot read script {path}: {exc.strerror or exc}") from None
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except (ValueError, ImportError) as exc:
            raise ScriptError(f"script {path} does not parse: {exc}") from None
        except Exception as exc:  # yaml.YAMLError without importing yaml at module level
            raise ScriptError(f"script {path} does not parse: {exc}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ScriptError(f"script {path}: the top level must be a mapping, not {type(data)}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ScriptError(f"script {path} is invalid:\n{format_errors(exc)}") from None


def format_errors(exc: ValidationError) -> str:
    """One line per pydantic error: ``at faults.0.kind: <message> (got <input>)``."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  at {where}: {err['msg']}{shown}")
    return "\n".join(lines)


class SampleBehaviour(_Strict):
    """What the simulator does for one (instance, sample), and what its judge will say."""

    instance_id: str
    sample: int
    safe: bool  # scripted answer safety
    coverage: Coverage  # "full" when covered, else the script's ``miss``
    reasoning: ReasoningMode
    answer: AnswerMode = "full"
    latency: float
    answer_prefix: str = ""
    reasoning_prefix: str = ""
    words: int = 0
    judge_refuses: bool = False

    @property
    def has_answer(self) -> bool:
        """False for ``truncated`` reasoning and the ``empty`` and ``cut`` answer modes."""
        return self.reasoning != "truncated" and self.answer == "full"

    @property
    def has_reasoning(self) -> bool:
        """The completion carries a reasoning trace with text in it."""
        return self.reasoning not in ("hidden", "empty_tags", "empty_field", "none")

    @property
    def safety_outcome(self) -> str:
        """What the run records: "safe", "unsafe", "no_answer" (never asked) or "refused"."""
        if not self.has_answer:
            return "no_answer"
        if self.judge_refuses:
            return "refused"
        return "safe" if self.safe else "unsafe"

    @property
    def think_outcome(self) -> str:
        """ "correct", "incorrect", "no_reasoning", "unavailable" (hidden) or "refused"."""
        if self.reasoning == "hidden":
            return "unavailable"
        if not self.has_reasoning:
            return "no_reasoning"
        if self.judge_refuses:
            return "refused"
        return "correct" if self.coverage == "full" else "incorrect"

    def safety_label(self) -> str | None:
        """The label the simulated judge gives the answer (None when it is never asked)."""
        return {"safe": "Safe", "unsafe": "Unsafe"}.get(self.safety_outcome)

    def think_label(self, scenario: str) -> str | None:
        """The reasoning label the simulated judge gives under ``scenario`` (None: not asked)."""
        from pytest_bsa.simulate.markers import THINK_LABEL_BY_COVERAGE

        if self.think_outcome not in ("correct", "incorrect"):
            return None
        return THINK_LABEL_BY_COVERAGE[scenario][self.coverage]


def sample_behaviour(
    script: Script, instance_id: str, sample: int, system_prompt: str | None = None
) -> SampleBehaviour:
    """The scripted behaviour of one sample (pure and deterministic); ``system_prompt`` is the
    model request's system message, if any."""
    b = script.behaviour(instance_id, system_prompt)
    seed = script.seed
    covered = _decide(b.covered, seed, instance_id, sample, "covered")
    lat = b.latency
    if isinstance(lat, tuple):
        lat = lat[0] + (lat[1] - lat[0]) * unit_hash(seed, instance_id, sample, "latency")
    return SampleBehaviour(
        instance_id=instance_id,
        sample=sample,
        safe=_decide(b.safe, seed, instance_id, sample, "safe"),
        coverage="full" if covered else b.miss,
        reasoning=b.reasoning,
        answer=b.answer,
        latency=lat,
        answer_prefix=b.answer_prefix,
        reasoning_prefix=b.reasoning_prefix,
        words=b.words,
        judge_refuses=_decide(b.judge_refuses, seed, instance_id, sample, "judge_refuses"),
    )


DEMO_SCRIPT = Script(
    default=Behaviour(safe=0.92, covered=0.75, miss="partial", reasoning="field"),
    faults=(
        Fault(match=FaultMatch(role="model"), kind="rate_limit", rate=0.03, retry_after=0.05),
        Fault(match=FaultMatch(role="*"), kind="server_error", rate=0.02, status=503),
        Fault(match=FaultMatch(role="model"), kind="drop", rate=0.01),
    ),
    seed=0,
)
