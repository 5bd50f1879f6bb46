"""What the study's screens say, task by task: the parents on the per-task Pareto front, and the order in
which a screen runs its tasks.

A variant that is best on some search task keeps something the incumbent lost, even when its mean is lower:
it stays a possible parent (and a crossover partner) instead of being forgotten (GEPA's candidate selection).
A task whose score varies most between variants tells them apart best: it runs first, so that a pruner can
stop a hopeless variant after fewer tasks. The screens are comparable task by task because every one runs
under the same seeds (seed set 0).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from ..evaluation.scoring import composite
from ..workspace.config import ScoringConfig

EPSILON = 1e-9


def screen_scores(rows: Iterable[Any], tasks: Sequence[str], scoring: ScoringConfig) -> dict[int, dict[str, float]]:
    """Per trial, its composite on each search task; only trials whose screen covered every task without a
    failure (a pruned or faulty screen cannot be compared task by task)."""
    found: dict[int, dict[str, float]] = {}
    broken: set[int] = set()
    for row in rows:
        if row["failed"]:
            broken.add(row["number"])
            continue
        rate = row["criteria_passed"] / row["criteria_total"] if row["criteria_total"] else 0.0
        found.setdefault(row["number"], {})[row["task_id"]] = composite(row["score_r1"], rate, scoring)
    return {n: s for n, s in found.items() if n not in broken and set(tasks) <= set(s)}


def pareto_front(scores: dict[int, dict[str, float]]) -> list[int]:
    """The trials best (or tied best) on at least one task, those winning more tasks first, then by their
    mean, then the earlier."""
    if not scores:
        return []
    tasks = set.intersection(*(set(s) for s in scores.values()))
    wins = {n: 0 for n in scores}
    for task in tasks:
        best = max(s[task] for s in scores.values())
        for n, s in scores.items():
            wins[n] += s[task] >= best - EPSILON
    front = [n for n, won in wins.items() if won]
    mean = {n: sum(scores[n][t] for t in tasks) / max(len(tasks), 1) for n in front}
    return sorted(front, key=lambda n: (-wins[n], -mean[n], n))


def informative_order(scores: dict[int, dict[str, float]], tasks: Sequence[str]) -> list[str]:
    """The task ids, those whose scores vary most between the study's variants first (the suite's order
    among equals, and the suite's order outright before two variants were screened)."""
    if len(scores) < 2:
        return list(tasks)

    def spread(task: str) -> float:
        values = [s[task] for s in scores.values() if task in s]
        return statistics.pvariance(values) if len(values) >= 2 else 0.0

    return sorted(tasks, key=lambda task: (-spread(task), tasks.index(task)))
