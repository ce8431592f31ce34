"""Which API key goes to which endpoint. One function decides, for every transport.

The rule (README "Keys"):

- a variable named for the endpoint (``--bsa-api-key-env`` / ``--bsa-judge-api-key-env``) is
  sent, and only its value;
- otherwise the provider's own URL gets the provider's usual variable (``OPENAI_API_KEY`` to
  api.openai.com, ``ANTHROPIC_API_KEY`` to api.anthropic.com, ...): without a base URL the
  provider's client (litellm) reads that variable itself, or, for a provider we reach with our
  own transport (``anthropic/...``: the direct Messages transport), we send it to the provider's
  default host;
- any other base URL gets no key at all. For a litellm provider a placeholder is passed, so that
  litellm's own fallback to environment variables cannot send a real key there either.

Pure (no pytest import); the environment is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pytest_bsa.engine.transports import has_own_transport, is_direct

# What litellm gets instead of a key for a base URL that was given no variable: never a secret.
NO_KEY = "no-key-configured"

# Provider prefix -> (its own API host, its usual key variable).
PROVIDER_HOSTS: dict[str, tuple[str, str]] = {
    "openai": ("api.openai.com", "OPENAI_API_KEY"),
    "anthropic": ("api.anthropic.com", "ANTHROPIC_API_KEY"),
    "deepseek": ("api.deepseek.com", "DEEPSEEK_API_KEY"),
    "gemini": ("generativelanguage.googleapis.com", "GEMINI_API_KEY"),
    "mistral": ("api.mistral.ai", "MISTRAL_API_KEY"),
    "groq": ("api.groq.com", "GROQ_API_KEY"),
    "xai": ("api.x.ai", "XAI_API_KEY"),
    "together_ai": ("api.together.xyz", "TOGETHERAI_API_KEY"),
    "openrouter": ("openrouter.ai", "OPENROUTER_API_KEY"),
    "fireworks_ai": ("api.fireworks.ai", "FIREWORKS_AI_API_KEY"),
}


class MissingKey(ValueError):
    """A key variable was named but is not set."""


@dataclass(frozen=True)
class KeyChoice:
    """The key one endpoint gets: which variable (by name), where it goes, and its value."""

    role: str  # "model" or "judge"
    env: str | None  # the variable whose value is sent; None: no key
    host: str  # where it goes, e.g. "api.openai.com" or "127.0.0.1:8000"
    value: str | None = field(default=None, repr=False)
    by_library: bool = False  # litellm reads ``env`` itself (no base URL given)
    placeholder: bool = False  # pass NO_KEY so that litellm sends no real key

    @property
    def api_key(self) -> str | None:
        """What the transport is given as its key."""
        return NO_KEY if self.placeholder else self.value

    def describe(self) -> str:
        """For the header: names only, never a value."""
        if self.env is None:
            return f"{self.role} gets no key at {self.host}"
        how = " (read by litellm)" if self.by_library else ""
        return f"{self.role} gets ${self.env}{how} at {self.host}"


def provider_of(model: str, api_base: str | None) -> str:
    """The provider whose key rules apply: ``openai`` for an OpenAI-compatible endpoint."""
    if is_direct(model, api_base):
        return "openai"
    if "/" in model:
        return model.split("/", 1)[0]
    return "openai"  # a bare name without a base URL is litellm's OpenAI default


def _host(api_base: str) -> tuple[str, str]:
    """(hostname, host[:port] for display)."""
    parts = urlsplit(api_base)
    hostname = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return hostname, f"{hostname}:{port}" if port else hostname


def choose_key(
    role: str,
    model: str,
    api_base: str | None,
    env_var: str | None,
    environ: Mapping[str, str],
    *,
    option: str = "--bsa-api-key-env",
) -> KeyChoice:
    """The key for ``role``'s endpoint; raises :class:`MissingKey` for a named, unset variable."""
    provider = provider_of(model, api_base)
    own = PROVIDER_HOSTS.get(provider)
    if api_base:
        hostname, shown = _host(api_base)
    else:
        hostname, shown = (own[0], own[0]) if own else ("", f"{provider}'s default endpoint")
    direct = has_own_transport(model, api_base)  # sends only what we give it
    if env_var:
        if not environ.get(env_var):
            raise MissingKey(
                f"{option} {env_var}: the variable is empty or not set; export it (the {role}'s "
                "key) or leave the option out"
            )
        return KeyChoice(role, env_var, shown, environ[env_var])
    if not api_base:
        env = own[1] if own else f"{provider.upper()}_API_KEY"
        if direct:  # our transport goes to the provider's default host: the provider's key
            return KeyChoice(role, env, shown, environ.get(env) or None)
        return KeyChoice(role, env, shown, None, by_library=True)
    if own and hostname == own[0] and environ.get(own[1]):
        return KeyChoice(role, own[1], shown, environ[own[1]])
    return KeyChoice(role, None, shown, None, placeholder=not direct)
