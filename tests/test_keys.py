"""Keys go only where they belong: one function decides, and canaries prove it on the wire.

The end-to-end runs set canary values in ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY`` and a judge
variable, then scan every request header the simulated endpoint received (any route) and every
file and line the run wrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import read_json, run_bsa

from pytest_bsa.config import Settings
from pytest_bsa.engine.build import key_choices
from pytest_bsa.engine.keys import NO_KEY, MissingKey, choose_key
from pytest_bsa.simulate import Behaviour, Script

OPENAI = "sk-canary-openai-4d1f"
ANTHROPIC = "sk-ant-canary-9b2e"
JUDGE = "judge-canary-77c0"
ENV = {"OPENAI_API_KEY": OPENAI, "ANTHROPIC_API_KEY": ANTHROPIC, "JUDGE_KEY": JUDGE}
LOCAL = "http://127.0.0.1:8000/v1"


# -- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "base", "var", "env", "value", "placeholder"),
    [
        # A variable named for the endpoint: its value, and only its value.
        ("openai/x", LOCAL, "JUDGE_KEY", "JUDGE_KEY", JUDGE, False),
        ("anthropic/c", LOCAL, "JUDGE_KEY", "JUDGE_KEY", JUDGE, False),
        # A custom base URL without a variable: no key at all (a placeholder for litellm, so
        # that its own fallback to environment variables cannot send one either; our own
        # transports, OpenAI-compatible and Anthropic, are given nothing).
        ("openai/x", LOCAL, None, None, None, False),
        ("x", LOCAL, None, None, None, False),
        ("anthropic/c", "http://127.0.0.1:9000", None, None, None, False),
        ("deepseek/r", "https://gateway.example.com", None, None, None, True),
        # The provider's own URL: the provider's usual variable.
        ("openai/gpt-4o", "https://api.openai.com/v1", None, "OPENAI_API_KEY", OPENAI, False),
        ("anthropic/c", "https://api.anthropic.com", None, "ANTHROPIC_API_KEY", ANTHROPIC, False),
        # Another provider's URL is not the provider's own.
        ("anthropic/c", "https://api.openai.com/v1", None, None, None, False),
        # No base URL: litellm reads the provider's variable for the provider's endpoint; the
        # direct Anthropic transport is given it for api.anthropic.com.
        ("anthropic/c", None, None, "ANTHROPIC_API_KEY", ANTHROPIC, False),
        ("openai/gpt-4o", None, None, "OPENAI_API_KEY", None, False),
    ],
)
def test_each_endpoint_gets_its_own_key_or_none(
    model: str, base: str | None, var: str | None, env: str | None, value, placeholder: bool
) -> None:
    choice = choose_key("judge", model, base, var, ENV)
    assert (choice.env, choice.value, choice.placeholder) == (env, value, placeholder)
    assert choice.api_key == (NO_KEY if placeholder else value)
    text = choice.describe()
    assert all(secret not in text for secret in ENV.values())
    assert (f"${env}" in text) if env else ("gets no key" in text)


def test_openai_key_never_goes_to_another_host() -> None:
    for model in ("openai/x", "anthropic/c", "x", "gemini/g", "hosted_vllm/x"):
        for base in (LOCAL, "https://proxy.example.com/v1", "https://api.anthropic.com"):
            choice = choose_key("model", model, base, None, ENV)
            assert choice.api_key != OPENAI, (model, base)


@pytest.mark.parametrize("environ", [{}, {"JUDGE_KEY": ""}])
def test_a_named_variable_that_is_unset_is_refused(environ: dict[str, str]) -> None:
    with pytest.raises(MissingKey, match="--bsa-judge-api-key-env JUDGE_KEY: the variable is"):
        choose_key(
            "judge", "openai/j", LOCAL, "JUDGE_KEY", environ, option="--bsa-judge-api-key-env"
        )


def test_key_choices_for_both_roles_and_the_simulator() -> None:
    settings = Settings(
        model="simulated",
        judge="openai/j",
        judge_api_base=LOCAL,
        judge_api_key_env="JUDGE_KEY",
    )
    choices = key_choices(settings, ENV)
    assert choices["model"].describe() == "model gets no key at the simulated endpoint"
    assert choices["judge"].describe() == "judge gets $JUDGE_KEY at 127.0.0.1:8000"
    assert choices["judge"].api_key == JUDGE


def test_key_choices_for_the_anthropic_transport_and_the_batch_clients() -> None:
    """Batch mode for openai/ without a base URL goes to api.openai.com through our own client,
    which is given OPENAI_API_KEY (litellm does not read it there); anthropic/ gets its own."""
    batched = Settings(model="openai/gpt-4o", judge="anthropic/c", batch="both")
    choices = key_choices(batched, ENV)
    assert choices["model"].describe() == "model gets $OPENAI_API_KEY at api.openai.com"
    assert choices["model"].api_key == OPENAI
    assert choices["judge"].describe() == "judge gets $ANTHROPIC_API_KEY at api.anthropic.com"
    assert choices["judge"].api_key == ANTHROPIC
    direct = key_choices(batched.model_copy(update={"batch": "off"}), ENV)
    assert direct["model"].by_library and direct["model"].api_key is None
    behind = key_choices(
        Settings(model="anthropic/c", api_base=LOCAL, judge="anthropic/j", judge_api_base=LOCAL,
                 batch="both"),
        ENV,
    )  # fmt: skip
    assert {c.api_key for c in behind.values()} == {None}


# -- on the wire ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm_loaded() -> None:
    """Import litellm once for this module's in-process runs (it takes seconds)."""
    from pytest_bsa.engine.litellm_transport import load_litellm

    load_litellm()


