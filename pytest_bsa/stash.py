"""Where the run's state is kept: one key in ``config.stash`` (pytest's per-run storage)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_bsa.session import BsaSession

session_key: pytest.StashKey[BsaSession] = pytest.StashKey()
