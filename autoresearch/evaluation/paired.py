"""Paired comparison of two instruction sets: per task and seed, challenger − incumbent, and how sure we can be
that the mean of those differences is above zero. The keep rule's statistics, apart from the loop."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
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

    @property
    def n(self) -> int:
        return len(self.deltas)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.deltas) if self.deltas else 0.0

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.deltas) if self.n >= 2 else None

    def lower_bound(self, confidence: float) -> float | None:
        """The one-sided paired-t lower confidence bound of the mean difference; None from under two pairs.

        With every difference equal (sd 0) the bound is the mean itself: no spread, no doubt."""
        sd = self.sd
        if sd is None:
            return None
        return self.mean - float(stats.t.ppf(confidence, self.n - 1)) * sd / math.sqrt(self.n)

    def text(self, confidence: float) -> str:
        """"+0.42 over 4 tasks × 3 seeds, 95% lower bound +0.11" (what a keep's evidence says)."""
        bound = self.lower_bound(confidence)
        shown = "none" if bound is None else f"{bound:+.2f}"
        dropped = f", {self.dropped} pairs left out for faults" if self.dropped else ""
        return (f"{self.mean:+.2f} over {self.tasks} tasks × {self.repeats} seed{'' if self.repeats == 1 else 's'}, "
                f"{confidence:.0%} lower bound {shown}{dropped}")

    def to_json(self, confidence: float) -> dict[str, object]:
        return {"mean": self.mean, "sd": self.sd, "n": self.n, "tasks": self.tasks, "repeats": self.repeats,
                "dropped": self.dropped, "confidence": confidence, "lower_bound": self.lower_bound(confidence)}


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
    return PairedComparison(tuple(deltas), len({t for t, _ in keys}), len({r for _, r in keys}), dropped)


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
