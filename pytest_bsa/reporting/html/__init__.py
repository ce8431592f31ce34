"""A self-contained HTML report of a saved run: one file, no network, inline CSS/SVG/JS (pure).

The page is rendered from the Jinja2 templates in ``templates/`` with autoescaping: every
value shown in the markup is escaped; the per-instance data (queries, answers, reasoning,
verdicts) travels in one ``<script type="application/json">`` block with ``<``, ``>`` and ``&``
written as JSON escapes, and the page's script puts it into the DOM with ``textContent`` only.
Sample details are built when a row is opened, so a report of 2,000 instances x 5 samples
stays quick to load. The Content-Security-Policy allows no source at all (``default-src
'none'``) besides the page's own inline style and script.
"""

from __future__ import annotations

from pytest_bsa.report import Report
from pytest_bsa.reporting.html import sections
from pytest_bsa.reporting.html.chart import bar_chart
from pytest_bsa.reporting.html.data import TEXT_LIMIT, instance_payload, script_json
from pytest_bsa.reporting.html.judge import judge
from pytest_bsa.reporting.html.templating import asset, render, safe
from pytest_bsa.reporting.view import WORST_NOTE, advisory_misses, failed_gates, is_failed

__all__ = ["TEXT_LIMIT", "bar_chart", "instance_payload", "render_html", "script_json"]
SHOWN_GATES = 3  # failing gates shown before a "more" fold
_NAV = (
    ("gates", "Gates"),
    ("charts", "Charts"),
    ("groups", "Metrics"),
    ("power", "Power"),
    ("flips", "Flips"),
    ("cost", "Cost"),
    ("provenance", "Provenance"),
    ("instances", "Instances"),
)


def render_html(report: Report) -> str:
    """The whole report as one HTML document that needs no network."""
    title = f"BSA {'failed' if is_failed(report) else 'passed'}: {report.provenance.model.model}"
    return render(
        "report.html.j2",
        title=title,
        css=asset("report.css"),
        js=asset("report.js"),
        header=sections.header(report),
        nav=[(a, t) for a, t in _NAV if a != "flips" or report.baseline],
        gates={
            "failed": sections.gate_rows(failed_gates(report)),
            "advisory": sections.gate_rows(advisory_misses(report)),
            "all": sections.gate_rows(list(report.gates)),
            "shown": SHOWN_GATES,
        },
        charts=sections.charts(report),
        groups=sections.groups(report),
        baseline=report.baseline,
        worst_note=WORST_NOTE,
        power=sections.power(report),
        flips=sections.flips(report),
        k=report.k,
        judge=judge(report),
        cost=sections.cost(report),
        provenance=sections.provenance(report),
        instances=sections.instances(report),
        data=safe(script_json({"k": report.k, "instances": instance_payload(report)})),
    )
