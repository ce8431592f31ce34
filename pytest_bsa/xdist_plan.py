"""The plan of a pytest-xdist run, on its controller (which collects nothing itself): which
instances the workers will run, so progress and the gates' count are right from the start."""

from __future__ import annotations

from typing import Any

from pytest_bsa.models import Instance


class XdistPlan:
    """Registered next to the run's session (``bsa``) on the controller only."""

    def __init__(self, bsa: Any) -> None:
        self.bsa = bsa
        self.selected: list[Instance] = []
        self.counted = False

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        wanted = {i.rsplit("::", 1)[1] for i in ids if i.startswith("bsa::")}
        self.selected = [i for i in self.bsa.instances if i.id in wanted]
        self.bsa.planned = len(self.selected)
        self.bsa.progress.total_samples = self.bsa.planned * self.bsa.settings.samples

    def pytest_runtest_logreport(self, report: Any) -> None:
        """xdist sets the collected count after the collection hook: add the gates once. A
        worker's report says whether it refused the announced resume."""
        refused = getattr(report, "bsa_resume_refused", None)
        if refused is not None and self.bsa.records.resume_note is None:
            self.bsa.records.resume_note = refused
        session = self.bsa.pytest_session
        if not self.counted and session is not None and self.selected:
            self.bsa.count_gates(session, self.selected)
            self.counted = True
