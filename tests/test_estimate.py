"""Estimates before spending: prices, the estimate's arithmetic, the header and --collect-only
lines, and --bsa-max-cost refusing up front with the numbers (no call made, no file written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SIX, requests, run_bsa, write_rows

from pytest_bsa.engine.prices import Price, price_for
from pytest_bsa.estimate import (
    DEFAULT_JUDGE_OUTPUT_TOKENS,
    DEFAULT_MODEL_LATENCY_S,
    DEFAULT_MODEL_OUTPUT_TOKENS,
    History,
    estimate_run,
)
from pytest_bsa.models import Instance, Label
from pytest_bsa.simulate import Script

TABLE = {
    "gpt-x": {
        "litellm_provider": "openai",
        "input_cost_per_token": 2e-6,
        "output_cost_per_token": 8e-6,
        "input_cost_per_token_batches": 1e-6,
        "output_cost_per_token_batches": 4e-6,
    },
    "claude-x": {
        "litellm_provider": "anthropic",
        "input_cost_per_token": 3e-6,
        "output_cost_per_token": 15e-6,
    },
    "deepseek/reasoner-x": {
        "litellm_provider": "deepseek",
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 2e-6,
    },
}


def instances(n: int, query: str = "q" * 400) -> list[Instance]:
    return [
        Instance(
            id=f"i{k}",
            query=query,
            risk_summary="A risk in neutral words.",
            scenario="Risk Omission",
            labels=(Label(category="Rumors", subcategory="X"),),
        )
        for k in range(n)
    ]


# -- prices -----------------------------------------------------------------------------------


def test_prices_come_from_the_option_then_the_map_with_the_provider_checked() -> None:
    assert price_for("openai/gpt-x", {}, TABLE) == Price(2.0, 8.0, 1.0, 4.0, "litellm's price map")
    claude = price_for("anthropic/claude-x", {}, TABLE)
    assert claude is not None and (claude.batch_input, claude.batch_output) == (1.5, 7.5)
    assert price_for("deepseek/reasoner-x", {}, TABLE) is not None  # listed with its prefix
    assert price_for("anthropic/gpt-x", {}, TABLE) is None  # gpt-x is not Anthropic's
    assert price_for("hosted_vllm/gpt-x", {}, TABLE) is None
    assert price_for("openai/qwen-local", {}, TABLE) is None
    mine = price_for("openai/gpt-x", {"openai/gpt-x": (0.2, 0.6)}, TABLE)
    assert mine == Price(0.2, 0.6, 0.1, 0.3, "--bsa-price")
    assert price_for("simulated", {}, TABLE) == Price(0, 0, 0, 0, "simulated")


def test_the_bundled_price_map_is_read_without_importing_litellm() -> None:
    code = (
        "import sys\n"
        "from pytest_bsa.engine.prices import price_for\n"
        "p = price_for('openai/gpt-4o', {})\n"
        "assert p is not None and p.input > 0 and p.batch_input < p.input, p\n"
        "assert 'litellm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the estimate -----------------------------------------------------------------------------

PRICE = Price(2.0, 8.0, 1.0, 4.0, "test")


def test_defaults_count_every_call_and_price_them() -> None:
    est = estimate_run(
        instances(10), samples=5, system_prompt=None, model="m", judge="j",
        model_price=PRICE, judge_price=PRICE, concurrency=10,
    )  # fmt: skip
    assert (est.model.calls, est.judge.calls) == (50, 100)
    assert est.model.output_tokens == 50 * DEFAULT_MODEL_OUTPUT_TOKENS
    assert est.judge.output_tokens == 100 * DEFAULT_JUDGE_OUTPUT_TOKENS
    assert est.model.input_tokens >= 50 * 100  # 400 characters, ~4 per token
    expected = sum(
        (r.input_tokens * 2.0 + r.output_tokens * 8.0) / 1e6 for r in (est.model, est.judge)
    )
    assert est.cost_usd == pytest.approx(expected)
    assert est.model.seconds == pytest.approx(50 * DEFAULT_MODEL_LATENCY_S / 10)
    assert "defaults" in est.model.basis


def test_history_replaces_the_defaults_and_limits_bound_the_time() -> None:
    history = History(calls=40, prompt_tokens=100, completion_tokens=300, latency_s=2.0)
    est = estimate_run(
        instances(10), samples=5, system_prompt="Be safe. " * 40, model="m", judge="j",
        model_price=PRICE, judge_price=None, model_history=history, concurrency=50, rpm=60,
    )  # fmt: skip
    assert est.model.output_tokens == 50 * 300
    assert "the cache's last 40 answers" in est.model.basis
    assert est.model.seconds == pytest.approx(50.0)  # 60 requests a minute, not 2 s / 50
    assert est.judge.seconds == pytest.approx(100.0)
    assert est.cost_usd is None  # the judge has no price
    text = "\n".join(est.lines())
    assert "judge unknown (no price for j: pass --bsa-price j=IN,OUT" in text


def test_batch_roles_cost_the_batch_price_and_have_no_time() -> None:
    args = dict(
        samples=2, system_prompt=None, model="m", judge="j", model_price=PRICE, judge_price=PRICE
    )
    direct = estimate_run(instances(4), **args)
    batched = estimate_run(instances(4), batch=frozenset({"model", "judge"}), **args)
    assert batched.cost_usd == pytest.approx(direct.cost_usd / 2)
    assert batched.seconds is None
    assert "through a batch API: results within 24 h" in batched.lines()[0]


def test_refusal_names_the_numbers_and_the_fix() -> None:
    est = estimate_run(
        instances(10), samples=5, system_prompt=None, model="m", judge="j",
        model_price=PRICE, judge_price=PRICE,
    )  # fmt: skip
    assert est.refusal(est.cost_usd + 0.01) is None
    why = est.refusal(0.01)
    assert why is not None
    assert f"~${est.cost_usd:,.2f}" in why and "50 model and ~100 judge calls" in why
    assert "above --bsa-max-cost 0.01" in why and "--bsa-limit" in why
    unpriced = estimate_run(
        instances(1), samples=1, system_prompt=None, model="m", judge="j",
        model_price=None, judge_price=PRICE,
    )  # fmt: skip
    assert "no price is known for m; pass --bsa-price m=IN,OUT" in (unpriced.refusal(5) or "")


def test_the_judge_prompt_is_the_rubrics_and_its_replies_fit_its_max_tokens(tmp_path) -> None:
    """#9's judge: bsa-rubric-2 prompts (~500 words and a JSON schema) are counted as sent, an
    official-format rubric's as its templates; verdict length follows the judge's settings."""
    from rubric_files import write_rubric_dir

    from pytest_bsa.estimate import JUDGE_THINKING_TOKENS, judge_prompt_chars
    from pytest_bsa.rubrics import load_rubric
    from pytest_bsa.rubrics.bsa import BSA_RUBRIC

    one = instances(1, query="q")
    args = dict(samples=1, system_prompt=None, model="m", judge="j", model_price=PRICE,
                judge_price=PRICE)  # fmt: skip
    short = estimate_run(one, max_tokens=2, **args)  # almost no graded text
    per_call = short.judge.input_tokens / short.judge.calls
    # ~450-550 words of rubric per verdict, at about 7 characters a word with the schema.
    assert 700 < per_call < 1300
    ours = estimate_run(one, **args)
    words = sum(
        len(str(m["content"]).split())
        for m in BSA_RUBRIC.prompt("safety", one[0], "", truncated=False, structured=True).messages
    )
    assert 450 < words < 650
    assert judge_prompt_chars(BSA_RUBRIC, "safety", one[0]) > 4 * words  # schema included
    stand_in = load_rubric(str(write_rubric_dir(tmp_path / "r")), cache_dir=tmp_path)
    theirs = estimate_run(one, rubric=stand_in, **args)
    assert theirs.judge.input_tokens < ours.judge.input_tokens  # short templates, no schema
    assert ours.judge.output_tokens == 2 * DEFAULT_JUDGE_OUTPUT_TOKENS
    thinking = estimate_run(one, judge_reasoning_effort="high", **args)
    assert thinking.judge.output_tokens == 2 * (
        DEFAULT_JUDGE_OUTPUT_TOKENS + JUDGE_THINKING_TOKENS["high"]
    )
    capped = estimate_run(one, judge_reasoning_effort="high", judge_max_tokens=300, **args)
    assert capped.judge.output_tokens == 2 * 300
    # The ceiling prices every reply at its limit: 8,192 for the judge by default.
    assert ours.judge.max_output_tokens == 8192
    assert ours.ceiling_usd == pytest.approx(
        (ours.model.input_tokens * 2 + 1 * DEFAULT_MODEL_OUTPUT_TOKENS * 8) / 1e6
        + (ours.judge.input_tokens * 2 + 2 * 8192 * 8) / 1e6
    )
    assert "at most ~$" in ours.lines()[2] and "judge 8,192 tokens" in ours.lines()[2]


def test_max_tokens_caps_the_default_answer_length() -> None:
    est = estimate_run(
        instances(1), samples=1, system_prompt=None, model="m", judge="j",
        model_price=None, judge_price=None, max_tokens=256,
    )  # fmt: skip
    assert est.model.output_tokens == 256


# -- end to end -------------------------------------------------------------------------------


def test_collect_only_prints_the_estimate_and_calls_nothing(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    sim = simulator(Script())
    dataset = write_rows(pytester, SIX)
    result = run_bsa(
        pytester, f"--bsa-dataset={dataset}", "--bsa-samples=3", "--bsa-price=openai/x=1,2",
        "--bsa-price=openai/j=3,4", "--collect-only", "-q", "-k", "not ro-news",
        cache_dir=cache_dir, sim=sim,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "bsa: estimate: 15 model + ~30 judge calls | ~* tokens in, ~* out (model answers: "
            "defaults (see the README)) | ~* at concurrency 16",
            "bsa: estimate: cost ~$* = model $* ($1/$2 per 1M in/out, --bsa-price) + judge $* "
            "($3/$4 per 1M in/out, --bsa-price)",
        ]
    )
    assert requests(sim) == (0, 0)


def test_the_header_shows_the_estimate_from_the_cache_history(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    sim = simulator(Script())
    dataset = write_rows(pytester, SIX)
    first = run_bsa(pytester, f"--bsa-dataset={dataset}", "--bsa-samples=2",
                    cache_dir=cache_dir, sim=sim)  # fmt: skip
    first.stdout.fnmatch_lines(["bsa: estimate: 12 model + ~24 judge calls *defaults*"])
    first.stdout.fnmatch_lines(["bsa: estimate: cost unknown: model unknown (no price for *"])
    second = run_bsa(pytester, f"--bsa-dataset={dataset}", "--bsa-samples=2",
                     cache_dir=cache_dir, sim=sim)  # fmt: skip
    second.stdout.fnmatch_lines(["bsa: estimate: * (model answers: the cache's last 12 answers)*"])


def test_max_cost_below_the_estimate_refuses_before_any_call(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    sim = simulator(Script())
    dataset = write_rows(pytester, SIX)
    result = run_bsa(
        pytester, f"--bsa-dataset={dataset}", "--bsa-price=openai/x=100,100",
        "--bsa-price=openai/j=100,100", "--bsa-max-cost=0.5", "--bsa-report=r.json",
        cache_dir=cache_dir, sim=sim,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-bsa: the run is estimated to cost ~$* (30 model and ~60 judge calls: "
         "model $*, judge $*), above --bsa-max-cost 0.5; raise the limit or select fewer "
         "instances (--bsa-limit, --bsa-samples)"]
    )  # fmt: skip
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert requests(sim) == (0, 0)
    assert not (pytester.path / "r.json").exists()
    assert not (cache_dir / "cache.sqlite3").exists()


def test_max_cost_without_a_price_refuses(
    pytester: pytest.Pytester, cache_dir: Path, simulator
) -> None:
    sim = simulator(Script())
    dataset = write_rows(pytester, SIX)
    result = run_bsa(pytester, f"--bsa-dataset={dataset}", "--bsa-max-cost=100",
                     cache_dir=cache_dir, sim=sim)  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-bsa: --bsa-max-cost 100 cannot be checked: no price is known for "
         "openai/x; pass --bsa-price openai/x=IN,OUT (USD per million input and output tokens)"]
    )  # fmt: skip
    assert requests(sim) == (0, 0)


def test_a_judge_panel_and_repeated_asks_multiply_the_judge_at_each_members_price() -> None:
    """#12b: each verdict is asked of every member, --bsa-judge-samples times; a member's share
    is priced at its own price, and a member without a price makes the cost unknown."""
    from pytest_bsa.config import Settings
    from pytest_bsa.engine.forecast import estimate_for

    prices = {"openai/m": (1.0, 2.0), "openai/a": (1.0, 2.0), "openai/b": (3.0, 4.0)}
    one = Settings(model="openai/m", judge="openai/a", prices=prices)
    alone = {j: estimate_for(one.model_copy(update={"judge": j}), instances(4), None).judge
             for j in ("openai/a", "openai/b")}  # fmt: skip
    panel = one.model_copy(update={"judges": ("openai/a", "openai/b"), "judge_samples": 3})
    est = estimate_for(panel, instances(4), None)
    assert est.judge.calls == 2 * 3 * alone["openai/a"].calls
    assert est.judge.input_tokens == 2 * 3 * alone["openai/a"].input_tokens
    assert est.judge.cost_usd == pytest.approx(3 * sum(r.cost_usd for r in alone.values()))
    assert est.model == estimate_for(one, instances(4), None).model
    assert "$1/$2 per 1M in/out, --bsa-price; $3/$4 per 1M in/out, --bsa-price" in est.lines()[1]
    unpriced = panel.model_copy(update={"judges": ("openai/a", "openai/zz-no-price")})
    est = estimate_for(unpriced, instances(4), None)
    assert est.cost_usd is None
    assert "no price is known for openai/zz-no-price" in (est.refusal(100.0) or "")
