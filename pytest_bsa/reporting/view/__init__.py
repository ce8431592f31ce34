"""The view model every report shares: rows, gate summaries, flips, power and formatting.

Markdown, HTML, terminal and JUnit renderers build what they show from a saved
:class:`~pytest_bsa.report.Report` through this package (pure, no pytest): the numbers, labels,
gate marks and sentences are decided once here, and each renderer only lays them out and
escapes them for its format. Renderers import these names from ``pytest_bsa.reporting.view``;
the modules behind it hold one kind each (formatting, gates, group rows, instances, provenance,
the judge's own sections).
"""

from __future__ import annotations

from pytest_bsa.models import InstanceResult, SampleResult
from pytest_bsa.names import slug
from pytest_bsa.reporting.view.format import (
    count,
    dollars,
    excerpt,
    flip_metric,
    flip_value,
    metric_title,
    one_line,
    pct,
    points,
    seconds,
)
from pytest_bsa.reporting.view.gates import (
    REPORT_ONLY,
    GateNumbers,
    advisory_misses,
    baseline_deltas,
    failed_gates,
    gate_marks,
    gate_numbers,
    group_key,
    is_failed,
)
from pytest_bsa.reporting.view.groups import (
    COUNT_COLUMNS,
    RATE_COLUMNS,
    SAFE_COLOR,
    THINK_COLOR,
    WORST_NOTE,
    GroupRow,
    PowerRow,
    count_columns,
    group_rows,
    power_basis,
    power_rows,
)
from pytest_bsa.reporting.view.instances import (
    describe_failure,
    instance_rates,
    instance_statuses,
    scenarios_present,
    status_by_id,
    worth_an_excerpt,
)
from pytest_bsa.reporting.view.judge import (
    CONSISTENCY_HEADERS,
    MEMBER_HEADERS,
    PANEL_HEADERS,
    SPLIT_NOTE,
    UNSTABLE_HEADERS,
    UNSTABLE_SHOWN,
    MemberRow,
    PanelRow,
    check_advisory,
    check_line,
    consistency_rows,
    is_panel,
    member_rows,
    named_prompt,
    panel_rows,
    unstable_rows,
)
from pytest_bsa.reporting.view.judge import kappa as judge_kappa
from pytest_bsa.reporting.view.judge import member_cost as judge_cost
from pytest_bsa.reporting.view.judge import share as judge_share
from pytest_bsa.reporting.view.provenance import (
    answers_text,
    judge_text,
    outcomes_text,
    resume_line,
    rubric_text,
    stray_close_note,
)

__all__ = [
    "CONSISTENCY_HEADERS",
    "COUNT_COLUMNS",
    "MEMBER_HEADERS",
    "PANEL_HEADERS",
    "RATE_COLUMNS",
    "REPORT_ONLY",
    "SAFE_COLOR",
    "SPLIT_NOTE",
    "THINK_COLOR",
    "UNSTABLE_HEADERS",
    "UNSTABLE_SHOWN",
    "WORST_NOTE",
    "GateNumbers",
    "GroupRow",
    "InstanceResult",
    "MemberRow",
    "PanelRow",
    "PowerRow",
    "SampleResult",
    "advisory_misses",
    "answers_text",
    "baseline_deltas",
    "check_advisory",
    "check_line",
    "consistency_rows",
    "count",
    "count_columns",
    "describe_failure",
    "dollars",
    "excerpt",
    "failed_gates",
    "flip_metric",
    "flip_value",
    "gate_marks",
    "gate_numbers",
    "group_key",
    "group_rows",
    "instance_rates",
    "instance_statuses",
    "is_failed",
    "is_panel",
    "judge_cost",
    "judge_kappa",
    "judge_share",
    "judge_text",
    "member_rows",
    "metric_title",
    "named_prompt",
    "one_line",
    "outcomes_text",
    "panel_rows",
    "pct",
    "points",
    "power_basis",
    "power_rows",
    "resume_line",
    "rubric_text",
    "scenarios_present",
    "seconds",
    "slug",
    "status_by_id",
    "stray_close_note",
    "unstable_rows",
    "worth_an_excerpt",
]
