"""The paper's mitigation as a system prompt: ``official:safety-rules`` (downloaded, pinned,
never shipped) and ``bsa:safety-rules`` (ours), and the compare workflow between a run with
and a run without them. Expected differences are worked out by hand from the plans."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import (
    SIX,
    SIX_PLAN,
    Plan,
    expected_groups,
    read_json,
    requests,
    run_bsa,
    script_for,
    write_rows,
)

from pytest_bsa.__main__ import main
from pytest_bsa.config import ConfigError, build_settings
from pytest_bsa.models import CATEGORIES
from pytest_bsa.rubrics import fetch as rubric_fetch
from pytest_bsa.safety_rules import BSA_RULES, BSA_SAFETY_RULES_TEXT, system_prompt_for
from pytest_bsa.simulate.script import PromptRule

T, F = True, False


class _Raw(http.server.BaseHTTPRequestHandler):
    """Serves files under /OpenStellarTeam/BSA/<commit>/Prompt/ from ``root``."""

    root: ClassVar[Path] = Path()
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        prefix = f"/{rubric_fetch.OFFICIAL_REPO}/{rubric_fetch.OFFICIAL_COMMIT}/Prompt/"
        path = self.root / self.path.removeprefix(prefix)
        if not self.path.startswith(prefix) or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def raw_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A stand-in for raw.githubusercontent.com on 127.0.0.1; yields the folder it serves."""
    root = tmp_path / "served"
    root.mkdir()
    _Raw.root, _Raw.seen = root, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Raw)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv(rubric_fetch.ENDPOINT_ENV, f"http://127.0.0.1:{server.server_port}")
    try:
        yield root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _upstream() -> Path:
    location = os.environ.get("BSA_UPSTREAM_DIR")
    if not location or not (Path(location) / "Prompt" / "Safe_Rules.md").is_file():
        pytest.skip("set BSA_UPSTREAM_DIR to the official BSA files (reference only)")
    return Path(location)


def _settings(prompt: str, cache: Path):
    return build_settings(
        {"model": "simulated", "system_prompt_path": prompt, "cache_dir": str(cache)},
        None,
        base_dir=cache,
    )


def test_our_rules_name_every_category_once() -> None:
    assert list(BSA_RULES) == list(CATEGORIES)
    lines = [line for line in BSA_SAFETY_RULES_TEXT.splitlines() if line.startswith("- ")]
    assert [line.split(":", 1)[0][2:] for line in lines] == list(CATEGORIES)
    assert system_prompt_for("bsa:safety-rules") == BSA_SAFETY_RULES_TEXT


def test_our_rules_share_no_phrase_with_the_official_ones() -> None:
    official = (_upstream() / "Prompt" / "Safe_Rules.md").read_text(encoding="utf-8")

    def shingles(text: str, n: int = 6) -> set[str]:
        words = re.findall(r"[a-z']+", text.lower())
        return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}

    assert not shingles(BSA_SAFETY_RULES_TEXT) & shingles(official)


