"""What the study's screens say, task by task: the parents on the per-task Pareto front, and the order in
which a screen runs its tasks.

A variant that is best on some search task keeps something the incumbent lost, even when its mean is lower:
it stays a possible parent (and a crossover partner) instead of being forgotten (GEPA's candidate selection).
A screen runs first the tasks whose score moves least when only the seeds change (the incumbent's per-task
sd over its seed sets): one draw of a quiet task says most about a difference, so a pruner's early stops rest
on the most trustworthy tasks. (Ordering by the spread between variants instead ran the noisiest tasks first:
on this model variants differ mostly by re-drawn replies, and the pruner stopped real gains on noise;
docs/BENCHMARKS.md has the replay.) The screens are comparable task by task because every one runs under
the same seeds (seed set 0).
"""

from __future__ import annotations

import math
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


def quiet_first(noise: dict[str, float], tasks: Sequence[str]) -> list[str]:
    """The task ids, those with the least seed noise first (the suite's order among equals; tasks without a
    measured noise last, and the suite's order outright before any was measured)."""
    return sorted(tasks, key=lambda task: (noise.get(task, math.inf), tasks.index(task)))
