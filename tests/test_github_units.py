"""Pure parts of the GitHub integration: workflow commands, outputs, inputs, zips, redaction."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from actions_runner import parse_command, read_outputs
from factories import build_report, synthetic_results
from hypothesis import given
from hypothesis import strategies as st

from pytest_bsa.config import GatePolicy, MetricThresholds, Thresholds
from pytest_bsa.engine.cache import Cache, drop_completions
from pytest_bsa.github.action import (
    ActionInputs,
    InputError,
    parse_shard,
    pytest_args,
    shell_words,
    verdict_cache_key,
)
from pytest_bsa.github.api import GitHubError
from pytest_bsa.github.baseline import extract_report
from pytest_bsa.github.commands import (
    annotation,
    escape_data,
    escape_property,
    fit_summary,
    output_block,
    write_outputs,
)
from pytest_bsa.github.publish import annotations, metric_values
from pytest_bsa.models import Completion
from pytest_bsa.reporting.redact import redact_model_outputs

# -- workflow commands --------------------------------------------------------------------


def test_escaping_follows_the_runner_rules() -> None:
    assert escape_data("50% a:b,c\r\nd") == "50%25 a:b,c%0D%0Ad"
    assert escape_property("50% a:b,c\r\nd") == "50%25 a%3Ab%2Cc%0D%0Ad"
    line = annotation("error", "think_at_k::low, 20%", title="BSA gate overall::think_at_k")
    assert line == "::error title=BSA gate overall%3A%3Athink_at_k::think_at_k::low, 20%25"


@given(title=st.text(), message=st.text())
def test_any_title_and_message_survive_the_runner_parse(title: str, message: str) -> None:
    parsed = parse_command(annotation("warning", message, title=title or None))
    assert parsed is not None
    name, props, text = parsed
    assert name == "warning" and text == message
    assert props.get("title", "") == title


@given(values=st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), st.text()))
def test_outputs_round_trip_with_the_delimiter_syntax(values: dict[str, str]) -> None:
    text = "".join(output_block(name, value) for name, value in values.items())
    # The runner reads lines split on \n; a value's own \r stays inside it.
    assert read_outputs(text) == values


def test_outputs_refuse_a_delimiter_inside_the_value(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="delimiter occurs in the value"):
        output_block("x", "a\nEOF\nb", delimiter="EOF")
    with pytest.raises(ValueError, match="one word"):
        output_block("a=b", "v")
    path = tmp_path / "out"
    write_outputs(path, {"report": "r.json", "markdown": "line 1\nline 2"})
    write_outputs(path, {"exit-code": "1"})
    assert read_outputs(path.read_text()) == {
        "report": "r.json",
        "markdown": "line 1\nline 2",
        "exit-code": "1",
    }


def test_summary_is_cut_under_the_limit_at_a_line() -> None:
    text = "".join(f"line {i} é\n" for i in range(50_000))
    cut = fit_summary(text, limit=100_000)
    assert len(cut.encode()) < 100_000
    assert "1 MiB limit" in cut and "\nline 1 é\n" in cut
    body = cut.split("\n\n_…")[0]
    assert all(line.startswith("line ") for line in body.split("\n"))
    assert fit_summary("short", limit=100) == "short"
    assert fit_summary(text, limit=10) == ""


# -- annotations and outputs from a report ------------------------------------------------


def _failing_report(n_thresholds: int):
    metrics = ("safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score")
    categories = {
        c: MetricThresholds(**dict.fromkeys(metrics, 0.99))
        for c in ("Rumors", "Pornography", "Ethics and Morality")
    }
    policy = GatePolicy(
        samples=3,
        thresholds=Thresholds(
            overall=MetricThresholds(**dict.fromkeys(metrics[:n_thresholds], 0.99)),
            categories=categories if n_thresholds > 5 else {},
        ),
    )
    return build_report(synthetic_results(27, 3), policy)


def test_at_most_ten_annotations_failed_first_and_whole_titles() -> None:
    few = _failing_report(2)
    lines = annotations(few)
    parsed = [parse_command(line) for line in lines]
    failed = [g for g in few.gates if g["status"] == "failed"]
    assert [p[1]["title"] for p in parsed] == [f"BSA gate {g['name']}" for g in failed]
    assert all(p[0] == "error" for p in parsed)

    many = _failing_report(20)
    lines = annotations(many)
    failed = [g for g in many.gates if g["status"] == "failed"]
    assert len(failed) > 10 and len(lines) == 10
    last = parse_command(lines[-1])
    assert last[1]["title"] == "BSA gates not shown"
    assert last[2].startswith(f"{len(failed) - 9} more gates")


def test_metric_outputs_are_overall_fractions() -> None:
    report = _failing_report(1)
    values = metric_values(report)
    assert values["safe-at-1"] == f"{report.groups['overall']['safe_at_1']:.4f}"
    assert set(values) == {"safe-at-1", "safe-at-k", "think-at-1", "think-at-k", "f-score"}
    assert metric_values(None) == dict.fromkeys(values, "")


# -- the Action's inputs --------------------------------------------------------------------


def test_shell_words_and_shards() -> None:
    assert shell_words('--bsa-concurrency 32 -k "ro or cs" --bsa-param=stop=\'"x y"\'') == [
        "--bsa-concurrency",
        "32",
        "-k",
        "ro or cs",
        '--bsa-param=stop="x y"',
    ]
    assert shell_words("") == []
    with pytest.raises(InputError, match="No closing quotation"):
        shell_words("-k 'a or b")
    with pytest.raises(InputError, match="use the `shard` input"):
        shell_words("--bsa-shard 1/2")
    assert parse_shard("2/3") == (2, 3) and parse_shard(" ") is None
    for bad in ("0/3", "3", "a/b", "4/3", "1/0"):
        with pytest.raises(InputError, match="write I/N"):
            parse_shard(bad)


@pytest.mark.parametrize(
    "extra", ["--junit-xml=/tmp/x.xml", "--junit-xml /tmp/x.xml", "--junitxml=/tmp/x.xml"]
)
def test_extra_args_cannot_move_the_junit_file(extra: str) -> None:
    """pytest's alias --junit-xml would override the Action's --junitxml: the `junit` output
    would name a file never written (review 1)."""
    with pytest.raises(InputError, match="JUnit files are written to output-dir"):
        shell_words(extra)


def test_pytest_args_from_inputs(tmp_path: Path) -> None:
    env = {
        "BSA_IN_MODEL": "openai/m",
        "BSA_IN_JUDGE": "openai/j",
        "BSA_IN_SHARD": "1/2",
        "BSA_IN_EXTRA_ARGS": '-k "a or b"',
        "BSA_IN_OUTPUT_DIR": str(tmp_path),
        "BSA_IN_ARTIFACT_NAME": "gate-a",
    }
    inputs = ActionInputs.from_environ(env)
    assert inputs.unique_artifact_name == "gate-a-shard-1-of-2"
    args = pytest_args(inputs, report_path=tmp_path / "r.json", baseline_path=Path("b.json"))
    assert args[-2:] == ["-k", "a or b"]
    for wanted in ("--bsa-model=openai/m", "--bsa-judge=openai/j", "--bsa-shard=1/2"):
        assert wanted in args
    assert "--bsa-baseline=b.json" in args and f"--bsa-report={tmp_path / 'r.json'}" in args
    assert not any(a.startswith("--bsa-limit") for a in args)
    with pytest.raises(InputError, match="merge and shard exclude each other"):
        ActionInputs.from_environ({**env, "BSA_IN_MERGE": "shards"})
    with pytest.raises(InputError, match="artifact-name"):
        ActionInputs.from_environ({**env, "BSA_IN_ARTIFACT_NAME": "a/b"})


def test_verdict_cache_key_follows_judge_and_dataset(tmp_path: Path) -> None:
    def key(**extra: str) -> str:
        env = {"BSA_IN_MODEL": "openai/m", "BSA_IN_JUDGE": "openai/j", **extra}
        return verdict_cache_key(ActionInputs.from_environ(env))

    assert key() == key(BSA_IN_MODEL="openai/other", BSA_IN_SAMPLES="3")
    assert len({key(), key(BSA_IN_JUDGE="openai/k"), key(BSA_IN_DATASET="sample")}) == 3
    assert key() != key(BSA_IN_JUDGE_API_BASE="http://127.0.0.1:9/v1")
    config = tmp_path / "bsa.yaml"
    config.write_text("judge: openai/j\n")
    assert key(BSA_IN_JUDGE="", BSA_IN_CONFIG=str(config)) == key()
    # The judge as a mapping (with its check), and a panel, are read too.
    config.write_text("judge: {model: openai/j, min_kappa: 0.7}\n")
    assert key(BSA_IN_JUDGE="", BSA_IN_CONFIG=str(config)) == key()
    config.write_text("judges: [openai/j, openai/k, openai/l]\n")
    panel = key(BSA_IN_JUDGE="", BSA_IN_CONFIG=str(config))
    assert panel not in (key(), key(BSA_IN_JUDGE="openai/k"))


# -- artifacts, redaction, the cache --------------------------------------------------------


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in files.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


def test_report_is_read_out_of_the_artifact_zip() -> None:
    assert extract_report(_zip({"report.json": b"a", "x/report.json": b"b"})) == b"a"
    assert extract_report(_zip({"out/report.json": b"b", "summary.md": b""})) == b"b"
    with pytest.raises(GitHubError, match=r"holds 2 files named 'report\.json'"):
        extract_report(_zip({"a/report.json": b"a", "b/report.json": b"b"}))
    with pytest.raises(GitHubError, match="holds 0 files"):
        extract_report(_zip({"summary.md": b""}))
    with pytest.raises(GitHubError, match="not a zip"):
        extract_report(b"not a zip")


def test_redaction_keeps_verdicts_and_drops_model_text() -> None:
    report = _failing_report(1)
    redacted = redact_model_outputs(report)
    assert redacted.redacted and not report.redacted
    text = redacted.model_dump_json()
    assert "answer 0:" not in text and "reasoning 0:" not in text
    assert "answer 0:" in report.model_dump_json()
    for before, after in zip(report.instances, redacted.instances, strict=True):
        for a, b in zip(before.samples, after.samples, strict=True):
            assert a.judgement == b.judgement
            assert b.completion.reasoning_state == a.completion.reasoning_state
    assert redacted.groups == report.groups and redacted.gates == report.gates


def test_prune_keeps_verdicts_and_leaves_no_answer_in_the_file(tmp_path: Path) -> None:
    secret = "PRUNED-MODEL-ANSWER-" * 20
    with Cache.open(tmp_path, "readwrite") as cache:
        for i in range(30):
            cache.put_completion(f"c{i}", Completion(answer=f"{secret}{i}"), model="m")
            cache.put_verdict(f"v{i}", {"label": "Safe", "explanation": "ok"}, judge_model="j")
    assert drop_completions(tmp_path) == (30, 30)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"PRUNED-MODEL-ANSWER" not in raw
    with Cache.open(tmp_path, "read") as cache:
        assert cache.get_verdict("v3") == {"label": "Safe", "explanation": "ok"}
        assert cache.get_completion("c3") is None
    assert drop_completions(tmp_path / "none") == (0, 0)
    assert json.loads(json.dumps(drop_completions(tmp_path))) == [30, 0]
