"""Simulated judges of known quality (unit tier): truth, exact shares, determinism, scripts."""

from __future__ import annotations

from collections import Counter
from math import floor
from pathlib import Path

import pytest
from rubric_files import write_rubric_dir

from pytest_bsa.calibration import load_shipped
from pytest_bsa.models import SAFETY_LABELS, THINK_LABELS
from pytest_bsa.rubrics.bsa import BSA_RUBRIC
from pytest_bsa.rubrics.official import read_rubric_dir
from pytest_bsa.simulate import Script, ScriptError, sample_behaviour
from pytest_bsa.simulate.judges import (
    JudgeBook,
    JudgeQuality,
    calibration_case,
    picked,
    temperature_of,
    truth_of,
)
from pytest_bsa.simulate.verdicts import JudgeRequest, decide, detect, user_text


@pytest.fixture(scope="module")
def shipped():
    return load_shipped()


def _request(rubric, kind: str, case) -> JudgeRequest:
    text = case.answer if kind == "safety" else case.reasoning
    prompt = rubric.prompt(kind, case.instance(), text, truncated=False, structured=True)
    body = {"messages": list(prompt.messages), "response_format": prompt.response_format}
    req = detect(body, user_text(body["messages"]))
    assert req is not None
    return req


def _asked(shipped, kind: str):
    """The shipped cases that send a text of ``kind`` to the judge (non-empty), one per text."""
    seen, out = set(), []
    for case in shipped.cases:
        text = case.answer if kind == "safety" else case.reasoning
        key = (case.scenario, case.query, case.risk_summary, text)
        if text.strip() and key not in seen:
            seen.add(key)
            out.append(case)
    return out


@pytest.mark.parametrize("n", [1, 7, 126, 1000])
@pytest.mark.parametrize("share", [0.0, 0.1, 0.2, 1 / 3, 0.5, 1.0])
def test_the_pick_rule_takes_an_exact_share(n: int, share: float) -> None:
    assert sum(picked(j, share) for j in range(n)) == floor(n * share)


@pytest.mark.parametrize("fmt", ["bsa", "official-format"])
def test_every_shipped_case_is_recognised_with_its_label(shipped, fmt: str, tmp_path: Path):
    rubric = BSA_RUBRIC if fmt == "bsa" else read_rubric_dir(write_rubric_dir(tmp_path), source="t")
    for kind in ("safety", "reasoning"):
        for case in _asked(shipped, kind):
            req = _request(rubric, kind, case)
            found = calibration_case(req)
            assert found is not None, case.id
            expected = case.safety_label if kind == "safety" else case.reasoning_label
            assert found.label == expected
            truth = truth_of(req, decide(req))
            assert truth.calibration and truth.label == expected


def test_text_outside_the_set_keeps_the_honest_verdict(shipped) -> None:
    case = shipped.cases[0]
    other = case.model_copy(update={"answer": "A different answer. [simulated: unsafe answer]"})
    req = _request(BSA_RUBRIC, "safety", other)
    assert calibration_case(req) is None
    truth = truth_of(req, decide(req))
    assert (truth.label, truth.calibration) == ("Unsafe", False)


def _labels(book: JudgeBook, judge: str, shipped, kind: str, **kw):
    out = {}
    for case in _asked(shipped, kind):
        req = _request(BSA_RUBRIC, kind, case)
        truth = truth_of(req, decide(req))
        out[case.id] = (
            truth.label,
            *book.decide(judge, req, truth, **{"replicate": 0, "temperature": 0.0, **kw}),
        )
    return out


@pytest.mark.parametrize("kind", ["safety", "reasoning"])
def test_a_flipping_judge_changes_an_exact_share_of_the_set_the_same_way_every_time(
    shipped, kind: str
) -> None:
    qualities = {"noisy": JudgeQuality(flip=0.2), "other": JudgeQuality(flip=0.2)}
    first = _labels(JudgeBook(qualities, seed=0), "noisy", shipped, kind)
    wrong = [cid for cid, (truth, label, _) in first.items() if label != truth]
    assert len(wrong) == floor(0.2 * len(first))
    for _truth, label, _ in first.values():
        allowed = (
            SAFETY_LABELS if kind == "safety" else {lab for s in THINK_LABELS.values() for lab in s}
        )
        assert label in allowed
    again = _labels(JudgeBook(qualities, seed=0), "noisy", shipped, kind)
    assert again == first  # another simulator, another process: the same verdicts
    other = _labels(JudgeBook(qualities, seed=0), "other", shipped, kind)
    assert {c for c, (t, lab, _) in other.items() if lab != t} != set(wrong)


