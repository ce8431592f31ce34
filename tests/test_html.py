"""The HTML report: self-contained, escaped, parseable data, bounded size, works in Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from functools import partial
from html import unescape
from pathlib import Path

import pytest
from factories import Texts, build_report, synthetic_results

from pytest_bsa.config import GatePolicy, MetricThresholds, Thresholds
from pytest_bsa.report import Report
from pytest_bsa.reporting.html import TEXT_LIMIT, bar_chart, render_html
from pytest_bsa.reporting.html.templating import TEMPLATES, environment
from pytest_bsa.reporting.view import group_rows

HOSTILE = "<script>alert(1)</script></script><!-- & \u2028"
CHECK_SCRIPT = Path(__file__).resolve().parent / "check_html.py"
POLICY = GatePolicy(samples=3, thresholds=Thresholds(overall=MetricThresholds(think_at_k=0.99)))
TEXTS = Texts(
    query="query {i}: {text}",
    risk_summary="risk summary",
    explanation="judge note: {text}",
    verdict_labels=False,
)
# Sample j of instance i is unsafe when (i + j + seed) % 4 == 0.
make_results = partial(synthetic_results, subcategory="Sub", texts=TEXTS)


def data_block(page: str) -> dict:
    blocks = re.findall(r'<script type="application/json" id="bsa-data">(.*?)</script>', page, re.S)
    assert len(blocks) == 1
    return json.loads(blocks[0])


@pytest.fixture(scope="module")
def hostile() -> Report:
    return build_report(make_results(18, text=HOSTILE, subcategory=HOSTILE), POLICY, model=HOSTILE)


def test_self_contained_without_any_external_reference(hostile: Report) -> None:
    page = render_html(hostile)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"\ssrc\s*=", page)  # no scripts, images or frames loaded from anywhere
    assert all(href.startswith("#") for href in re.findall(r'\shref="([^"]*)"', page))
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_hostile_text_is_escaped_everywhere(hostile: Report) -> None:
    page = render_html(hostile)
    assert "alert(1)" in page  # the text is there, but never as markup
    assert page.count("<script") == 2  # the JSON block and the page's own script
    assert "<!--" not in page
    title = re.search(r"<title>(.*?)</title>", page).group(1)
    assert unescape(title) == f"BSA failed: {HOSTILE}"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the label, in the subcategory table


def test_json_block_parses_and_keeps_every_sample(hostile: Report) -> None:
    data = data_block(render_html(hostile))
    assert data["k"] == 3
    assert len(data["instances"]) == 18
    first = data["instances"][0]
    assert first["status"] in ("missed", "error")  # unmet instances are listed first
    assert all(len(d["samples"]) == 3 for d in data["instances"])
    sample = next(d for d in data["instances"] if d["id"] == f"{0:032x}")["samples"][0]
    assert sample["answer"] == f"answer 0: {HOSTILE}"
    assert sample["safety"] == "unsafe" and sample["think"] == "incorrect"


def test_long_texts_are_clipped_with_a_note() -> None:
    page = render_html(build_report(make_results(3, text="y" * (TEXT_LIMIT + 5_000)), POLICY))
    answer = data_block(page)["instances"][0]["samples"][0]["answer"]
    assert len(answer) < TEXT_LIMIT + 100
    assert answer.endswith("more characters; see the JSON report]")


def test_charts_label_axes_and_values(hostile: Report) -> None:
    rows = group_rows(hostile, "category")
    svg = bar_chart("Per category", rows)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "percent of judged samples" in svg and ">100</text>" in svg
    for row in rows:
        assert f"{100 * row.rates['safe_at_1']:.1f}</text>" in svg
        assert f"{100 * row.rates['think_at_1']:.1f}</text>" in svg


def test_baseline_deltas_and_flips_are_shown() -> None:
    before = make_results(30, seed=1)
    report = build_report(make_results(30, seed=2), POLICY, baseline=before)
    page = render_html(report)
    assert 'class="delta down"' in page or 'class="delta up"' in page
    assert 'id="flips"' in page
    for flip in report.flips[:3]:
        assert f'data-id="{flip["id"]}"' in page


def test_two_thousand_instances_stay_small() -> None:
    text = "a neutral sentence of ordinary length. " * 5  # ~200 characters per field
    report = build_report(make_results(2000, text=text), POLICY)
    page = render_html(report)
    size = len(page.encode())
    texts = 2000 * 3 * 4 * len(text)  # answer, reasoning, judge note, query (and its n)
    assert size < texts + 2000 * 3 * 250 + 300_000  # bounded overhead per sample and page
    assert len(data_block(page)["instances"]) == 2000
    assert page.count("<tr") < 200  # instance rows are built by the script, not the markup


def test_the_page_allows_no_source_but_its_own_inline_style_and_script(hostile: Report) -> None:
    page = render_html(hostile)
    csp = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert csp == [
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
    ]
    assert page.index("Content-Security-Policy") < page.index("<style>")  # before any content


def test_model_output_reaches_the_page_only_through_the_data_block(hostile: Report) -> None:
    """Samples are built by the script when a row is opened (lazy), from the JSON block."""
    page = render_html(hostile)
    markup = re.sub(r'<script type="application/json" id="bsa-data">.*?</script>', "", page)
    for result in hostile.instances[:5]:
        for sample in result.samples:
            assert sample.completion.answer not in markup
            assert html.escape(sample.completion.answer) not in markup
    assert 'id="bsa-rows"></tbody>' in markup  # no instance row in the markup


def test_the_page_script_writes_text_only() -> None:
    """The script never parses strings as markup: textContent, never innerHTML and friends."""
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    assert "textContent" in script
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_templates_escape_every_value() -> None:
    """Autoescaping is on for every template and no template opts out of it; the only markup
    passed in as it is comes from the renderer itself (assets, escaped JSON, its own SVG)."""
    env = environment()
    for template in sorted(TEMPLATES.glob("*.j2")):
        assert env.autoescape(template.name) is True
        source = template.read_text(encoding="utf-8")
        assert "|safe" not in source.replace(" ", "") and "autoescape" not in source
    page = env.from_string("<p title={{ v }}>{{ v }}</p>").render(v="\"'<b>&")
    assert page == "<p title=&quot;&#x27;&lt;b&gt;&amp;>&quot;&#x27;&lt;b&gt;&amp;</p>"


def test_the_plugin_imports_no_template_engine() -> None:
    code = "import sys, pytest_bsa.plugin; print('jinja2' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no Chromium on this machine",
)
def test_check_script_loads_the_report_in_chromium(hostile: Report, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(hostile), encoding="utf-8")
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), str(page), "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert '"rows": 18' in run.stdout and '"detail_samples": 3' in run.stdout
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no Chromium on this machine",
)
def test_check_script_fails_on_a_script_error(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><script>undefinedFunction()</script>", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), str(page)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert "undefinedFunction" in run.stderr
