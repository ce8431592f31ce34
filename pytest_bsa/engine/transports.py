"""Choosing a transport: a direct one when possible (OpenAI-compatible, Anthropic), litellm
otherwise.

Importing this module is cheap: aiohttp and litellm load only when a transport is used.
"""

from __future__ import annotations

from pytest_bsa.engine.openai_compat import DIRECT_PREFIXES, OpenAICompatTransport
from pytest_bsa.engine.types import Transport


def is_direct(model: str, api_base: str | None) -> bool:
    """Whether ``model`` at ``api_base`` can go straight to ``{api_base}/chat/completions``."""
    if not api_base:
        return False
    return model.startswith(DIRECT_PREFIXES) or "/" not in model


def is_anthropic(model: str) -> bool:
    """``anthropic/...`` models go to the direct Anthropic Messages transport."""
    return model.startswith("anthropic/")


def has_own_transport(model: str, api_base: str | None) -> bool:
    """Whether one of our own HTTP transports (not litellm) serves ``model`` at ``api_base``:
    then only the key we pass is sent, and nothing reads a key variable by itself."""
    return is_anthropic(model) or is_direct(model, api_base)


def make_transport(
    model: str,
    api_base: str | None,
    api_key: str | None,
    *,
    api_key_env: str | None = None,
    max_connections: int = 256,
) -> Transport:
    """A direct transport when possible (OpenAI-compatible, Anthropic), litellm for the rest.

    ``api_key`` is sent as it is: ``engine/keys.py:choose_key`` decided it for this endpoint.
    """
    if is_anthropic(model):
        from pytest_bsa.engine.anthropic_transport import AnthropicTransport

        return AnthropicTransport(api_key, max_connections=max_connections, api_key_env=api_key_env)
    if is_direct(model, api_base):
        return OpenAICompatTransport(
            api_key, max_connections=max_connections, api_key_env=api_key_env
        )
    from pytest_bsa.engine.litellm_transport import LiteLLMTransport

    return LiteLLMTransport(api_key, api_key_env=api_key_env)