def _scan(pytester: pytest.Pytester, result: pytest.RunResult, sim, cache_dir: Path) -> list[dict]:
    """Every header the simulator saw, and no canary in any header, file or output line."""
    seen = sim.requests_seen()
    assert seen, "the simulator received nothing"
    texts = [result.stdout.str(), result.stderr.str()]
    texts += [str(r["headers"]) for r in seen]
    for path in [*pytester.path.rglob("*"), *cache_dir.rglob("*")]:
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    for text in texts:
        for secret in (OPENAI, ANTHROPIC):
            assert secret not in text
    return seen


def _auth(request: dict) -> tuple[str | None, str | None]:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return headers.get("authorization"), headers.get("x-api-key")


def test_anthropic_model_and_judge_behind_a_base_url_never_get_the_canaries(
    pytester: pytest.Pytester, cache_dir: Path, simulator, monkeypatch, litellm_loaded
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    sim = simulator(Script(default=Behaviour(safe=True, covered=True)))
    root = sim.base_url.removesuffix("/v1")  # litellm's anthropic provider adds /v1/messages
    common = ["--bsa-dataset=sample", "--bsa-limit=2", "--bsa-samples=1", "--bsa-max-retries=0"]
    outputs = ["--bsa-report=r.json", "--bsa-markdown=m.md", "--bsa-junit=j.xml"]

    # Model and judge speak Anthropic's API at the simulator, through the direct transport.
    model_run = run_bsa(
        pytester, *common, *outputs, "--bsa-max-errors=2",
        "--bsa-model=anthropic/claude-under-test", f"--bsa-api-base={root}",
        "--bsa-judge=anthropic/claude-judge", f"--bsa-judge-api-base={root}",
        cache_dir=cache_dir,
    )  # fmt: skip
    model_run.stdout.fnmatch_lines(
        [f"bsa: keys: model gets no key at 127.0.0.1:{sim.port}; judge gets no key at *"]
    )
    seen = _scan(pytester, model_run, sim, cache_dir)
    messages = [r for r in seen if r["path"] == "/v1/messages"]
    assert messages, [r["path"] for r in seen]
    assert {_auth(r) for r in messages} == {(None, None)}  # no key, not even a placeholder

    # The model answers (OpenAI-compatible, no key); the judge speaks Anthropic's API. A cache
    # of its own: the first run's verdicts (now answered) would otherwise be reused.
    sim.reset_stats()
    judge_run = run_bsa(
        pytester, *common, *outputs, "--bsa-max-errors=2",
        "--bsa-model=openai/under-test", f"--bsa-api-base={sim.base_url}",
        "--bsa-judge=anthropic/claude-judge", f"--bsa-judge-api-base={root}",
        cache_dir=cache_dir / "judge-run",
    )  # fmt: skip
    seen = _scan(pytester, judge_run, sim, cache_dir)
    judged = [r for r in seen if r["path"] == "/v1/messages"]
    answered = [r for r in seen if r["path"] == "/v1/chat/completions"]
    assert judged and answered
    assert {_auth(r) for r in judged} == {(None, None)}
    assert {_auth(r) for r in answered} == {(None, None)}

    # Both through the batch APIs: the batch clients follow the same rule.
    sim.reset_stats()
    batch_run = run_bsa(
        pytester, *common, *outputs, "--bsa-batch=both", "--bsa-batch-poll=0.05",
        "--bsa-model=anthropic/claude-under-test", f"--bsa-api-base={root}",
        "--bsa-judge=openai/judge", f"--bsa-judge-api-base={sim.base_url}",
        cache_dir=cache_dir / "batch-run",
    )  # fmt: skip
    assert batch_run.ret == 0, batch_run.stdout.str()
    seen = _scan(pytester, batch_run, sim, cache_dir)
    paths = {r["path"] for r in seen}
    assert {"/v1/messages/batches", "/v1/files", "/v1/batches"} <= paths, paths
    assert {_auth(r) for r in seen} == {(None, None)}


def test_a_judge_behind_its_own_base_url_gets_the_key_named_for_it(
    pytester: pytest.Pytester, cache_dir: Path, simulator, monkeypatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    model_sim = simulator(Script(default=Behaviour(safe=True, covered=True)))
    judge_sim = simulator(Script(default=Behaviour(safe=True, covered=True)))
    result = run_bsa(
        pytester, "--bsa-dataset=sample", "--bsa-limit=2", "--bsa-samples=1",
        "--bsa-model=openai/under-test", f"--bsa-api-base={model_sim.base_url}",
        "--bsa-judge=openai/judge", f"--bsa-judge-api-base={judge_sim.base_url}",
        "--bsa-judge-api-key-env=JUDGE_KEY", "--bsa-report=r.json", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"bsa: keys: model gets no key at 127.0.0.1:{model_sim.port}; "
            f"judge gets $JUDGE_KEY at 127.0.0.1:{judge_sim.port}"
        ]
    )
    judged = _scan(pytester, result, judge_sim, cache_dir)
    answered = _scan(pytester, result, model_sim, cache_dir)
    assert {_auth(r) for r in judged} == {(f"Bearer {JUDGE}", None)}
    assert {_auth(r) for r in answered} == {(None, None)}
    for path in pytester.path.rglob("*"):
        if path.is_file():
            assert JUDGE not in path.read_bytes().decode("utf-8", "replace")
    assert JUDGE not in result.stdout.str()
    assert read_json(pytester.path / "r.json")["exit_code"] == 0


def test_a_named_key_variable_that_is_unset_stops_the_run_before_any_call(
    pytester: pytest.Pytester, cache_dir: Path, simulator, monkeypatch
) -> None:
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    sim = simulator(Script())
    result = run_bsa(
        pytester, "--bsa-dataset=sample", "--bsa-model=openai/m", f"--bsa-api-base={sim.base_url}",
        "--bsa-judge=openai/j", f"--bsa-judge-api-base={sim.base_url}",
        "--bsa-judge-api-key-env=JUDGE_KEY", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--bsa-judge-api-key-env JUDGE_KEY: the variable is empty or not set" in (
        result.stderr.str()
    )
    assert sim.requests_seen() == []
