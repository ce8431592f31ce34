"""The estimate of a run from its settings: prices, the cache's history, the selection."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest_bsa.config import Settings
from pytest_bsa.engine.batch_setup import batch_provider, batch_roles
from pytest_bsa.engine.cache import CACHE_FILENAME, Cache, CacheError
from pytest_bsa.engine.prices import price_for
from pytest_bsa.engine.scope import AnswerScope
from pytest_bsa.estimate import History, PanelPrice, PriceLike, RunEstimate, estimate_run
from pytest_bsa.models import Instance
from pytest_bsa.rubrics import Rubric
from pytest_bsa.rubrics.bsa import BSA_RUBRIC


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
    settings: Settings,
    instances: Sequence[Instance],
    cache_dir: Path | None,
    rubric: Rubric = BSA_RUBRIC,
) -> RunEstimate:
    """The estimate shown in the header and by ``--collect-only``, and checked against
    ``--bsa-max-cost`` before the first call; the judge's prompts are ``rubric``'s."""
    use_cache = cache_dir is not None and settings.cache != "off"
    judge, judge_price = judge_pricing(settings)
    return estimate_run(
        instances,
        samples=settings.samples,
        system_prompt=settings.system_prompt,
        max_tokens=settings.max_tokens,
        model=settings.model,
        judge=judge,
        model_price=price_for(settings.model, settings.prices),
        judge_price=judge_price,
        model_history=history_of(cache_dir, settings.model) if use_cache and cache_dir else None,
        concurrency=settings.concurrency,
        rpm=settings.rpm,
        tpm=settings.tpm,
        batch=batch_roles(settings.batch),
        rubric=rubric,
        judge_max_tokens=settings.judge_max_tokens,
        judge_reasoning_effort=settings.judge_reasoning_effort,
        judge_asks=len(settings.judge_models) * settings.judge_samples,
    )


def judge_pricing(settings: Settings) -> tuple[str, PriceLike | None]:
    """The judge as the estimate names it, and its price: a panel's members share the judge's
    calls (a member without a price makes the cost unknown, and is named); the simulator plays
    every member of a simulated judge's panel."""
    members = settings.judge_models
    if settings.judge == "simulated":
        members = tuple(m if m in settings.prices else "simulated" for m in members)
    prices = [price_for(m, settings.prices) for m in members]
    if len(members) == 1:
        return members[0], prices[0]
    unknown = [m for m, p in zip(members, prices, strict=True) if p is None]
    if unknown:
        return unknown[0], None
    label = "simulated" if set(members) == {"simulated"} else settings.judge_label
    return label, PanelPrice(tuple(p for p in prices if p is not None))


def forecast_lines(
    settings: Settings,
    cache_dir: Path,
    scope: AnswerScope | None,
    instances: Sequence[Instance] | None,
    rubric: Rubric = BSA_RUBRIC,
) -> list[str]:
    """The header's lines on cost: batch mode (if on) and the estimate of ``instances`` (None:
    none yet; ``--collect-only`` prints it for what it collected)."""
    lines = [batch_header(settings, cache_dir, scope)] if settings.batch != "off" else []
    if instances is not None:
        lines += estimate_for(settings, instances, cache_dir, rubric).lines()
    return lines


_PROVIDERS = {"openai": "the OpenAI batch API", "anthropic": "Anthropic message batches"}


def batch_header(settings: Settings, cache_dir: Path, scope: AnswerScope | None = None) -> str:
    """The header line of a batch-mode run, with what it picks up of unfinished batches: the
    model requests of the run it resumes (``scope``; all of them with --bsa-answers=reuse) and
    the judge requests every run shares. Other runs' model batches are left alone."""
    roles = sorted(batch_roles(settings.batch), reverse=True)  # model before judge
    via = []
    for role in roles:
        model = settings.model if role == "model" else settings.judge
        base = settings.api_base if role == "model" else settings.judge_api_base
        provider = "openai" if model == "simulated" else batch_provider(model, base)
        via.append(f"{role} via {_PROVIDERS.get(provider or '', 'a batch API')}")
    line = (
        f"bsa: batch mode: {', '.join(via)} (half price, results within 24 h), polled every "
        f"{settings.batch_poll:g} s"
    )
    path = Path(cache_dir).expanduser() / CACHE_FILENAME
    if path.is_file():
        try:
            with Cache(path, "read") as cache:
                waiting = cache.open_batches()
        except CacheError:
            waiting = []
        mine = {None, scope.run_id} if scope is not None else {None}
        reuse = scope is not None and scope.mode == "reuse"
        taken = [w for w in waiting if reuse or w[2] in mine]
        left = [w for w in waiting if w not in taken and not str(w[2]).startswith("probe-")]
        if taken:
            requests = sum(w[3] for w in taken)
            line += (
                f"; the cache holds {len({w[0] for w in taken})} unfinished batch(es) with "
                f"{requests:,} requests from an interrupted run, picked up instead of paid again"
            )
        if left:
            line += (
                f"; {len({w[0] for w in left})} unfinished batch(es) of other runs are not used "
                "(a new run samples afresh; see --bsa-answers)"
            )
    return line
