"""The argparse types of the ``--bsa-*`` option values: one parser for every number, and the
shard ``I/N`` (pure: no pytest). A bad value is an error that quotes it and gives an example."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def _number(convert: Callable[[str], Any], fits: Callable[[Any], bool], what: str) -> Any:
    """An argparse type: ``convert``'s value when it ``fits``, else the error "is not ``what``"."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not fits(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive whole number, e.g. 5")
non_negative_int = _number(int, lambda v: v >= 0, "a whole number >= 0, e.g. 6")
whole_number = _number(int, lambda v: True, "a whole number, e.g. 1")
non_negative_float = _number(
    float, lambda v: 0 <= v < float("inf"), "a non-negative number, e.g. 0.6"
)
positive_float = _number(
    float, lambda v: 0 < v < float("inf"), "a positive number of seconds, e.g. 600"
)
per_minute = _number(  # a rate limit: 0 would never send
    float,
    lambda v: 0 < v < float("inf"),
    "a positive number per minute, e.g. 60; leave the option out for no limit",
)
fraction = _number(float, lambda v: 0 <= v <= 1, "a fraction between 0 and 1, e.g. 0.05")
kappa = _number(float, lambda v: -1 <= v <= 1, "a kappa between -1 and 1, e.g. 0.8")
poll_seconds = _number(float, lambda v: 0 < v < float("inf"), "a positive number, e.g. 30")


def shard(text: str) -> tuple[int, int]:
    index, sep, total = text.partition("/")
    try:
        i, n = int(index), int(total)
    except ValueError:
        i, n = 0, 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 1 <= I <= N, e.g. 2/4")
    return i, n
