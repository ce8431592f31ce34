"""Assemble the engine for a run from its settings (transports, cache, simulator)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_bsa import __version__
from pytest_bsa.config import SIMULATED, Settings
from pytest_bsa.engine.batch_openai import DEFAULT_BASE as OPENAI_BATCH_BASE
from pytest_bsa.engine.batch_setup import batch_provider, batch_roles
from pytest_bsa.engine.cache import Cache
from pytest_bsa.engine.keys import KeyChoice, choose_key
from pytest_bsa.engine.preflight import unreachable
from pytest_bsa.engine.retry import RetryPolicy
from pytest_bsa.engine.runner import Engine
from pytest_bsa.engine.scope import AnswerScope
from pytest_bsa.engine.transports import make_transport
from pytest_bsa.engine.types import RequestSpec, Transport
from pytest_bsa.rubrics import Rubric
from pytest_bsa.rubrics.bsa import BSA_RUBRIC


class EndpointUnreachable(RuntimeError):
    """An endpoint that refuses connections before the run starts."""


def _start_simulator(script_path: str | None) -> Any:
    from pytest_bsa.simulate import DEMO_SCRIPT, Script, start_simulator

    script = Script.load(Path(script_path)) if script_path else DEMO_SCRIPT
    return start_simulator(script)


def _simulated_identity(settings: Settings) -> str:
    """Simulator ports change every run; its cache identity is the script it plays."""
    if not settings.simulate_script:
        return f"simulated://demo-{__version__}"
    digest = hashlib.sha256(Path(settings.simulate_script).read_bytes()).hexdigest()[:16]
    return f"simulated://{digest}"


def _simulated_judge_identity(settings: Settings) -> str:
    """The simulated judge plays the run's script too (refusals, malformed or gullible
    verdicts, qualities per judge name): its verdicts are cached under that script."""
    return f"{_simulated_identity(settings)}/judge"


def key_choices(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, KeyChoice]:
    """The key of each role's endpoint (raises ``MissingKey`` for a named, unset variable)."""
    env = os.environ if environ is None else environ
    choices = {}
    batched = batch_roles(settings.batch)
    for role, model, base, var, option in (
        ("model", settings.model, settings.api_base, settings.api_key_env, "--bsa-api-key-env"),
        (
            "judge",
            settings.judge,
            settings.judge_api_base,
            settings.judge_api_key_env,
            "--bsa-judge-api-key-env",
        ),
    ):
        if model == SIMULATED:
            choices[role] = KeyChoice(role, None, "the simulated endpoint")
            continue
        if base is None and role in batched and batch_provider(model, None) == "openai":
            base = OPENAI_BATCH_BASE  # sent by our batch client, not read by litellm
        choices[role] = choose_key(role, model, base, var, env, option=option)
    # More members of a judge panel share the judge's base URL and key variable (and its
    # batch mode).
    for number, member in enumerate(settings.judges[1:], start=2):
        base = settings.judge_api_base
        if base is None and "judge" in batched and batch_provider(member, None) == "openai":
            base = OPENAI_BATCH_BASE
        role = f"judge {number}"
        choices[role] = choose_key(
            role,
            member,
            base,
            settings.judge_api_key_env,
            env,
            option="--bsa-judge-api-key-env",
        )
    return choices


def _price(
    settings: Settings, model: str, *, simulated: bool = False
) -> tuple[float, float] | None:
    """USD per million input, output tokens: --bsa-price, else litellm's price map (so direct
    transports report costs and --bsa-max-cost holds for them). Simulated endpoints (also a
    judge panel's members the simulator plays): unknown."""
    if (simulated or model == SIMULATED) and model not in settings.prices:
        return None
    from pytest_bsa.engine.prices import price_for

    price = price_for(model, settings.prices)
    return None if price is None else (price.input, price.output)


def _transport(
    role: str, model: str, base: str | None, key: KeyChoice, settings: Settings, cache: Any
) -> Transport:
    """The role's transport: direct or litellm, wrapped in a batching one for --bsa-batch.
    ``role``: "model", "judge" or "judge N" (a panel's member N, batched with the judge).
    ``key`` is the role's :func:`key_choices` entry (the one place keys are decided)."""
    option = "--bsa-api-key-env" if role == "model" else "--bsa-judge-api-key-env"
    if role.split(" ")[0] not in batch_roles(settings.batch):
        return make_transport(model, base, key.api_key, api_key_env=key.env or option)
    from pytest_bsa.engine.batch import BatchingTransport
    from pytest_bsa.engine.batch_setup import make_batch_client

    wire = "openai/simulated" if model == SIMULATED else model
    if base is None and batch_provider(wire, base) == "openai":
        base = OPENAI_BATCH_BASE  # OpenAI's own batch API (key_choices chose for it too)
    client = make_batch_client(wire, base, key.api_key, api_key_env=key.env or option)
    return BatchingTransport(client, cache, role=role, poll_interval=settings.batch_poll)


