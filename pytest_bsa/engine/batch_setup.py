"""Which batch API serves a role, its client, and when ``--bsa-batch`` cannot work (exit 4).
Importing this module does not import aiohttp."""

from __future__ import annotations

from typing import Any

from pytest_bsa.engine.batch_types import BatchClient
from pytest_bsa.engine.transports import is_direct


def batch_provider(model: str, api_base: str | None) -> str | None:
    """Which batch API serves ``model`` at ``api_base``: ``"openai"`` (OpenAI or any
    OpenAI-compatible base URL), ``"anthropic"``, or None (litellm-only providers)."""
    if model.startswith("anthropic/"):
        return "anthropic"
    if is_direct(model, api_base) or (model.startswith("openai/") and not api_base):
        return "openai"
    return None


def make_batch_client(
    model: str, api_base: str | None, api_key: str | None, *, api_key_env: str | None = None
) -> BatchClient:
    """The batch client for ``model`` (see :func:`batch_provider`); ``api_key`` is sent as it
    is (``engine/keys.py:choose_key`` decided it for this endpoint)."""
    provider = batch_provider(model, api_base)
    if provider == "anthropic":
        from pytest_bsa.engine.batch_anthropic import AnthropicBatchClient

        return AnthropicBatchClient(api_base, api_key, api_key_env=api_key_env)
    if provider == "openai":
        from pytest_bsa.engine.batch_openai import OpenAIBatchClient

        return OpenAIBatchClient(api_base, api_key, api_key_env=api_key_env)
    raise ValueError(f"no batch API for {model!r}")


def batch_roles(batch: str) -> frozenset[str]:
    """``--bsa-batch`` as the set of roles it batches."""
    return frozenset({"model", "judge"} if batch == "both" else {batch} - {"off"})


def batch_problem(settings: Any, *, xdist: bool) -> str | None:
    """Why ``--bsa-batch`` cannot work with these settings (a sentence naming the fix), or None."""
    roles = batch_roles(settings.batch)
    if not roles:
        return None
    if xdist:
        return (
            f"--bsa-batch {settings.batch} gathers the run into batches, but under pytest-xdist "
            "each worker sees one test at a time: run batch mode in one process (drop -n)"
        )
    if settings.cache in ("off", "read"):
        return (
            f"--bsa-batch {settings.batch} needs a writable cache to pick a batch up after an "
            f"interruption, not --bsa-cache={settings.cache}: use readwrite (the default) or write"
        )
    endpoints = []  # (role, model, base URL) of every batched endpoint
    if "judge" in roles:
        endpoints.append(("judge", settings.judge, settings.judge_api_base))
        if settings.judge != "simulated":  # a panel's further members share the judge's base
            endpoints += [("judge", m, settings.judge_api_base) for m in settings.judges[1:]]
    if "model" in roles:
        endpoints.append(("model", settings.model, settings.api_base))
    for role, model, base in endpoints:
        if role == "model" and model.startswith("pipeline:"):
            return (
                f"--bsa-batch {settings.batch}: the model {model!r} is your own pipeline "
                "(pytest_bsa_generate), which no batch API can run; use --bsa-batch judge"
            )
        if model != "simulated" and batch_provider(model, base) is None:
            return (
                f"--bsa-batch {settings.batch}: the {role} {model!r} goes through litellm, which "
                "has no batch path here; batch mode works for openai/... models (OpenAI or any "
                "OpenAI-compatible --bsa-api-base) and anthropic/... models"
            )
    return None
