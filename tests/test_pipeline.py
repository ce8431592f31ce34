"""Your own pipeline as the system under test: ``pytest_bsa_generate`` and ``pipeline:NAME``.

End to end through pytester with the simulated judge (a real HTTP server on 127.0.0.1); the
example in ``examples/own-pipeline`` runs as a team would run it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import read_json, run_bsa

from pytest_bsa.engine.pipeline import (
    Generation,
    Pipeline,
    PipelineTransport,
    pipeline_identity,
    to_completion,
)
from pytest_bsa.engine.types import ChatRequest, TransportError
from pytest_bsa.models import Instance, Label, ReasoningState

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own-pipeline"
MODEL = "--bsa-model=pipeline:support-assistant"


def _example_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _copy_example(pytester: pytest.Pytester) -> None:
    for path in EXAMPLE.iterdir():
        if path.is_file():
            shutil.copy(path, pytester.path / path.name)


# -- the example ----------------------------------------------------------------------------


def test_the_example_pipeline_is_judged_and_gated(
    pytester: pytest.Pytester, cache_dir: Path
) -> None:
    """The acceptance case: a Python function evaluated with the judge, gated on thresholds."""
    _copy_example(pytester)
    result = run_bsa(
        pytester, MODEL, "--bsa-config=bsa.yaml", "--bsa-report=run.json", "-rA",
        cache_dir=cache_dir, subprocess=True,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "bsa: model pipeline:support-assistant | judge simulated",
            "bsa: pipeline:support-assistant answers through pytest_bsa_generate in *conftest.py",
            "PASSED bsa::gate::overall::safe_at_1",
            "PASSED bsa::gate::overall::think_at_1",
        ]
    )
    report = read_json(pytester.path / "run.json")
    assert report["provenance"]["model"] == {
        "model": "pipeline:support-assistant",
        "host": None,
        "served": [],
    }
    k = report["policy"]["samples"]
    assert report["totals"]["model"]["calls"] == 45 * k
    assert report["totals"]["judge"]["calls"] >= 2 * 45 * k  # answer and plan, every sample

    # Independently: the simulated judge calls the assistant's careful replies safe and its
    # plans risk-aware, its direct replies unsafe and unaware; per instance, k equal samples.
    assistant = _example_module("assistant")
    careful = [
        any(word in r["instance"]["query"].lower() for word in assistant.SENSITIVE)
        for r in report["instances"]
    ]
    overall = report["groups"]["overall"]
    assert overall["safe_at_1"] == pytest.approx(sum(careful) / len(careful))
    assert overall["think_at_1"] == pytest.approx(sum(careful) / len(careful))
    for r, flag in zip(report["instances"], careful, strict=True):
        for sample in r["samples"]:
            assert sample["completion"]["reasoning_state"] == "present"
            assert sample["judgement"]["safety"] == ("safe" if flag else "unsafe")


def test_a_careless_change_to_the_pipeline_fails_the_gate(
    pytester: pytest.Pytester, cache_dir: Path
) -> None:
    _copy_example(pytester)
    conftest = pytester.path / "conftest.py"
    conftest.write_text(
        conftest.read_text().replace("answer(instance.query)", 'answer("an ordinary request")')
    )
    result = run_bsa(pytester, MODEL, "--bsa-config=bsa.yaml", cache_dir=cache_dir, subprocess=True)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["GATE FAILED overall::safe_at_1: safe_at_1 of overall is 0.000*"])


# -- what the hook may return and how it is called -------------------------------------------

HOOKS = """
import asyncio, json, threading
from pathlib import Path
from pytest_bsa import Generation

calls = []
lock = threading.Lock()

def _record(instance, sample_index):
    with lock:
        calls.append([instance.id, sample_index])
        Path("calls.json").write_text(json.dumps(calls))

{body}
"""

BODIES = {
    "sync-text-with-think-tags": """
def pytest_bsa_generate(instance, sample_index, config):
    _record(instance, sample_index)
    plan = "<think>I weigh the risk of harm and misuse first.</think>"
    return plan + "I would rather not help with that part."
""",
    "async-generation": """
async def pytest_bsa_generate(instance, sample_index, config):
    await asyncio.sleep(0)
    _record(instance, sample_index)
    return Generation(answer="I would rather not; ask a professional instead.",
                      reasoning="There is a risk of harm and a safety concern here.",
                      usage={"prompt_tokens": 10, "completion_tokens": 5})
""",
    "mapping-without-reasoning": """
def pytest_bsa_generate(instance, sample_index, config):
    _record(instance, sample_index)
    return {"answer": "I cannot help with that, sorry."}
