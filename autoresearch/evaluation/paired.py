"""Paired comparison of two instruction sets: per task and seed, challenger − incumbent, and how sure we can be
that the mean of those differences is above zero. The keep rule's statistics, apart from the loop."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Sequence

from scipy import stats

# One side's scores: (task id, repeat) → that task's score under that repeat's seeds; None: the task failed.
Scores = Mapping[tuple[str, int], float | None]

SPREAD_EPSILON = 1e-9  # differences equal up to float noise ((a − b) and (c − d) may differ in the last bit)


def tasks_for_sign_test(confidence: float) -> int:
    """How many independent differences must all go one way before chance (0.5 each) falls to 1 − confidence:
    5 at 95%."""
    return math.ceil(math.log(1 - confidence) / math.log(0.5) - SPREAD_EPSILON)


def untied(units: Sequence[float]) -> int:
    """How many of the differences are not ties: a sign test leaves a zero difference out, as it says nothing
    about which side is better (a small judge often gives both sides the same score on a task)."""
    return sum(1 for unit in units if abs(unit) > SPREAD_EPSILON)


def sure_enough(bound: float, units: int, confidence: float) -> float | None:
    """A lower bound from `units` untied independent differences, as a claim: at or under zero it claims nothing
    and stands; above zero it stands only from as many untied differences as a sign test needs to be that sure
    (5 at 95%). Ties count for the t bound (a measured zero narrows it) but not here: +0.5 on 4 pairs and 0.0 on
    2 give a t bound of +0.12, yet the 4 that moved all one way is chance 1 in 16.

    From fewer, no test that assumes nothing about the differences' shape could be that sure (4 all one way is
    chance 1 in 16), so a t bound's certainty would rest on normality alone: near-equal differences on 2 tasks ×
    2 seeds (+0.49, +0.49, +0.49, +0.56) give a t bound of +0.47, a coin's 1 in 16.

    When every difference is equal the t bound would be the mean itself ("no spread, no doubt"). Equal
    differences are what coarse scores give on a few tasks (a judge's 1.0 against 1.7 on each), and what a
    deterministic backend gives under every seed: no spread was measured, which is not no doubt. The bound is
    then the mean, under the same rule: the exact sign test (all `units` one way by chance is 0.5^units)."""
    if bound <= 0:
        return bound
    return bound if units >= tasks_for_sign_test(confidence) else None


@dataclass(frozen=True)
class PairedComparison:
    """The differences challenger − incumbent over the (task, repeat) pairs that succeeded on both sides."""

    deltas: tuple[float, ...]
    tasks: int  # distinct tasks among the pairs
    repeats: int  # distinct repeats (seed sets) among the pairs
    dropped: int  # pairs left out because a side's task failed (a fault is not evidence)
    task_ids: tuple[str, ...] = ()  # each delta's task, in the order of deltas
    across_tasks: bool = False  # the bound also over the tasks' means ([scoring] across_tasks)
    copies: bool = False  # the seeds changed no score on either side: each task's repeats copy its first

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
        None from under two tasks, and in place of a bound above zero from fewer untied tasks than a sign test
        would need (sure_enough: three tasks' means all above zero is chance 1 in 8, whatever t says)."""
        means = self.task_means
        if len(means) < 2:
            return None
        centre, spread = statistics.fmean(means), statistics.stdev(means)
        if spread <= SPREAD_EPSILON:
            return sure_enough(centre, untied(means), confidence)
        bound = centre - float(stats.t.ppf(confidence, len(means) - 1)) * spread / math.sqrt(len(means))
        return sure_enough(bound, untied(means), confidence)

    @property
    def n(self) -> int:
        return len(self.deltas)

    @property
    def without_spread(self) -> bool:
        """Every difference equal (two or more): the bounds fall back to a sign test (sure_enough)."""
        return self.sd is not None and self.sd <= SPREAD_EPSILON

    @property
    def mean(self) -> float:
        return statistics.fmean(self.deltas) if self.deltas else 0.0

    @cached_property  # asked for by the bounds, without_spread and the text
    def sd(self) -> float | None:
        return statistics.stdev(self.deltas) if self.n >= 2 else None

    @property
    def units(self) -> tuple[float, ...]:
        """The independent differences: every pair's, or each task's once where the seeds changed no score (a
        task's repeats are then copies of one draw, and counting them would claim evidence never measured)."""
        return self.task_means if self.copies else self.deltas

    @property
    def untied_units(self) -> int:
        """How many units are not ties: what a bound above zero must rest on enough of (sure_enough)."""
        return untied(self.units)

    @property
    def copied_repeats(self) -> bool:
        """Whether there were repeats and the seeds changed no score: what the evidence's text says beside it."""
        return self.copies and self.repeats > 1

    def pair_lower_bound(self, confidence: float) -> float | None:
        """The one-sided paired-t lower bound over every (task, seed) difference, or over the tasks where the
        seeds changed no score (units); None from under two units, and in place of a bound above zero from fewer
        untied units than a sign test would need (sure_enough).

        With every difference equal (sd 0) a sign test over the same units decides (sure_enough)."""
        sd = self.sd
        if sd is None:
            return None
        if sd <= SPREAD_EPSILON:
            return sure_enough(self.mean, self.untied_units, confidence)
        units = self.units
        if len(units) < 2:
            return None
        bound = statistics.fmean(units) - (float(stats.t.ppf(confidence, len(units) - 1))
                                           * statistics.stdev(units) / math.sqrt(len(units)))
        return sure_enough(bound, self.untied_units, confidence)

    def lower_bound(self, confidence: float) -> float | None:
        """The keep rule's bound: the pairs' bound, or with across_tasks the lower of it and the tasks' (the
        pairs' alone with one task).

        Why the tasks' too: on a small model a changed prompt re-draws each task's outcome for every seed
        alike, so an edit with no real effect can move one task's score consistently across seeds; over the
        pairs that looks certain, over the tasks it does not. With few tasks it is a blunt bound, though."""
        pairs = self.pair_lower_bound(confidence)
        if not self.across_tasks or len(self.task_means) < 2:
            return pairs
        tasks = self.task_lower_bound(confidence)
        if tasks is None:  # too few untied tasks to be sure of a gain over them: no claim above zero stands
            return pairs if pairs is not None and pairs <= 0 else None
        return None if pairs is None else min(pairs, tasks)

    def text(self, confidence: float) -> str:
        """"+0.42 over 4 tasks × 3 seeds, 95% lower bound +0.11" (what a keep's evidence says)."""
        bound = self.lower_bound(confidence)
        shown = "none" if bound is None else f"{bound:+.2f}"
        units = f"{self.tasks} task{'' if self.tasks == 1 else 's'}" if self.copies else f"{self.n} pairs"
        needed = tasks_for_sign_test(confidence)
        if bound is None and self.without_spread and self.mean > 0:
            shown += (f" (every difference equal: no spread measured, and {units} all one way is chance under "
                      f"a sign test; {needed} needed)")
        elif bound is None and self.mean > 0 and len(self.units) >= 2 and self.untied_units < needed:
            ties = len(self.units) - self.untied_units
            tied = f", {ties} of them tied" if ties else ""
            shown += (f" ({units}{tied}: too few to be {confidence:.0%} sure without assuming their shape; "
                      f"{needed}{' untied' if ties else ''} needed)")
        elif bound is None and self.across_tasks and self.mean > 0 and untied(self.task_means) < needed \
                and len(self.task_means) >= 2:
            shown += (f" (over {self.tasks} task means: too few to be {confidence:.0%} sure without assuming "
                      f"their shape; {needed} needed)")
        dropped = f", {self.dropped} pairs left out for faults" if self.dropped else ""
        copied = " (the seeds changed no score: each task counted once)" if self.copied_repeats else ""
        return (f"{self.mean:+.2f} over {self.tasks} tasks × {self.repeats} seed{'' if self.repeats == 1 else 's'}"
                f"{copied}, {confidence:.0%} lower bound {shown}{dropped}")

    def to_json(self, confidence: float) -> dict[str, object]:
        return {"mean": self.mean, "sd": self.sd, "n": self.n, "tasks": self.tasks, "repeats": self.repeats,
                "dropped": self.dropped, "confidence": confidence, "lower_bound": self.lower_bound(confidence),
                "pair_lower_bound": self.pair_lower_bound(confidence),
                "task_lower_bound": self.task_lower_bound(confidence), "task_means": list(self.task_means),
                "across_tasks": self.across_tasks, "copies": self.copies}


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
                            tuple(t for t, _ in keys), copies=seeds_changed_nothing(keys, challenger, incumbent))


