"""Keep pytest's rootdir and config file where the user is when a ``--bsa-*`` value is a path.

pytest decides its rootdir and reads its config file in ``Config.parse`` before entry-point
plugins add their options (pytest#8846). In ``--bsa-dataset /data/x.csv`` (a space, not ``=``)
the value then looks like a test path: the rootdir becomes ``/data``, the ini file of the user's
project is not read (its ``[tool.bsa]`` thresholds and ``bsa_*`` values are lost), and
``.pytest_cache`` is written next to the dataset. ``--bsa-dataset=/data/x.csv`` is not affected.

:func:`restore_setup` runs in ``pytest_load_initial_conftests`` (first), when every option is
known and before anything has used the rootdir: it redoes pytest's own determination on the
command line as pytest would have parsed it with our options known, and when the answer differs
it puts the config back to that answer (rootdir, ini file, ini values, ``addopts``,
``confcutdir``, ``pythonpath``). What cannot be undone (plugins or paths that a *foreign* ini
file near the value added) is refused with the ``--opt=value`` spelling as the fix.
"""

from __future__ import annotations

import copy
import inspect
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

PREFIX = "--bsa-"


def may_be_affected(args: Sequence[str]) -> bool:
    """Cheap test: a ``--bsa-*`` option written without ``=`` (its value may be a path)."""
    return any(a.startswith(PREFIX) and "=" not in a for a in args)


def command_line(config: pytest.Config) -> list[str]:
    """``PYTEST_ADDOPTS`` and the invocation arguments: what pytest read the rootdir from."""
    env = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    return [*env, *(str(a) for a in config.invocation_params.args)]


def _determine(config: pytest.Config, namespace: Any) -> tuple[Path, Path | None, Any]:
    from _pytest.config.findpaths import determine_setup

    wanted = {
        "inifile": namespace.inifilename,
        "override_ini": getattr(namespace, "override_ini", None),
        "args": namespace.file_or_dir,
        "rootdir_cmd_arg": namespace.rootdir or None,
        "invocation_dir": config.invocation_params.dir,
        "config": config,
    }
    accepted = inspect.signature(determine_setup).parameters
    found = determine_setup(**{k: v for k, v in wanted.items() if k in accepted})
    return found[0], found[1], found[2]


def _set_ini(config: Any, inicfg: Any) -> None:
    if hasattr(config, "_inicfg"):
        config._inicfg = inicfg
    else:  # pytest 8
        config.inicfg = inicfg
    config._inicache.clear()


def _spelling_error(option_values: Sequence[str], why: str) -> pytest.UsageError:
    shown = " ".join(option_values[:2])
    return pytest.UsageError(
        f"pytest-bsa: pytest took a --bsa-* value for a test path ({shown}) and {why}; "
        "write the option with '=' (e.g. --bsa-dataset=/data/dataset.csv)"
    )


def _spaced(args: Sequence[str]) -> list[str]:
    return [f"{a} {args[i + 1]}" for i, a in enumerate(args[:-1]) if a.startswith(PREFIX)]


def restore_setup(config: pytest.Config, args: list[str]) -> None:
    """Give pytest the rootdir and ini file it would have found with ``--opt=value``.

    ``args`` is the list pytest goes on to parse (``addopts`` of the ini file included); it is
    edited in place when the right ini file's ``addopts`` differ from the wrong one's.
    """
    base = command_line(config)
    if not may_be_affected(base):
        return
    parser = config._parser
    namespace = parser.parse_known_args(base, namespace=copy.copy(config.option))
    rootpath, inipath, inicfg = _determine(config, namespace)
    if rootpath == config.rootpath and inipath == config.inipath:
        return
    old_addopts = list(config.getini("addopts"))
    if config.inipath is not None:
        foreign = [k for k in ("pythonpath", "required_plugins") if config.getini(k)]
        if foreign or any(a.startswith("-p") for a in old_addopts):
            raise _spelling_error(_spaced(base), f"read the config file {config.inipath}")
    config._rootpath = rootpath  # type: ignore[attr-defined]
    config._inipath = inipath  # type: ignore[attr-defined]
    _set_ini(config, inicfg)
    parser.extra_info["rootdir"] = str(rootpath)
    parser.extra_info["inifile"] = str(inipath)
    new_addopts = list(config.getini("addopts"))
    if new_addopts != old_addopts:
        env = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
        args[:] = [*env, *new_addopts, *(str(a) for a in config.invocation_params.args)]
        config.pluginmanager.consider_preparse(args, exclude_only=False)
    config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(config.option))
    if config.known_args_namespace.confcutdir is None:
        cut = inipath.parent if inipath is not None else rootpath
        config.known_args_namespace.confcutdir = str(cut)
    for step in ("_checkversion", "_configure_python_path", "_validate_plugins"):
        method = getattr(config, step, None)
        if method is not None:
            method()
