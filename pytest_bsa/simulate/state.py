"""The server's mutable state: attempt counters for scripted faults, and request statistics.

Used only from the server's event loop; ``snapshot`` and ``reset`` take a lock so another thread
can call them through :class:`RunningSimulator`.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

from pytest_bsa.simulate.judges import JudgeBook
from pytest_bsa.simulate.script import JUDGE_ONLY_FAULTS, Fault, Script

ROLES = ("model", "judge")
SEEN_LIMIT = 10_000  # requests whose headers are kept for inspection


class SimulatorState:
    """Counts attempts per (role, instance, sample) and what the server did with them."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.judges = JudgeBook(script.judges, script.seed)  # judges of known quality
        self._lock = threading.Lock()
        self._attempts: Counter[tuple[str, str, int]] = Counter()
        self._counts: dict[str, Counter[str]] = {role: Counter() for role in ROLES}
        self._per_sample: dict[tuple[str, int], Counter[str]] = {}
        self.throttled = 0  # requests refused by the rate-limited mode (script.rate_limit)
        self.batches: Counter[str] = Counter()  # batches created and the requests they held
        self._seen: deque[dict[str, Any]] = deque(maxlen=SEEN_LIMIT)
        # Faults grouped by the role they can apply to, with their index in the script.
        self._faults: dict[str, tuple[tuple[int, Fault], ...]] = {
            role: tuple(
                (i, f)
                for i, f in enumerate(script.faults)
                if f.match.role in ("*", role)
                and not (f.kind in JUDGE_ONLY_FAULTS and role == "model")
            )
            for role in ROLES
        }

    def begin(
        self, role: str, attempt_key: str, instance_id: str, sample: int
    ) -> tuple[int, Fault | None]:
        """Count one request; return its 1-based attempt number and the fault it suffers, if any.

        ``attempt_key`` separates counters within a role (the judge's safety and reasoning
        verdicts of one sample are counted apart, so ``times`` applies to each verdict).
        """
        key = (attempt_key, instance_id, sample)
        with self._lock:
            self._attempts[key] += 1
            attempt = self._attempts[key]
            self._counts[role]["requests"] += 1
            per = self._per_sample.get((instance_id, sample))
            if per is None:
                per = self._per_sample[(instance_id, sample)] = Counter()
            per[role] += 1
        for index, fault in self._faults[role]:
            if fault.match.matches(role, instance_id, sample) and fault.fires(
                self.script.seed, index, key, attempt
            ):
                with self._lock:
                    self._counts[role]["faults"] += 1
                    self._counts[role][f"fault:{fault.kind}"] += 1
                return attempt, fault
        return attempt, None

    def count_batch(self, requests: int) -> None:
        with self._lock:
            self.batches["created"] += 1
            self.batches["requests"] += requests

    def count_throttled(self) -> None:
        with self._lock:
            self.throttled += 1

    def seen(self, method: str, path: str, headers: dict[str, str]) -> None:
        """Keep a request's method, path and headers (any route, the last SEEN_LIMIT)."""
        with self._lock:
            self._seen.append({"method": method, "path": path, "headers": headers})

    def requests_seen(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._seen)

    def completed(self, role: str) -> None:
        with self._lock:
            self._counts[role]["completions"] += 1

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready statistics (the body of ``GET /stats``)."""
        with self._lock:
            roles: dict[str, Any] = {}
            for role, counts in self._counts.items():
                roles[role] = {
                    "requests": counts["requests"],
                    "faults": counts["faults"],
                    "completions": counts["completions"],
                    "faults_by_kind": {
                        k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if ":" in k
                    },
                }
            samples: dict[str, dict[str, dict[str, int]]] = {}
            for (instance_id, sample), per in self._per_sample.items():
                samples.setdefault(instance_id, {})[str(sample)] = {r: per[r] for r in ROLES}
            throttled = self.throttled
            batches = {"created": self.batches["created"], "requests": self.batches["requests"]}
        return {"roles": roles, "samples": samples, "throttled": throttled, "batches": batches}

    def reset(self) -> None:
        """Forget every count, attempt counters included (``times`` faults fire again)."""
        with self._lock:
            self._attempts.clear()
            for counts in self._counts.values():
                counts.clear()
            self._per_sample.clear()
            self.throttled = 0
            self.batches.clear()
            self._seen.clear()
