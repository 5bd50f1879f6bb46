"""Paired comparison of two instruction sets: per task and seed, challenger − incumbent, and how sure we can be
that the mean of those differences is above zero. The keep rule's statistics, apart from the loop."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping

from scipy import stats

# One side's scores: (task id, repeat) → that task's score under that repeat's seeds; None: the task failed.
Scores = Mapping[tuple[str, int], float | None]


@dataclass(frozen=True)
class PairedComparison:
    """The differences challenger − incumbent over the (task, repeat) pairs that succeeded on both sides."""

    deltas: tuple[float, ...]
    tasks: int  # distinct tasks among the pairs
    repeats: int  # distinct repeats (seed sets) among the pairs
    dropped: int  # pairs left out because a side's task failed (a fault is not evidence)
    task_ids: tuple[str, ...] = ()  # each delta's task, in the order of deltas
    across_tasks: bool = False  # the bound also over the tasks' means ([scoring] across_tasks)

    @cached_property  # asked for by both bounds and the JSON; the comparison never changes
    def task_means(self) -> tuple[float, ...]:
        """Each task's mean difference over its seed sets."""
        by_task: dict[str, list[float]] = {}
        for task, delta in zip(self.task_ids, self.deltas):
            by_task.setdefault(task, []).append(delta)
        return tuple(statistics.fmean(v) for v in by_task.values())

    def task_lower_bound(self, confidence: float) -> float | None:
        """The one-sided t lower bound over the tasks' mean differences (the task is the unit): a gain that one
        task's draw carries, or that an edit's chance effect on a few tasks carries, is not counted as sure.
        None from under two tasks."""
        means = self.task_means
        if len(means) < 2:
            return None
        centre = statistics.fmean(means)
        return centre - float(stats.t.ppf(confidence, len(means) - 1)) * statistics.stdev(means) / math.sqrt(len(means))

    @property
    def n(self) -> int:
        return len(self.deltas)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.deltas) if self.deltas else 0.0

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.deltas) if self.n >= 2 else None

    def pair_lower_bound(self, confidence: float) -> float | None:
        """The one-sided paired-t lower bound over every (task, seed) difference; None from under two pairs.

        With every difference equal (sd 0) the bound is the mean itself: no spread, no doubt."""
        sd = self.sd
        if sd is None:
            return None
        return self.mean - float(stats.t.ppf(confidence, self.n - 1)) * sd / math.sqrt(self.n)

    def lower_bound(self, confidence: float) -> float | None:
        """The keep rule's bound: the pairs' bound, or with across_tasks the lower of it and the tasks' (the
        pairs' alone with one task).

        Why the tasks' too: on a small model a changed prompt re-draws each task's outcome for every seed
        alike, so an edit with no real effect can move one task's score consistently across seeds; over the
        pairs that looks certain, over the tasks it does not. With few tasks it is a blunt bound, though."""
        pairs = self.pair_lower_bound(confidence)
        tasks = self.task_lower_bound(confidence) if self.across_tasks else None
        return pairs if tasks is None or pairs is None else min(pairs, tasks)

    def text(self, confidence: float) -> str:
        """"+0.42 over 4 tasks × 3 seeds, 95% lower bound +0.11" (what a keep's evidence says)."""
        bound = self.lower_bound(confidence)
        shown = "none" if bound is None else f"{bound:+.2f}"
        dropped = f", {self.dropped} pairs left out for faults" if self.dropped else ""
        return (f"{self.mean:+.2f} over {self.tasks} tasks × {self.repeats} seed{'' if self.repeats == 1 else 's'}, "
                f"{confidence:.0%} lower bound {shown}{dropped}")

    def to_json(self, confidence: float) -> dict[str, object]:
        return {"mean": self.mean, "sd": self.sd, "n": self.n, "tasks": self.tasks, "repeats": self.repeats,
                "dropped": self.dropped, "confidence": confidence, "lower_bound": self.lower_bound(confidence),
                "pair_lower_bound": self.pair_lower_bound(confidence),
                "task_lower_bound": self.task_lower_bound(confidence), "task_means": list(self.task_means),
                "across_tasks": self.across_tasks}


def compare(challenger: Scores, incumbent: Scores) -> PairedComparison:
    """Pair the two sides' scores on the (task, repeat) keys of the challenger; a key the incumbent lacks
    is a programming error (the caller evaluates the incumbent on every key first)."""
    deltas, keys, dropped = [], [], 0
    for key, value in challenger.items():
        other = incumbent[key]
        if value is None or other is None:
            dropped += 1
            continue
        deltas.append(value - other)
        keys.append(key)
    return PairedComparison(tuple(deltas), len({t for t, _ in keys}), len({r for _, r in keys}), dropped,
                            tuple(t for t, _ in keys))


def task_sd(scores: Scores) -> float | None:
    """The pooled within-task sd of one side's scores over repeats: how far one task's score moves when only
    the seeds change. None without a task scored under two repeats."""
    by_task: dict[str, list[float]] = {}
    for (task, _), value in scores.items():
        if value is not None:
            by_task.setdefault(task, []).append(value)
    squares = sum(statistics.variance(v) * (len(v) - 1) for v in by_task.values() if len(v) >= 2)
    freedom = sum(len(v) - 1 for v in by_task.values() if len(v) >= 2)
    return math.sqrt(squares / freedom) if freedom else None


def holdout_margin(per_task_sd: float, tasks: int) -> float:
    """How far the holdout composite's difference between two single evaluations moves by chance:
    √2 · σ_task / √tasks (each side's mean over `tasks` tasks, one seed each)."""
    return math.sqrt(2) * per_task_sd / math.sqrt(max(tasks, 1))
