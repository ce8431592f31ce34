"""pytest-bsa: the Beyond Safe Answers benchmark as a pytest release gate.

Importing this package is cheap: heavy modules (litellm, aiohttp) load only when a run needs them.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``pytest_bsa.Generation``, imported on first use (the package itself stays cheap)."""
    if name == "Generation":
        from pytest_bsa.engine.pipeline import Generation

        return Generation
    raise AttributeError(f"module 'pytest_bsa' has no attribute {name!r}")
