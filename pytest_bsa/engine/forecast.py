"""The estimate of a run from its settings: prices, the cache's history, the selection."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest_bsa.config import Settings
from pytest_bsa.engine.cache import CACHE_FILENAME, Cache, CacheError
from pytest_bsa.engine.prices import price_for
from pytest_bsa.estimate import History, RunEstimate, estimate_run
from pytest_bsa.models import Instance


def history_of(cache_dir: Path, model: str) -> History | None:
    """Means over ``model``'s stored completions; None without a readable cache file."""
    path = Path(cache_dir).expanduser() / CACHE_FILENAME
    if not path.is_file():
        return None
    try:
        with Cache(path, "read") as cache:
            found = cache.completion_history(model)
    except CacheError:
        return None  # the run itself reports an unusable cache
    if found is None:
        return None
    return History(
        calls=int(found["calls"]),
        prompt_tokens=found["prompt_tokens"],
        completion_tokens=found["completion_tokens"],
        latency_s=found["latency_s"],
    )


def estimate_for(
    settings: Settings, instances: Sequence[Instance], cache_dir: Path | None
) -> RunEstimate:
    """The estimate shown in the header and by ``--collect-only``, and checked against
    ``--bsa-max-cost`` before the first call."""
    use_cache = cache_dir is not None and settings.cache != "off"
    batch = getattr(settings, "batch", "off")
    return estimate_run(
        instances,
        samples=settings.samples,
        system_prompt=settings.system_prompt,
        max_tokens=settings.max_tokens,
        model=settings.model,
        judge=settings.judge,
        model_price=price_for(settings.model, settings.prices),
        judge_price=price_for(settings.judge, settings.prices),
        model_history=history_of(cache_dir, settings.model) if use_cache and cache_dir else None,
        concurrency=settings.concurrency,
        rpm=settings.rpm,
        tpm=settings.tpm,
        batch=frozenset({"model", "judge"} if batch == "both" else {batch} - {"off"}),
    )
