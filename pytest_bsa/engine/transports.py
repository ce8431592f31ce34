"""Choosing a transport: the direct OpenAI-compatible one when possible, litellm otherwise.

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


def make_transport(
    model: str,
    api_base: str | None,
    api_key: str | None,
    *,
    api_key_env: str | None = None,
    max_connections: int = 256,
) -> Transport:
    """The direct OpenAI-compatible transport when possible, litellm for everything else."""
    if is_direct(model, api_base):
        return OpenAICompatTransport(
            api_key, max_connections=max_connections, api_key_env=api_key_env
        )
    from pytest_bsa.engine.litellm_transport import LiteLLMTransport

    return LiteLLMTransport(api_key, api_key_env=api_key_env)
