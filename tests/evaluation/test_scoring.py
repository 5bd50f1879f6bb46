"""Scoring: weighted judge, criteria rate, the composite formula and failed tasks."""

from __future__ import annotations

import dataclasses
import math

import pytest

from autoresearch.evaluation import (
    CheckResult,
    SuiteScore,
    TaskScore,
    composite,
    criteria_rate,
    failed_task_score,
    judge_score,
    score_suite,
)
from autoresearch.workspace.config import ScoringConfig
from autoresearch.workspace.suite import Criterion, Dimension, Rubric, Task

DEFAULT_SCORING = ScoringConfig()  # judge 0.7, criteria 0.3


def rubric(**weights: float) -> Rubric:
    return Rubric(dimensions=[Dimension(name=n, description=n, weight=w) for n, w in weights.items()])


def checks(*passed: bool) -> tuple[CheckResult, ...]:
    return tuple(CheckResult(f"c{i}", p, "pass" if p else "fail") for i, p in enumerate(passed))


# judge_score


def test_judge_score_is_the_weighted_mean():
    assert judge_score(rubric(clarity=3, accuracy=1), {"clarity": 8.0, "accuracy": 4.0}) == pytest.approx(7.0)


def test_judge_score_counts_a_missing_dimension_as_zero_and_ignores_extras():
    scored = judge_score(rubric(clarity=1, accuracy=1), {"clarity": 8.0, "charm": 10.0})
    assert scored == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("raw", "clamped"),
    [(12.0, 10.0), (-3.0, 0.0), (math.inf, 10.0), (-math.inf, 0.0), (math.nan, 0.0), (7.5, 7.5)],
)
def test_judge_score_clamps_each_dimension_to_0_10(raw, clamped):
    assert judge_score(rubric(only=2), {"only": raw}) == pytest.approx(clamped)


def test_judge_score_clamps_before_weighting():
    # Unclamped, 20 and 0 would average to 10; clamped they give 5.
    assert judge_score(rubric(a=1, b=1), {"a": 20.0, "b": 0.0}) == pytest.approx(5.0)


# criteria_rate


@pytest.mark.parametrize(
    ("results", "rate"),
    [
        ([checks(True, False), checks(True, True)], 0.75),
        ([checks(False)], 0.0),
        ([checks(True, True, True)], 1.0),
        ([checks(), checks(True, False, False)], 1 / 3),  # a task with no checks adds nothing
        ([], 0.0),
        ([checks()], 0.0),
    ],
)
def test_criteria_rate_is_passed_over_total(results, rate):
    assert criteria_rate(results) == pytest.approx(rate)


# composite


@pytest.mark.parametrize(
    ("judge_mean", "rate", "expected"),
    [(6.0, 0.5, 5.7), (10.0, 1.0, 10.0), (0.0, 0.0, 0.0), (0.0, 1.0, 3.0), (10.0, 0.0, 7.0)],
)
def test_composite_with_default_weights(judge_mean, rate, expected):
    assert composite(judge_mean, rate, DEFAULT_SCORING) == pytest.approx(expected)


def test_composite_follows_configured_weights():
    scoring = ScoringConfig(judge_weight=0.5, criteria_weight=0.5)
    assert composite(6.0, 0.5, scoring) == pytest.approx(0.5 * 6.0 + 0.5 * 5.0)
    assert composite(8.0, 0.25, ScoringConfig(judge_weight=1.0, criteria_weight=0.0)) == pytest.approx(8.0)


def test_composite_is_not_rounded():
    assert composite(6.123456, 1 / 3, DEFAULT_SCORING) == pytest.approx(0.7 * 6.123456 + 0.3 * 10 / 3, abs=1e-12)


# score_suite


def test_score_suite_means_judge_and_pools_criteria():
    suite = score_suite(
        [TaskScore("a", 8.0, checks(True, True), False), TaskScore("b", 4.0, checks(True, False), False)],
        DEFAULT_SCORING,
    )
    assert suite.judge_mean == pytest.approx(6.0)
    assert suite.criteria_rate == pytest.approx(0.75)
    assert suite.composite == pytest.approx(0.7 * 6.0 + 0.3 * 7.5)
    assert suite.failed_tasks == 0
    assert [t.task_id for t in suite.tasks] == ["a", "b"]


def test_failed_task_counts_judge_zero_and_all_criteria_failed():
    # A failed task's leftovers (a stale score, checks marked passed) must not earn anything.
    stale = TaskScore("b", 9.0, checks(True, True), failed=True)
    suite = score_suite([TaskScore("a", 6.0, checks(True, True), False), stale], DEFAULT_SCORING)
    assert suite.judge_mean == pytest.approx(3.0)
    assert suite.criteria_rate == pytest.approx(0.5)
    assert suite.composite == pytest.approx(0.7 * 3.0 + 0.3 * 5.0)
    assert suite.failed_tasks == 1
    assert suite.failed_share == pytest.approx(0.5)


def test_failed_task_score_fails_every_criterion_of_the_task():
    task = Task(id="t1", prompt="Write.", criteria=[Criterion(kind="min_words", value=10),
                                                      Criterion(kind="no_placeholders")])
    failed = failed_task_score(task, "model call timed out")
    assert failed == TaskScore(
        "t1", 0.0,
        (CheckResult("min_words 10", False, "model call timed out"),
         CheckResult("no_placeholders", False, "model call timed out")),
        True,
    )
    suite = score_suite([failed], DEFAULT_SCORING)
    assert (suite.composite, suite.judge_mean, suite.criteria_rate, suite.failed_tasks) == (0.0, 0.0, 0.0, 1)


def test_score_suite_of_nothing_is_zero():
    assert score_suite([], DEFAULT_SCORING) == SuiteScore(0.0, 0.0, 0.0, (), 0)
    assert score_suite([], DEFAULT_SCORING).failed_share == 0.0


def test_scores_are_frozen():
    suite = score_suite([TaskScore("a", 5.0, checks(True), False)], DEFAULT_SCORING)
    with pytest.raises(dataclasses.FrozenInstanceError):
        suite.composite = 10.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        suite.tasks[0].score_r1 = 10.0  # type: ignore[misc]
