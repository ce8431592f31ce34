"""Prices in USD per million tokens: ``--bsa-price`` first, then litellm's bundled price map.

The map is read as JSON from litellm's package directory (~20 ms) without importing litellm
(5-7 s, DESIGN.md section 3), and only when a price is asked for.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIMULATED = "simulated"
PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"
BATCH_DISCOUNT = 0.5  # batch APIs cost half (OpenAI, Anthropic); used when the map has no price


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens, direct and through a batch API."""

    input: float
    output: float
    batch_input: float
    batch_output: float
    source: str  # "--bsa-price" | "litellm's price map" | "simulated"

    def per_call(self, input_tokens: float, output_tokens: float, *, batch: bool) -> float:
        rates = (self.batch_input, self.batch_output) if batch else (self.input, self.output)
        return (input_tokens * rates[0] + output_tokens * rates[1]) / 1e6

    def shown(self) -> str:
        return f"${self.input:g}/${self.output:g} per 1M in/out, {self.source}"


@functools.cache
def price_map() -> Mapping[str, Any]:
    """litellm's bundled price map, or an empty map when litellm or the file is not there."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return {}
    for location in (spec.submodule_search_locations or ()) if spec else ():
        path = Path(location) / PRICE_MAP_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def _per_million(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value) * 1e6
    return None


def _from_map(model: str, table: Mapping[str, Any]) -> Price | None:
    provider, _, name = model.partition("/")
    candidates = [(model, None)]
    if name:
        candidates.append((name, provider))  # "anthropic/claude-x" is listed as "claude-x"
    for key, wanted_provider in candidates:
        entry = table.get(key)
        if not isinstance(entry, Mapping):
            continue
        if wanted_provider is not None and entry.get("litellm_provider") != wanted_provider:
            continue
        cost_in = _per_million(entry.get("input_cost_per_token"))
        cost_out = _per_million(entry.get("output_cost_per_token"))
        if cost_in is None or cost_out is None:
            continue
        batch_in = _per_million(entry.get("input_cost_per_token_batches"))
        batch_out = _per_million(entry.get("output_cost_per_token_batches"))
        return Price(
            cost_in,
            cost_out,
            cost_in * BATCH_DISCOUNT if batch_in is None else batch_in,
            cost_out * BATCH_DISCOUNT if batch_out is None else batch_out,
            "litellm's price map",
        )
    return None


def price_for(
    model: str,
    overrides: Mapping[str, tuple[float, float]],
    table: Mapping[str, Any] | None = None,
) -> Price | None:
    """The price of ``model``, or ``None`` when nobody knows it."""
    if model in overrides:
        cost_in, cost_out = overrides[model]
        return Price(
            cost_in,
            cost_out,
            cost_in * BATCH_DISCOUNT,
            cost_out * BATCH_DISCOUNT,
            "--bsa-price",
        )
    if model == SIMULATED:
        return Price(0.0, 0.0, 0.0, 0.0, "simulated")
    return _from_map(model, price_map() if table is None else table)
