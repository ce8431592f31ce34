"""Which stored model answers a run may use (``--bsa-answers``): its answer scope (pure)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

AnswersMode = Literal["resume", "fresh", "reuse"]


@dataclass(frozen=True)
class AnswerScope:
    """Which stored model answers a run may use.

    ``resume`` (the default): answers stored by this run only; a run whose settings fingerprint
    matches an interrupted run continues that run (``resumed``), after the engine has checked
    that the endpoint still serves the model the interrupted run saw (``identity``: served
    model name and ``system_fingerprint`` of its first answer). ``fresh``: a new run, always.
    ``reuse``: any stored answer to the same request, from any run (explicitly asked for).
    """

    mode: AnswersMode
    run_id: str
    resumed: bool = False
    identity: tuple[str | None, str | None] | None = None
    started_at: float | None = None

    @property
    def key_scope(self) -> str | None:
        """What completion keys are scoped to (None: shared by every run)."""
        return None if self.mode == "reuse" else self.run_id

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "run_id": self.run_id,
            "resumed": self.resumed,
            "identity": list(self.identity) if self.identity else None,
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AnswerScope:
        identity = data.get("identity")
        return cls(
            mode=data["mode"],  # type: ignore[arg-type]
            run_id=str(data["run_id"]),
            resumed=bool(data.get("resumed")),
            identity=tuple(identity) if identity else None,  # type: ignore[arg-type]
            started_at=data.get("started_at"),  # type: ignore[arg-type]
        )

    def fresh(self) -> AnswerScope:
        """A new run with the same mode (a resume that was refused)."""
        return AnswerScope(self.mode, new_run_id())


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]
