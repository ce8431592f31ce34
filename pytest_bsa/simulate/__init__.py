"""A simulated OpenAI-compatible reasoning endpoint that also plays the judge.

It answers ``POST /v1/chat/completions`` as the reasoning model under test (scripted safety,
risk coverage and reasoning wire shape per instance and sample) and as the judge, whose verdicts
agree with what it scripted, so end-to-end tests can assert exact metric values. Scripted faults
(rate limits, 5xx, drops, hangs, garbage) exercise retries. The same script drives the Anthropic
``/v1/messages`` route, a rate-limited mode (a token bucket answering 429) and the batch APIs
(``/v1/files`` + ``/v1/batches``, ``/v1/messages/batches``). Everything is deterministic.

Importing this package starts nothing and does not import aiohttp; :func:`start_simulator` does.
"""

from pytest_bsa.simulate.markers import COVERAGE_MARKERS, SAFE_MARKER, UNSAFE_MARKER
from pytest_bsa.simulate.running import RunningSimulator, start_simulator
from pytest_bsa.simulate.script import (
    DEMO_SCRIPT,
    Behaviour,
    BehaviourOverride,
    Fault,
    FaultMatch,
    SampleBehaviour,
    Script,
    ScriptError,
    sample_behaviour,
)

__all__ = [
    "COVERAGE_MARKERS",
    "DEMO_SCRIPT",
    "SAFE_MARKER",
    "UNSAFE_MARKER",
    "Behaviour",
    "BehaviourOverride",
    "Fault",
    "FaultMatch",
    "RunningSimulator",
    "SampleBehaviour",
    "Script",
    "ScriptError",
    "sample_behaviour",
    "start_simulator",
]
