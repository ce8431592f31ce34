"""pytest entry point: options and hooks only. Imports nothing heavy.

Everything stateful lives in one :class:`pytest_bsa.session.BsaSession` kept in
``config.stash``; it exists only when ``--bsa-model`` (or the ``bsa_model`` ini value) is set,
so an ordinary pytest run is untouched.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_bsa.options import add_options
from pytest_bsa.stash import session_key


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_bsa import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    """``--bsa-dataset /data/x.csv`` must not move the rootdir to /data (pytest#8846)."""
    from pytest_bsa.rootdir import restore_setup

    restore_setup(early_config, args)


def _active(config: pytest.Config) -> bool:
    model = config.getoption("bsa_model")
    if model is not None and not model.strip():
        raise pytest.UsageError(
            f"pytest-bsa: --bsa-model {model!r} is empty (an unset CI variable?); pass a model, "
            "e.g. --bsa-model=openai/my-model, or leave the option out to skip the benchmark"
        )
    return bool(model or config.getini("bsa_model"))


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _active(config):
        return
    from pytest_bsa.session import BsaSession

    bsa = BsaSession.from_pytest(config)
    config.stash[session_key] = bsa
    config.pluginmanager.register(bsa, "bsa-session")


@pytest.hookimpl(tryfirst=True)  # release the run's samples before pytest's final gc
def pytest_unconfigure(config: pytest.Config) -> None:
    bsa = config.stash.get(session_key, None)
    if bsa is not None:
        bsa.close()


def pytest_report_header(config: pytest.Config) -> Any:
    bsa = config.stash.get(session_key, None)
    return bsa.header_lines() if bsa is not None else None