def test_official_rules_are_downloaded_pinned_and_cached(
    raw_server: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a stand-in file pinned by its own hash: the download path, always run."""
    (raw_server / "Safe_Rules.md").write_text("Our stand-in rules, written for tests.\n", "utf-8")
    pins = dict(rubric_fetch.OFFICIAL_SHA256)
    pins["Safe_Rules.md"] = hashlib.sha256((raw_server / "Safe_Rules.md").read_bytes()).hexdigest()
    monkeypatch.setattr(rubric_fetch, "OFFICIAL_SHA256", pins)
    settings = _settings("official:safety-rules", tmp_path / "cache")
    assert settings.system_prompt == "Our stand-in rules, written for tests.\n"
    assert settings.system_prompt_source == "official:safety-rules"
    assert settings.system_prompt_path is None
    assert _Raw.seen == [
        f"/{rubric_fetch.OFFICIAL_REPO}/{rubric_fetch.OFFICIAL_COMMIT}/Prompt/Safe_Rules.md"
    ]
    (raw_server / "Safe_Rules.md").unlink()  # offline now: the cached copy serves
    assert _settings("official:safety-rules", tmp_path / "cache").system_prompt == (
        settings.system_prompt
    )
    (raw_server / "Safe_Rules.md").write_text("changed", "utf-8")
    with pytest.raises(ConfigError, match="expected ") as info:
        _settings("official:safety-rules", tmp_path / "other-cache")
    assert "--bsa-system-prompt=/path/to/Safe_Rules.md" in str(info.value)


def test_the_real_official_rules_from_127_0_0_1(raw_server: Path, tmp_path: Path) -> None:
    source = _upstream() / "Prompt" / "Safe_Rules.md"
    (raw_server / "Safe_Rules.md").write_bytes(source.read_bytes())
    settings = _settings("official:safety-rules", tmp_path / "cache")
    digest = hashlib.sha256(settings.system_prompt.encode("utf-8")).hexdigest()
    assert digest == rubric_fetch.OFFICIAL_SHA256["Safe_Rules.md"]


def test_unknown_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'bsa:rules' is not a known prompt name"):
        _settings("bsa:rules", tmp_path)


# -- with and without, compared --------------------------------------------------------------

# Under the rules the essay instance becomes safe and covered, the two-query ethics instance
# and the over-sensitive post cover their risks; the other instances do not change.
RULED = {
    "ro-essay": {"safe": True, "covered": True},
    "cs-same": {"covered": True},
    "os-post": {"covered": True},
}
RULED_PLAN = {
    **SIX_PLAN,
    "ro-essay": Plan((T, T, T), (T, T, T), miss="none"),
    "cs-same": Plan((F, T, T), (T, T, T), miss="none"),
    "os-post": Plan((T, T, T), (T, T, T), miss="over"),
}


def _run(pytester, sim, cache_dir, name: str, *args: str) -> Path:
    data = write_rows(pytester, SIX)
    report = pytester.path / name
    result = run_bsa(
        pytester,
        f"--bsa-dataset={data}",
        "--bsa-samples=3",
        f"--bsa-report={report}",
        *args,
        cache_dir=cache_dir,
        sim=sim,
    )
    assert result.ret == 0
    return report


def _compare(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["compare", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("prompt", ["bsa:safety-rules", "official:safety-rules"])
def test_a_run_with_the_rules_and_one_without_compared(
    pytester, simulator, cache_dir, raw_server, prompt: str
) -> None:
    if prompt.startswith("official"):
        source = _upstream() / "Prompt" / "Safe_Rules.md"
        (raw_server / "Safe_Rules.md").write_bytes(source.read_bytes())
    rule = PromptRule(contains="", instances=RULED)  # any system prompt: these rules
    sim = simulator(script_for(SIX_PLAN).model_copy(update={"system_prompt": (rule,)}))
    without = _run(pytester, sim, cache_dir, "without.json")
    with_rules = _run(pytester, sim, cache_dir, "with.json", f"--bsa-system-prompt={prompt}")
    recorded = read_json(with_rules)["provenance"]
    assert recorded["system_prompt_source"] == prompt
    assert recorded["system_prompt_sha256"] is not None
    assert read_json(without)["provenance"]["system_prompt_source"] is None
    out_json, out_md = pytester.path / "cmp.json", pytester.path / "cmp.md"
    code, stdout, stderr = _compare(
        str(without), str(with_rules), "--json", str(out_json), "--markdown", str(out_md)
    )
    assert code == 0, stderr
    result = read_json(out_json)
    before, after = expected_groups(SIX, SIX_PLAN), expected_groups(SIX, RULED_PLAN)
    groups = {g["group"]: g for g in result["groups"]}
    assert set(groups) == set(before)
    for key in before:
        for metric in ("safe_at_1", "safe_at_k", "think_at_1", "think_at_k", "f_score"):
            old, new = before[key][metric], after[key][metric]
            assert groups[key]["a"][metric] == pytest.approx(old), (key, metric)
            assert groups[key]["b"][metric] == pytest.approx(new), (key, metric)
            change = None if old is None or new is None else new - old
            assert groups[key]["delta"][metric] == pytest.approx(change), (key, metric)
    assert groups["category:Physical and Mental Health"]["delta"]["safe_at_1"] == 0.0
    assert groups["category:Ethics and Morality"]["delta"]["think_at_1"] > 0
    # os-post reasoned Over Sensitive once in three without the rules, never with them.
    assert result["over_sensitivity"]["a"] == pytest.approx(
        {"Precise Coverage": 2 / 3, "Over Sensitive": 1 / 3, "Not Covered": 0.0, "n": 3}
    )
    assert result["over_sensitivity"]["b"]["Over Sensitive"] == 0.0
    assert result["b"]["system_prompt"].startswith(prompt)
    assert "over-sensitivity: 'Over Sensitive' reasoning in 33.3% of A's and 0.0% of B's" in (
        stdout
    )
    assert "### " in out_md.read_text(encoding="utf-8")
    assert requests(sim)[0] == 2 * len(SIX) * 3


def test_compare_refuses_runs_judged_differently(pytester, simulator, cache_dir) -> None:
    sim = simulator(script_for(SIX_PLAN))
    a = _run(pytester, sim, cache_dir, "a.json")
    b = _run(pytester, sim, cache_dir, "b.json", "--bsa-judge-temperature=0.5")
    code, _, stderr = _compare(str(a), str(b))
    assert code == 4 and "verdict hash" in stderr and "--allow-mismatch" in stderr
    code, stdout, _ = _compare(str(a), str(b), "--allow-mismatch")
    assert code == 0 and "6 shared instances" in stdout


def test_an_unknown_prompt_name_stops_the_run(pytester, simulator, cache_dir) -> None:
    sim = simulator(script_for(SIX_PLAN))
    data = write_rows(pytester, SIX)
    result = run_bsa(
        pytester,
        f"--bsa-dataset={data}",
        "--bsa-system-prompt=official:rules",
        cache_dir=cache_dir,
        sim=sim,
    )
    assert result.ret == 4
    assert "'official:rules' is not a known prompt name" in result.stderr.str()
    assert requests(sim) == (0, 0)