def run_fingerprint(settings: Settings) -> str:
    """What makes two runs' model answers interchangeable: endpoint, model, generation
    parameters, system prompt and k. An interrupted run is resumed only with the same one."""
    endpoint = _simulated_identity(settings) if settings.model == SIMULATED else settings.api_base
    material = {
        "endpoint": endpoint,
        "model": settings.model,
        "params": settings.generation_params,
        "system_prompt": settings.system_prompt,
        "samples": settings.samples,
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def open_cache(settings: Settings, cache_dir: Path) -> Cache | None:
    return None if settings.cache == "off" else Cache.open(cache_dir, settings.cache)


def build_engine(
    settings: Settings,
    cache_dir: Path,
    *,
    keys: Mapping[str, KeyChoice] | None = None,
    cache: Cache | None = None,
    scope: AnswerScope | None = None,
    rubric: Rubric = BSA_RUBRIC,
    pipeline: Any = None,
    judge_only: bool = False,
) -> tuple[Engine, Any]:
    """Returns the engine and the simulator it started (or ``None``). With ``pipeline`` (a
    :class:`~pytest_bsa.engine.pipeline.Pipeline`), the model is the team's own hook.

    ``cache`` (opened from ``cache_dir`` when not given) and ``scope``, the run's answer scope
    (begun in the cache when not given; see :class:`~pytest_bsa.engine.cache.AnswerScope`).
    ``judge_only`` builds an engine that only judges known outputs (judge-check, rejudge):
    no model transport, no answer scope, and a model call is an error.
    """
    keys = keys if keys is not None else key_choices(settings)
    simulator = None
    if SIMULATED in (settings.model, settings.judge):
        simulator = _start_simulator(settings.simulate_script)
    model_base = simulator.base_url if settings.model == SIMULATED else settings.api_base
    judge_base = simulator.base_url if settings.judge == SIMULATED else settings.judge_api_base
    for role, name, base in (
        ("model", settings.model, settings.api_base),
        ("judge", settings.judge, settings.judge_api_base),
    ):
        problem = name != SIMULATED and base and unreachable(role, base)
        if problem:
            if simulator is not None:
                simulator.stop()
            raise EndpointUnreachable(problem)
    model_identity = _simulated_identity(settings) if settings.model == SIMULATED else None
    if cache is None:
        cache = open_cache(settings, cache_dir)
    if judge_only:
        model_transport: Any = NoModelTransport()
    elif pipeline is not None:
        from pytest_bsa.engine.pipeline import PipelineTransport

        model_transport = PipelineTransport(pipeline)
        model_identity = pipeline.identity
    else:
        model_transport = _transport(
            "model", settings.model, model_base, keys["model"], settings, cache
        )
    judge_transport = _transport(
        "judge", settings.judge, judge_base, keys["judge"], settings, cache
    )
    fingerprint = run_fingerprint(settings)
    if scope is None and cache is not None and not judge_only:
        scope = cache.begin_run(fingerprint, settings.answers)
    panel = [
        (
            RequestSpec(
                member,
                judge_base,
                settings.judge_params,
                price=_price(settings, member, simulated=settings.judge == SIMULATED),
                rpm=settings.rpm,
                tpm=settings.tpm,
            ),
            _transport(
                f"judge {number}", member, judge_base, keys[f"judge {number}"], settings, cache
            ),
        )
        for number, member in enumerate(settings.judges[1:], start=2)
    ]
    engine = Engine(
        model=RequestSpec(
            settings.model,
            model_base,
            settings.generation_params,
            cache_base=model_identity,
            price=_price(settings, settings.model),
            rpm=settings.rpm,
            tpm=settings.tpm,
        ),
        judge_spec=RequestSpec(
            settings.judge,
            judge_base,
            settings.judge_params,
            cache_base=_simulated_judge_identity(settings) if settings.judge == SIMULATED else None,
            price=_price(settings, settings.judge),
            rpm=settings.rpm,
            tpm=settings.tpm,
        ),
        model_transport=model_transport,
        judge_transport=judge_transport,
        samples=settings.samples,
        system_prompt=settings.system_prompt,
        concurrency=settings.concurrency,
        timeout=settings.timeout,
        retry=RetryPolicy(max_retries=settings.max_retries),
        cache=cache,
        judge_max_reasks=settings.judge_max_reasks,
        max_cost=settings.max_cost,
        rubric=rubric,
        breaker=settings.breaker,
        scope=scope,
        fingerprint=fingerprint,
        panel=panel,
        judge_samples=settings.judge_samples,
        adaptive=settings.concurrency_mode == "adaptive",
        template_opens_think=settings.think_tags == "template",
    )
    return engine, simulator


class NoModelTransport:
    """The model transport of a judge-only engine: every call is refused (never retried)."""

    async def complete(self, request: Any, *, timeout: float) -> Any:
        from pytest_bsa.engine.types import TransportError

        raise TransportError("client", "this command judges saved outputs and calls no model")

    async def aclose(self) -> None:
        return None
