"""GitHub integration: the sticky PR comment, the baseline from the default branch, workflow
commands and step outputs, and the Action's own steps (``python -m pytest_bsa github ...``).

Pure except for :mod:`pytest_bsa.github.api` (HTTP over httpx); no pytest import anywhere.
"""
