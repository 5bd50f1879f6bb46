"""Pure scoring: judge dimensions, criteria pass rate and the composite a trial is ranked by."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..workspace.config import ScoringConfig
from ..workspace.suite import Rubric, Task
from .checks import CheckResult

JUDGE_MIN = 0.0
JUDGE_MAX = 10.0


@dataclass(frozen=True)
class TaskScore:
    """One task's outcome: the judge's score of its output and the criteria checks on it."""

    task_id: str
    score_r1: float
    checks: tuple[CheckResult, ...]
    failed: bool = False  # the model call failed or its reply could not be parsed


@dataclass(frozen=True)
class SuiteScore:
    """A task suite's scores; nothing rounded, rounding is for display."""

    composite: float
    judge_mean: float
    criteria_rate: float
    tasks: tuple[TaskScore, ...]
    failed_tasks: int

    @property
    def failed_share(self) -> float:
        return self.failed_tasks / len(self.tasks) if self.tasks else 0.0


def failed_task_score(task: Task, reason: str) -> TaskScore:
    """The score of a task whose output never came: judge 0 and every criterion failed with reason."""
    checks = tuple(CheckResult(c.describe(), False, reason) for c in task.criteria)
    return TaskScore(task.id, 0.0, checks, failed=True)


def criteria_rate(results: Sequence[Sequence[CheckResult]]) -> float:
    """Passed checks over all checks of all tasks; 0.0 when there are none."""
    total = sum(len(task_results) for task_results in results)
    if total == 0:
        return 0.0
    return sum(r.passed for task_results in results for r in task_results) / total


def clamp_judge(score: float) -> float:
    # A NaN from a confused judge is no score at all; without this it would slip through min/max.
    if math.isnan(score):
        return JUDGE_MIN
    return min(JUDGE_MAX, max(JUDGE_MIN, score))


def judge_score(rubric: Rubric, dims: Mapping[str, float]) -> float:
    """Weighted mean of the rubric's dimension scores, each clamped to 0–10; a missing dimension counts 0."""
    total = sum(d.weight for d in rubric.dimensions)
    return sum(d.weight * clamp_judge(float(dims.get(d.name, 0.0))) for d in rubric.dimensions) / total


def composite(judge_mean: float, criteria_rate: float, scoring: ScoringConfig) -> float:
    """Judge mean (0–10) and criteria rate (0–1, scaled to 0–10) mixed by the configured weights."""
    return scoring.judge_weight * judge_mean + scoring.criteria_weight * criteria_rate * JUDGE_MAX


def score_suite(task_scores: Sequence[TaskScore], scoring: ScoringConfig) -> SuiteScore:
    """Combine per-task scores; a failed task counts judge 0 and all its criteria failed, whatever it carries."""
    judged = [0.0 if t.failed else t.score_r1 for t in task_scores]
    checks = [
        [CheckResult(c.criterion, False, c.reason) for c in t.checks] if t.failed else t.checks
        for t in task_scores
    ]
    judge_mean = sum(judged) / len(judged) if judged else 0.0
    rate = criteria_rate(checks)
    return SuiteScore(
        composite=composite(judge_mean, rate, scoring),
        judge_mean=judge_mean,
        criteria_rate=rate,
        tasks=tuple(task_scores),
        failed_tasks=sum(t.failed for t in task_scores),
    )