""",
}


@pytest.mark.parametrize("kind", list(BODIES))
def test_sync_async_text_structure_and_mapping(
    pytester: pytest.Pytester, cache_dir: Path, kind: str
) -> None:
    pytester.makeconftest(HOOKS.format(body=BODIES[kind]))
    result = run_bsa(
        pytester, "--bsa-model=pipeline:demo", "--bsa-judge=simulated", "--bsa-dataset=sample",
        "--bsa-limit=6", "--bsa-samples=2", "--bsa-report=run.json", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    report = read_json(pytester.path / "run.json")
    ids = sorted(r["instance"]["id"] for r in report["instances"])
    calls = json.loads((pytester.path / "calls.json").read_text())
    assert sorted(map(tuple, calls)) == sorted((i, s) for i in ids for s in (0, 1))  # once each
    samples = [s for r in report["instances"] for s in r["samples"]]
    assert all(s["judgement"]["safety"] == "safe" for s in samples)
    if kind == "mapping-without-reasoning":
        assert all(s["completion"]["reasoning_state"] == "unavailable" for s in samples)
        assert all(s["judgement"]["think"] == "unavailable" for s in samples)
    else:
        assert all(s["judgement"]["think"] == "correct" for s in samples)
        assert all("<think>" not in s["completion"]["answer"] for s in samples)
    if kind == "async-generation":
        assert report["totals"]["model"]["prompt_tokens"] == 10 * len(samples)


FLAKY = """
import threading
attempts = {}
lock = threading.Lock()

def pytest_bsa_generate(instance, sample_index, config):
    key = (instance.id, sample_index)
    with lock:
        attempts[key] = attempts.get(key, 0) + 1
        n = attempts[key]
    if MODE == "always" or (MODE == "once" and n == 1):
        raise RuntimeError("upstream said no (api_key=sk-SECRETVALUE123)")
    if MODE == "wrong-type":
        return 42
    return "I cannot help with that; please ask a professional."

def pytest_bsa_report(report, config):
    with open("attempts.txt", "w") as f:
        f.write(str(sum(attempts.values())))
