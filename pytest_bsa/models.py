"""The data that flows through a run: instances, completions, verdicts, results.

Pure (no pytest import). Every model round-trips through JSON (``model_dump(mode="json")`` and
``model_validate``), which is how results travel from pytest-xdist workers to the controller and
into saved reports.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scenario = Literal["Risk Omission", "Cognitive Shortcut", "Over Sensitivity"]
SCENARIOS: tuple[Scenario, ...] = ("Risk Omission", "Cognitive Shortcut", "Over Sensitivity")

CATEGORIES: tuple[str, ...] = (
    "Offense and Prejudice",
    "Specially Regulated Items",
    "Property Infringement",
    "Invasion of Privacy and Confidentiality",
    "Physical and Mental Health",
    "Violence and Terrorism",
    "Ethics and Morality",
    "Rumors",
    "Pornography",
)

# The judge's closed label sets, in the benchmark's own spelling (DESIGN.md section 2).
SAFETY_LABELS: tuple[str, ...] = ("Safe", "Unsafe")
THINK_LABELS: dict[str, tuple[str, ...]] = {
    "Risk Omission": ("true", "false"),
    "Cognitive Shortcut": ("Fully Covered", "Partially Covered", "Not Covered"),
    "Over Sensitivity": ("Precise Coverage", "Over Sensitive", "Not Covered"),
}
THINK_CORRECT_LABELS: frozenset[str] = frozenset({"true", "Fully Covered", "Precise Coverage"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Label(_Frozen):
    """One ``Category-Subcategory`` annotation (split on the first ``-`` only)."""

    category: str
    subcategory: str

    def __str__(self) -> str:
        return f"{self.category}-{self.subcategory}"


class Instance(_Frozen):
    """One benchmark prompt with its annotated risk."""

    id: str
    query: str
    risk_summary: str
    scenario: Scenario
    labels: tuple[Label, ...]
    line: int = Field(0, description="1-based line of the record's start in its source file")

    @property
    def categories(self) -> tuple[str, ...]:
        """Distinct primary categories, in label order (two for many Cognitive Shortcut rows)."""
        return tuple(dict.fromkeys(label.category for label in self.labels))

    @property
    def subcategories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(str(label) for label in self.labels))


class ReasoningState(str, Enum):
    """Whether a completion carried a reasoning trace."""

    PRESENT = "present"
    TRUNCATED = "truncated"  # cut by the token limit (finish_reason "length") before an answer
    EMPTY = "empty"  # a reasoning block or field with nothing in it: the model did not reason
    ABSENT = "absent"  # no reasoning and no sign the provider hid any: the model did not reason
    UNAVAILABLE = "unavailable"  # hidden by the provider (reasoning tokens counted, no text)


# How a completion's reasoning was found: a dedicated field (or thinking blocks), a leading
# ``<think>`` block, a bare ``</think>`` read as the end of a block the chat template opened
# (``--bsa-think-tags=template``), a leading ``<think>`` that never closed, or none at all:
# ``stray_close`` is none with a bare ``</think>`` kept in the answer (the default reading).
SplitKind = Literal["field", "tags", "bare_close", "unclosed", "none", "stray_close"]
SPLIT_KINDS: tuple[str, ...] = ("field", "tags", "bare_close", "unclosed", "none", "stray_close")


class Usage(_Frozen):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None


class Completion(_Frozen):
    """One model answer, split into reasoning and final answer."""

    answer: str
    reasoning: str | None = None
    reasoning_state: ReasoningState = ReasoningState.UNAVAILABLE
    finish_reason: str | None = None
    usage: Usage = Usage()
    latency_s: float = 0.0
    cached: bool = False
    split: SplitKind = "none"
    refusal: str | None = None  # the provider's ``message.refusal`` text, kept as it came
    served_model: str | None = None  # the response's ``model`` field: what actually answered
    system_fingerprint: str | None = None  # the endpoint's ``system_fingerprint``, when sent

    @property
    def truncated(self) -> bool:
        """The token limit cut this completion (``finish_reason`` "length")."""
        return self.finish_reason == "length"


class SafetyVerdict(str, Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"
    NO_ANSWER = "no_answer"  # the model gave no answer (empty, or cut by the token limit)
    UNJUDGED = "unjudged"  # the judge never returned a valid label
    REFUSED = "refused"  # the judge refused to judge, also when asked again
    SPLIT = "split"  # a judge panel (or repeated asks) without a majority label


class ThinkVerdict(str, Enum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    NO_REASONING = "no_reasoning"  # the model gave no reasoning (empty block, or none at all)
    UNAVAILABLE = "unavailable"  # the provider hid the reasoning: nothing to judge, not wrong
    UNJUDGED = "unjudged"
    REFUSED = "refused"
    SPLIT = "split"


# Verdicts for which the judge gave no usable label: counted apart, and as failures in the
# worst case that every table shows beside the rate.
OPEN_SAFETY: frozenset[SafetyVerdict] = frozenset(
    {SafetyVerdict.UNJUDGED, SafetyVerdict.REFUSED, SafetyVerdict.SPLIT}
)
OPEN_THINK: frozenset[ThinkVerdict] = frozenset(
    {ThinkVerdict.UNJUDGED, ThinkVerdict.REFUSED, ThinkVerdict.SPLIT}
)


class Vote(_Frozen):
    """One verdict pair from one member of a judge panel (or one of its repeated asks).

    A label of None means the member gave none; the outcome says why: ``labelled``,
    ``unjudged``, ``refused`` or ``not_asked`` (no answer or no reasoning to judge).
    """

    judge: str  # the member's model string
    replicate: int = 0  # which of the --bsa-judge-samples asks (0-based)
    safety: str | None = None
    think: str | None = None
    safety_outcome: str = "labelled"
    think_outcome: str = "labelled"
    query_credit: tuple[bool, bool] | None = None
    attempts: int = 0  # judge calls made for this vote (0 from the cache)
    cached: int = 0  # verdicts of this vote read from the cache
    usage: Usage = Usage()


class Judgement(_Frozen):
    """The judge's decision on one sample."""

    safety: SafetyVerdict
    think: ThinkVerdict
    safety_label: str | None = None  # raw label, e.g. "Unsafe"
    think_label: str | None = None  # raw label, e.g. "Partially Covered"
    explanation: str = ""
    attempts: int = 1  # judge calls made (0 when every verdict came from the cache)
    usage: Usage = Usage()
    cached: bool = False  # every verdict of this sample came from the cache
    cached_verdicts: int = 0
    refusals: tuple[str, ...] = ()  # the judge's refusal texts, kept as they came
    # Cognitive Shortcut: whether the reasoning identified Query A's and Query B's risk.
    query_credit: tuple[bool, bool] | None = None
    served_model: str | None = None  # the judge's ``model`` field as served
    # A judge panel or repeated asks (--bsa-judge-samples): every member's every vote; the
    # labels above are their majority. Empty for a single judge asked once.
    votes: tuple[Vote, ...] = ()


class SampleResult(_Frozen):
    """One of the k samples of an instance: a completion and its judgement, or an error."""

    index: int
    completion: Completion | None = None
    judgement: Judgement | None = None
    error: str | None = None  # endpoint or judge transport failure after all retries

    @property
    def safety(self) -> SafetyVerdict | None:
        return self.judgement.safety if self.judgement else None

    @property
    def think(self) -> ThinkVerdict | None:
        return self.judgement.think if self.judgement else None


class InstanceResult(_Frozen):
    """Everything measured for one instance."""

    instance: Instance
    samples: tuple[SampleResult, ...]

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(s.error for s in self.samples if s.error)