def test_toward_safe_refuse_and_unstable_judges(shipped) -> None:
    book = JudgeBook(
        {
            "lenient": JudgeQuality(toward_safe=0.5),
            "shy": JudgeQuality(refuse=0.25),
            "wobbly": JudgeQuality(unstable=1.0),
        },
        seed=3,
    )
    lenient = _labels(book, "lenient", shipped, "safety")
    unsafe = [v for v in lenient.values() if v[0] == "Unsafe"]
    assert sum(label == "Safe" for _, label, _ in unsafe) == floor(0.5 * len(unsafe))
    assert all(label == "Safe" for truth, label, _ in lenient.values() if truth == "Safe")
    shy = _labels(book, "shy", shipped, "reasoning")
    assert sum(label is None for _, label, _ in shy.values()) == floor(0.25 * len(shy))
    steady = _labels(book, "wobbly", shipped, "safety", replicate=1, temperature=0.0)
    assert all(truth == label for truth, label, _ in steady.values())  # temperature 0
    even = _labels(book, "wobbly", shipped, "safety", replicate=2, temperature=0.7)
    assert all(truth == label for truth, label, _ in even.values())
    odd = _labels(book, "wobbly", shipped, "safety", replicate=1, temperature=0.7)
    assert all(truth != label for truth, label, _ in odd.values())


def test_other_requests_are_numbered_by_their_text(shipped) -> None:
    """Benchmark requests: equal texts get equal verdicts, an exact share of distinct texts."""
    book = JudgeBook({"noisy": JudgeQuality(flip=0.5)}, seed=0)
    base = shipped.cases[0]
    decided = []
    for i in range(10):
        case = base.model_copy(
            update={
                "query": f"An ordinary question number {i}.",
                "answer": "Fine. [simulated: safe answer]",
            }
        )
        req = _request(BSA_RUBRIC, "safety", case)
        truth = truth_of(req, decide(req))
        label, _ = book.decide("noisy", req, truth, replicate=0, temperature=1.0)
        again, _ = book.decide("noisy", req, truth, replicate=2, temperature=1.0)
        assert label == again
        decided.append(label)
    assert Counter(decided) == {"Safe": 5, "Unsafe": 5}


def test_temperature_of_a_request() -> None:
    assert temperature_of({}) == 1.0
    assert temperature_of({"temperature": 0}) == 0.0
    assert temperature_of({"temperature": True}) == 1.0


def test_scripts_with_judges_and_system_prompt_rules(tmp_path: Path) -> None:
    script = Script.model_validate(
        {
            "default": {"safe": False, "covered": False},
            "instances": {"a": {"covered": [True, False]}},
            "system_prompt": [
                {
                    "contains": "rules",
                    "default": {"safe": True},
                    "instances": {"b": {"covered": True}},
                },
                {"contains": "", "default": {"covered": True}},
            ],
            "judges": {"noisy": {"flip": 0.2}, "strong": {}},
        }
    )
    assert script.judges["strong"] == JudgeQuality()
    plain = sample_behaviour(script, "b", 0)
    assert (plain.safe, plain.coverage) == (False, "partial")
    ruled = sample_behaviour(script, "b", 0, system_prompt="Follow these rules.")
    assert (ruled.safe, ruled.coverage) == (True, "full")
    kept = sample_behaviour(script, "a", 1, system_prompt="Follow these rules.")
    assert (kept.safe, kept.coverage) == (True, "partial")  # the instance's own list stays
    other = sample_behaviour(script, "a", 1, system_prompt="Be brief.")
    assert (other.safe, other.coverage) == (False, "full")  # the second rule matches anything
    bad = tmp_path / "bad.yaml"
    bad.write_text("judges:\n  noisy: {flip: 1.5}\n", encoding="utf-8")
    with pytest.raises(ScriptError, match=r"judges\.noisy\.flip"):
        Script.load(bad)
    bad.write_text("judges:\n  noisy: {flips: 0.2}\n", encoding="utf-8")
    with pytest.raises(ScriptError, match=r"judges\.noisy\.flips"):
        Script.load(bad)
