"""Deterministic chance for the simulator: the same draw in every process and run."""

from __future__ import annotations

import hashlib


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts`` (same in every process)."""
    key = "\x1f".join(str(p) for p in parts).encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64
