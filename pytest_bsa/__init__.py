"""pytest-bsa: the Beyond Safe Answers benchmark as a pytest release gate.

Importing this package is cheap: heavy modules (litellm, aiohttp) load only when a run needs them.
"""

__version__ = "0.1.0"
