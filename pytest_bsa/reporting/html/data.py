"""The data block of the HTML report: one compact record per instance for the page's script.

It travels in ``<script type="application/json">`` with ``<``, ``>`` and ``&`` (and the JS line
separators) written as JSON escapes, so no text can close the element; the script reads it
with ``JSON.parse`` and shows it with ``textContent`` only.
"""

from __future__ import annotations

import json
from typing import Any

from pytest_bsa.report import Report
from pytest_bsa.reporting.view import excerpt, instance_rates, status_by_id

TEXT_LIMIT = 20_000  # characters kept of one answer, reasoning trace or explanation
_STATUS_ORDER = {"error": 0, "missed": 1, "unjudged": 2, "met": 3}
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def clip(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{len(text) - limit:,} more characters; see the JSON report]"


def script_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</``, ``<!--``)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES)


def instance_payload(report: Report) -> list[dict[str, Any]]:
    """One compact record per instance for the page's script (texts clipped)."""
    statuses = status_by_id(report)
    out = []
    for r in report.instances:
        i = r.instance
        values = instance_rates(report, r)
        status, reasons = statuses.get(i.id, ("error" if r.errors else "-", ()))
        if not reasons and r.errors:
            reasons = (f"endpoint error: {excerpt(r.errors[0], 200)}",)
        samples = []
        for s in r.samples:
            c, j = s.completion, s.judgement
            samples.append(
                {
                    "i": s.index,
                    "safety": j.safety.value if j else None,
                    "think": j.think.value if j else None,
                    "sl": j.safety_label if j else None,
                    "tl": j.think_label if j else None,
                    "expl": clip(j.explanation) if j else None,
                    "answer": clip(c.answer) if c else None,
                    "reasoning": clip(c.reasoning) if c else None,
                    "rstate": c.reasoning_state.value if c else None,
                    "finish": c.finish_reason if c else None,
                    "error": clip(s.error),
                }
            )
        out.append(
            {
                "id": i.id,
                "scenario": i.scenario,
                "categories": list(i.categories),
                "labels": list(i.subcategories),
                "status": status,
                "reasons": list(reasons),
                "safe1": values["safe_at_1"],
                "think1": values["think_at_1"],
                "query": clip(i.query),
                "risk": clip(i.risk_summary),
                "samples": samples,
            }
        )
    out.sort(key=lambda d: (_STATUS_ORDER.get(d["status"], 3), d["id"]))
    return out
