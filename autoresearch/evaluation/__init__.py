"""The fixed evaluation: deterministic criteria checks and the scores a trial is ranked by."""

from __future__ import annotations

from .checks import CheckResult, check, check_all
from .scoring import (
    SuiteScore,
    TaskScore,
    composite,
    criteria_rate,
    failed_task_score,
    judge_score,
    score_suite,
)

__all__ = [
    "CheckResult",
    "SuiteScore",
    "TaskScore",
    "check",
    "check_all",
    "composite",
    "criteria_rate",
    "failed_task_score",
    "judge_score",
    "score_suite",
]