"""


def _flaky(pytester: pytest.Pytester, cache_dir: Path, mode: str) -> pytest.RunResult:
    pytester.makeconftest(f"MODE = {mode!r}\n" + FLAKY)
    return run_bsa(
        pytester, "--bsa-model=pipeline:flaky", "--bsa-judge=simulated", "--bsa-dataset=sample",
        "--bsa-limit=3", "--bsa-samples=2", "--bsa-max-retries=1", "--bsa-report=run.json",
        cache_dir=cache_dir,
    )  # fmt: skip


def test_exceptions_are_retried_like_endpoint_errors(
    pytester: pytest.Pytester, cache_dir: Path
) -> None:
    result = _flaky(pytester, cache_dir, "once")
    assert result.ret == 0, result.stdout.str()
    report = read_json(pytester.path / "run.json")
    assert report["totals"]["model"]["retries"] == 6  # one per sample
    assert (pytester.path / "attempts.txt").read_text() == "12"


def test_a_pipeline_that_keeps_failing_errors_its_instances(
    pytester: pytest.Pytester, cache_dir: Path
) -> None:
    result = _flaky(pytester, cache_dir, "always")
    assert result.ret == 1
    text = result.stdout.str()
    assert "pipeline: pytest_bsa_generate raised RuntimeError: upstream said no" in text
    assert "(gave up after 2 attempts)" in text and "SECRETVALUE123" not in text
    result.stdout.fnmatch_lines(["*GATE FAILED overall::endpoint_errors*"])


def test_a_wrong_return_value_is_not_retried(pytester: pytest.Pytester, cache_dir: Path) -> None:
    result = _flaky(pytester, cache_dir, "wrong-type")
    assert result.ret == 1
    assert "pytest_bsa_generate returned a int: return the answer text" in result.stdout.str()
    assert read_json(pytester.path / "run.json")["totals"]["model"]["retries"] == 0


def test_progress_lines_while_a_slow_pipeline_works(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import time\nimport pytest_bsa.reporting.progress as p\n"
        "p.LOG_INTERVAL = p.LIVE_INTERVAL = 0.5\n"
        "def pytest_bsa_generate(instance, sample_index, config):\n"
        "    time.sleep(1.2)\n    return 'I cannot help with that.'\n"
    )
    result = pytester.runpytest_subprocess(
        "--bsa-model=pipeline:slow", "--bsa-judge=simulated", "--bsa-dataset=sample",
        "--bsa-limit=2", "--bsa-samples=1", "--bsa-cache=off", "-p", "no:cacheprovider",
        "--bsa-gate=report",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["bsa: */2 samples, * verdicts | * samples/s | ETA *"])


def test_verdicts_are_cached_for_a_pipeline_like_for_a_model(
    pytester: pytest.Pytester, cache_dir: Path
) -> None:
    pytester.makeconftest(HOOKS.format(body=BODIES["sync-text-with-think-tags"]))
    args = ["--bsa-model=pipeline:demo", "--bsa-judge=simulated", "--bsa-dataset=sample"]
    args += ["--bsa-limit=4", "--bsa-samples=2", "--bsa-report=run.json"]
    assert run_bsa(pytester, *args, cache_dir=cache_dir).ret == 0
    assert run_bsa(pytester, *args, cache_dir=cache_dir).ret == 0
    judge = read_json(pytester.path / "run.json")["totals"]["judge"]
    assert judge["cached"] == 16 and judge["calls"] == 0  # 4 x 2 samples x 2 verdicts


# -- usage errors: exit 4 before any call ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "conftest", "message"),
    [
        (["--bsa-model=pipeline:x"], "", "answers through a pytest_bsa_generate hook, and none"),
        (["--bsa-model=pipeline:"], "G", "--bsa-model 'pipeline:': name the pipeline"),
        (
            ["--bsa-model=pipeline:x", "--bsa-api-base=http://127.0.0.1:9/v1"],
            "G",
            "--bsa-api-base 'http://127.0.0.1:9/v1' has no effect on 'pipeline:x'",
        ),
        (["--bsa-model=simulated", "--bsa-judge=pipeline:x"], "G", "the judge must be a model"),
        (
            ["--bsa-model=simulated", "--bsa-judge=openai/a", "--bsa-judge=pipeline:x"],
            "G",
            "the judge must be a model",
        ),
    ],
    ids=["no-hook", "no-name", "api-base", "judge", "panel-member"],
)
def test_pipeline_usage_errors(
    pytester: pytest.Pytester, cache_dir: Path, args: list[str], conftest: str, message: str
) -> None:
    if conftest:
        pytester.makeconftest("def pytest_bsa_generate(instance, sample_index, config):\n    1/0\n")
    # --bsa-judge repeated is a judge panel: the default judge only when the case names none.
    judge = [] if any(a.startswith("--bsa-judge=") for a in args) else ["--bsa-judge=simulated"]
    result = run_bsa(pytester, *judge, *args, "--bsa-dataset=sample", cache_dir=cache_dir)
    assert result.ret == 4
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_an_unused_hook_is_named_in_the_header(pytester: pytest.Pytester, cache_dir: Path) -> None:
    pytester.makeconftest("def pytest_bsa_generate(instance, sample_index, config):\n    1/0\n")
    result = run_bsa(
        pytester, "--bsa-model=simulated", "--bsa-dataset=sample", "--bsa-limit=1",
        "--bsa-samples=1", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == 0
    result.stdout.fnmatch_lines(["bsa: pytest_bsa_generate is implemented but unused*"])


# -- pure parts ---------------------------------------------------------------------------------


def test_return_values_become_completions() -> None:
    text = to_completion("<think>plan</think>answer")
    assert (text.answer, text.reasoning, text.reasoning_state) == (
        "answer",
        "plan",
        ReasoningState.PRESENT,
    )
    plain = to_completion("just an answer")
    assert plain.reasoning is None and plain.reasoning_state is ReasoningState.UNAVAILABLE
    structured = to_completion(Generation("a", "r", {"completion_tokens": 3, "cost_usd": 0.5}))
    assert structured.reasoning == "r" and structured.usage.cost_usd == 0.5

    class ChainResult:  # any object with an ``answer`` attribute (a team's own type)
        answer = "a"
        reasoning = None

    assert to_completion(ChainResult()).answer == "a"
    for bad, what in ((None, "None"), (3, "a int"), ({"answer": 1}, "an answer of type int")):
        with pytest.raises(TransportError, match=f"returned {what}") as caught:
            to_completion(bad)
        assert caught.value.kind == "client" and not caught.value.retryable
    with pytest.raises(TransportError, match="usage it cannot use"):
        to_completion({"answer": "a", "usage": {"prompt_tokens": "many"}})


def test_identity_changes_with_the_hook_file(tmp_path: Path) -> None:
    module = tmp_path / "hook_module.py"
    module.write_text("def generate(instance, sample_index, config):\n    return 'a'\n")
    namespace: dict[str, Any] = {}
    exec(compile(module.read_text(), str(module), "exec"), namespace)
    first = pipeline_identity("pipeline:x", [namespace["generate"]])
    assert first.startswith("pipeline://x/") and first == pipeline_identity(
        "pipeline:x", [namespace["generate"]]
    )
    module.write_text(module.read_text() + "# a change\n")
    assert pipeline_identity("pipeline:x", [namespace["generate"]]) != first
    assert pipeline_identity("pipeline:y", [namespace["generate"]]).startswith("pipeline://y/")


def _instance() -> Instance:
    return Instance(
        id="i1",
        query="q",
        risk_summary="r",
        scenario="Risk Omission",
        labels=(Label(category="Rumors", subcategory="Other"),),
    )


def _request() -> ChatRequest:
    return ChatRequest(
        model="pipeline:x", messages=(), headers={"X-BSA-Instance": "i1", "X-BSA-Sample": "1"}
    )


def test_transport_times_out_a_hung_pipeline() -> None:
    async def hang(instance: Instance, index: int) -> str:
        await asyncio.sleep(60)
        return "never"

    transport = PipelineTransport(Pipeline(hang, {"i1": _instance()}, "pipeline://x/0"))
    with pytest.raises(TransportError, match=r"gave no answer within 0\.05 s") as caught:
        asyncio.run(transport.complete(_request(), timeout=0.05))
    assert caught.value.kind == "timeout" and caught.value.retryable

    def seen(instance: Instance, index: int) -> Generation:
        return Generation(answer=f"{instance.id}/{index}")

    transport = PipelineTransport(Pipeline(seen, {"i1": _instance()}, "pipeline://x/0"))
    assert asyncio.run(transport.complete(_request(), timeout=5)).answer == "i1/1"
