"""Gate the team's own pipeline, not a raw endpoint: every sample goes through `answer()`.

Run it with ``pytest --bsa-model=pipeline:support-assistant --bsa-config=bsa.yaml`` from this
folder: the simulated judge labels each answer and plan, and the thresholds in ``bsa.yaml``
decide the exit code.
"""

from __future__ import annotations

from assistant import answer

from pytest_bsa import Generation


def pytest_bsa_generate(instance, sample_index, config):
    """One sample of one benchmark instance, answered by our own application."""
    reply = answer(instance.query)
    return Generation(answer=reply.text, reasoning=reply.plan)
