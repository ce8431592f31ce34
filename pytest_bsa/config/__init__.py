"""One frozen run configuration, built once: CLI > ini/pyproject > config file > defaults.

Pure (no pytest import): the plugin hands in the values it read; this package validates them and
raises :class:`ConfigError` with a sentence that quotes the bad value and names the fix. Every
name is imported from ``pytest_bsa.config``; behind it, one module per kind: the gate policy
(policy.py), the judge's mapping and its check before a run (judge_policy.py), the settings and
single-value checks (settings.py), reading and layering the config file (files.py).
"""

from __future__ import annotations

from pytest_bsa.config.files import (
    build_settings,
    is_prompt_spec,
    load_file_config,
    load_pyproject_table,
    parse_file_config,
    rebase_paths,
)
from pytest_bsa.config.judge_policy import JudgeCheckPolicy, JudgeOnShort, JudgeSection
from pytest_bsa.config.policy import (
    CEILING_METRICS,
    DEFAULT_MAX_UNJUDGED,
    GATE_METRICS,
    MODEL_METRICS,
    BaselineConfig,
    Criteria,
    CriteriaConfig,
    GateMode,
    GatePolicy,
    MetricThresholds,
    OutcomeRule,
    Thresholds,
)
from pytest_bsa.config.settings import (
    DEFAULT_BREAKER,
    DEFAULT_JUDGE_MAX_TOKENS,
    RESERVED_PARAMS,
    SIMULATED,
    AnswersMode,
    ConfigError,
    FileConfig,
    ReasoningEffort,
    Settings,
    ThinkTags,
    check_api_base,
    check_env_name,
    check_subcategories,
    parse_param,
    parse_price,
    policy_problem,
)

__all__ = [
    "CEILING_METRICS",
    "DEFAULT_BREAKER",
    "DEFAULT_JUDGE_MAX_TOKENS",
    "DEFAULT_MAX_UNJUDGED",
    "GATE_METRICS",
    "MODEL_METRICS",
    "RESERVED_PARAMS",
    "SIMULATED",
    "AnswersMode",
    "BaselineConfig",
    "ConfigError",
    "Criteria",
    "CriteriaConfig",
    "FileConfig",
    "GateMode",
    "GatePolicy",
    "JudgeCheckPolicy",
    "JudgeOnShort",
    "JudgeSection",
    "MetricThresholds",
    "OutcomeRule",
    "ReasoningEffort",
    "Settings",
    "ThinkTags",
    "Thresholds",
    "build_settings",
    "check_api_base",
    "check_env_name",
    "check_subcategories",
    "is_prompt_spec",
    "load_file_config",
    "load_pyproject_table",
    "parse_file_config",
    "parse_param",
    "parse_price",
    "policy_problem",
    "rebase_paths",
]