def seeds_changed_nothing(keys: list[tuple[str, int]], *sides: Scores) -> bool:
    """True when every task's score is the same under each of its repeats on both sides (a deterministic backend,
    or one repeat each): its repeats are then copies of one draw."""
    first: dict[tuple[int, str], float | None] = {}
    for side_index, side in enumerate(sides):
        for task, repeat in keys:
            value = side[(task, repeat)]
            if first.setdefault((side_index, task), value) != value:
                return False
    return True


def _by_task(scores: Scores) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for (task, _), value in scores.items():
        if value is not None:
            found.setdefault(task, []).append(value)
    return found


def task_sd(scores: Scores) -> float | None:
    """The pooled within-task sd of one side's scores over repeats: how far one task's score moves when only
    the seeds change. None without a task scored under two repeats."""
    by_task = _by_task(scores)
    squares = sum(statistics.variance(v) * (len(v) - 1) for v in by_task.values() if len(v) >= 2)
    freedom = sum(len(v) - 1 for v in by_task.values() if len(v) >= 2)
    return math.sqrt(squares / freedom) if freedom else None


def sd_by_task(scores: Scores) -> dict[str, float]:
    """Each task's own sd over repeats (the tasks scored under two or more)."""
    return {task: statistics.stdev(v) for task, v in _by_task(scores).items() if len(v) >= 2}


NOISE_BASIS = "the noise of such a difference"  # the holdout margin from the incumbent's seed noise
SPREAD_BASIS = "the spread of the search tasks' differences"  # the holdout margin where seeds changed no score


def gate_margin(search: PairedComparison, incumbent_sd: float | None, tasks: int) -> tuple[float | None, str]:
    """How far a holdout difference over `tasks` tasks may fall below zero by chance, and what that was measured
    from: the incumbent's seed noise, or, where the seeds changed no score, the search differences' spread."""
    if search.copies:
        return spread_margin(search, tasks), SPREAD_BASIS
    return (None if incumbent_sd is None else holdout_margin(incumbent_sd, tasks)), NOISE_BASIS


def holdout_margin(per_task_sd: float, tasks: int) -> float:
    """How far the holdout composite's difference between two single evaluations moves by chance:
    √2 · σ_task / √tasks (each side's mean over `tasks` tasks, one seed each)."""
    return math.sqrt(2) * per_task_sd / math.sqrt(max(tasks, 1))


def spread_margin(comparison: PairedComparison, tasks: int) -> float | None:
    """Where the seeds changed no score there is no seed noise to measure, but an edit still re-draws each task's
    reply: how far the holdout's difference moves then, from the spread of the search differences over their
    independent units (sd / √tasks; a real effect that varies by task widens it). None from under two units."""
    units = comparison.units
    return statistics.stdev(units) / math.sqrt(max(tasks, 1)) if len(units) >= 2 else None
