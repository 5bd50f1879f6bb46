"""The keep rule replayed over a score table (bench/score_table.py): the same race (search/race.py) for every
ordered pair of variants and every ordered choice of seed sets, so that a few hundred model calls answer
thousands of keep decisions: how often null edits are kept (A/A), how often the planted improvement is kept
(power), and the calls each rule spends per trial.

The decisions share their variants and seed sets, so they are not independent: the figures say how many
variants and seed sets they rest on, and the spread over seed-set choices is printed beside the rate.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..evaluation.paired import Scores, compare, sd_by_task, task_sd
from ..search.keep_rule import EPSILON, PairedKeepRule
from ..search.pruning import Z, implausible
from ..search.race import OnScore, run_race
from ..search.screens import quiet_first

CALLS_PER_TASK = 3  # planner, producer, evaluator (no revision rounds in the starter)
UNIFORM_GAINS = (0.2, 0.3, 0.5, 0.7, 1.0)  # gains just above keep_threshold up to the planted edit's size and more


class TableScores:
    """A ScoreSource over a table: the challenger's and incumbent's scores under an ordering of its seed sets
    (the race's repeat r is the table's seed set order[r]); counts the calls a live race would have made."""

    def __init__(self, table: dict[str, Any], challenger: str, incumbent: str, order: tuple[int, ...]):
        self.variants, self.challenger, self.incumbent_name = table["variants"], challenger, incumbent
        self.order = order
        self.calls = 0

    def scores(self, variant: str, split: str, repeat: int) -> Scores:
        found = self.variants[variant][split]
        return {(task, repeat): values[self.order[repeat]] for task, values in sorted(found.items())}

    def screen(self) -> Scores:
        found = self.scores(self.challenger, "search", 0)
        self.calls += 1 + CALLS_PER_TASK * len(found)  # the proposer, and the screen's tasks
        return found

    def confirm(self, repeat: int, on_score: OnScore) -> Scores:
        found: dict[tuple[str, int], float | None] = {}
        for key, score in self.scores(self.challenger, "search", repeat).items():
            found[key] = score
            self.calls += CALLS_PER_TASK
            if not on_score(key, score):
                break
        return found

    def incumbent(self, split: str, repeat: int) -> Scores:
        return self.scores(self.incumbent_name, split, repeat)  # measured before: no calls in the trial

    def holdout(self) -> tuple[Scores | None, dict[str, Any]]:
        found = self.scores(self.challenger, "holdout", 0)
        self.calls += CALLS_PER_TASK * len(found)
        return (found or None), {}


@dataclass
class Decisions:
    """Every replayed decision of one kind (A/A or power): keeps, calls, and the old rule beside them."""

    trials: int = 0
    keeps: int = 0
    calls: int = 0
    old_keeps: int = 0
    old_calls: int = 0
    stages: dict[str, int] = field(default_factory=dict)
    holdout_agreeing: int = 0  # keeps whose holdout delta on the seed sets the gate did not see is > 0
    holdout_measured: int = 0  # keeps with such a holdout delta at all
    by_first_seed: dict[int, list[int]] = field(default_factory=dict)  # seed set of the screen → [keeps, trials]

    def add(self, keep: bool, stage: str, calls: int, old_keep: bool, old_calls: int, first: int) -> None:
        self.trials += 1
        self.keeps += keep
        self.calls += calls
        self.old_keeps += old_keep
        self.old_calls += old_calls
        self.stages[stage] = self.stages.get(stage, 0) + 1
        tally = self.by_first_seed.setdefault(first, [0, 0])
        tally[0] += keep
        tally[1] += 1

    def to_json(self) -> dict[str, Any]:
        rate = self.keeps / self.trials if self.trials else None
        per_seed = [k / n for k, n in self.by_first_seed.values() if n]
        return {"trials": self.trials, "keeps": self.keeps, "rate": rate,
                "rate_sd_over_screen_seed": statistics.stdev(per_seed) if len(per_seed) > 1 else None,
                "old_keeps": self.old_keeps, "old_rate": self.old_keeps / self.trials if self.trials else None,
                "calls_per_trial": self.calls / self.trials if self.trials else None,
                "old_calls_per_trial": self.old_calls / self.trials if self.trials else None,
                "stages": self.stages,
                "holdout_agreement": self.holdout_agreeing / self.holdout_measured if self.holdout_measured else None,
                "holdout_measured": self.holdout_measured}


def orders(sets: int, repeats: int) -> Iterator[tuple[int, ...]]:
    """Every ordered choice of `repeats` seed sets out of `sets`."""
    return itertools.permutations(range(sets), repeats)


def old_rule(source: TableScores, threshold: float) -> tuple[bool, int]:
    """The rule replaced: one evaluation of the search tasks, kept above the incumbent's by > threshold; its
    calls (the proposer, the screen, and the holdout of a keep)."""
    mine, theirs = source.scores(source.challenger, "search", 0), source.scores(source.incumbent_name, "search", 0)
    if any(v is None for v in mine.values()) or any(v is None for v in theirs.values()):
        return False, 1 + CALLS_PER_TASK * len(mine)
    keep = statistics.fmean(mine.values()) - statistics.fmean(theirs.values()) > threshold + EPSILON
    holdout = len(source.variants[source.challenger]["holdout"])
    return keep, 1 + CALLS_PER_TASK * (len(mine) + (holdout if keep else 0))


def pruned_after(source: TableScores, upfront: int, threshold: float, z: float = Z) -> int | None:
    """After how many tasks the paired pruner (search/pruning.py) stops the challenger's screen, or None.

    As in the loop: the screen runs the tasks with the least seed noise first (search/screens.py: quiet_first)
    and is compared task by task with the incumbent under the screen's seed set, both order and pruner taking
    the incumbent's noise from the `upfront` seed sets the baseline measured before the first trial ([search]
    noise_repeats_upfront; here the order's first): the worst case, before any race measured more."""
    mine = source.scores(source.challenger, "search", 0)
    theirs = source.scores(source.incumbent_name, "search", 0)
    measured = {key: value for r in range(upfront)
                for key, value in source.scores(source.incumbent_name, "search", r).items()}
    sd = task_sd(measured)
    if sd is None:
        return None
    order = quiet_first(sd_by_task(measured), sorted(task for task, _ in mine))
    comparable = [(task, 0) for task in order if theirs[(task, 0)] is not None and mine[(task, 0)] is not None]
    differences: list[float] = []
    for key in comparable:
        differences.append(mine[key] - theirs[key])
        if implausible(differences, len(comparable), sd, threshold, z):
            return len(differences)
    return None


def replay(table: dict[str, Any], rule: PairedKeepRule, pairs: list[tuple[str, str]], *,
           prune: bool = False, z: float = Z, upfront: int | None = None) -> Decisions:
    """The race of each (challenger, incumbent) pair under every ordering of the table's seed sets; with
    `prune`, the paired pruner (at level z, its noise from `upfront` seed sets: all the rule confirms over by
    default) may stop its screen first (not kept, the calls up to its stop)."""
    upfront = rule.repeats if upfront is None else min(upfront, rule.repeats)
    found = Decisions()
    sets = min(len(v) for variant in table["variants"].values() for v in variant["search"].values())
    for challenger, incumbent in pairs:
        for order in orders(sets, rule.repeats):
            source = TableScores(table, challenger, incumbent, order)
            old_keep, old_calls = old_rule(TableScores(table, challenger, incumbent, order), rule.threshold)
            stop = pruned_after(source, upfront, rule.threshold, z) if prune else None
            if stop is not None:
                found.add(False, "pruned", 1 + CALLS_PER_TASK * stop, old_keep, old_calls, order[0])
                continue
            verdict = run_race(rule, source, source.screen())
            found.add(verdict.keep, verdict.stage, source.calls, old_keep, old_calls, order[0])
            if verdict.keep:
                fresh = fresh_holdout_delta(table, challenger, incumbent, order[0])
                found.holdout_measured += fresh is not None
                found.holdout_agreeing += fresh is not None and fresh > 0
    return found


def fresh_holdout_delta(table: dict[str, Any], challenger: str, incumbent: str, gated: int) -> float | None:
    """The holdout difference over every seed set but the one the gate saw: does a keep hold on tasks and
    seeds that played no part in choosing it?"""
    def scores(variant: str) -> dict[tuple[str, int], float | None]:
        return {(task, s): v for task, values in table["variants"][variant]["holdout"].items()
                for s, v in enumerate(values) if s != gated}

    found = compare(scores(challenger), scores(incumbent))
    return found.mean if found.n else None


def null_variants(table: dict[str, Any], planted: str = "planted", *others: str) -> list[str]:
    """The table's variants without a planted effect: all but `planted` and `others`, in name order."""
    return sorted(v for v in table["variants"] if v != planted and v not in others)


def resample(table: dict[str, Any], rule: PairedKeepRule, planted: str = "planted", *,
             prune: bool = False, z: float = Z, upfront: int | None = None) -> dict[str, Any]:
    """A/A over every ordered pair of null variants, power of the planted variant against each of them (with
    `prune`, behind the paired pruner, its noise from `upfront` seed sets: pass the workspace's
    [search] noise_repeats_upfront to replay the loop; None takes every set the rule confirms over)."""
    nulls = null_variants(table, planted)
    aa = replay(table, rule, list(itertools.permutations(nulls, 2)), prune=prune, z=z, upfront=upfront)
    power = (replay(table, rule, [(planted, n) for n in nulls], prune=prune, z=z, upfront=upfront)
             if planted in table["variants"] else Decisions())
    return {"variants": len(nulls), "seed_sets": min(len(v) for v in table["variants"][nulls[0]]["search"].values()),
            "aa": aa.to_json(), "power": power.to_json()}


def with_gain(table: dict[str, Any], delta: float, base: str = "starter") -> dict[str, Any]:
    """The table with one more variant, "gain": `base`'s own scores + delta on every search and holdout task under
    every seed set (a failed task stays failed): a real effect of exactly delta, with the table's real noise."""
    gained = {split: {task: [None if v is None else v + delta for v in values] for task, values in tasks.items()}
              for split, tasks in table["variants"][base].items()}
    return {**table, "variants": {**table["variants"], "gain": gained}}


def uniform_gains(table: dict[str, Any], rule: PairedKeepRule, base: str = "starter", planted: str = "planted", *,
                  prune: bool = False, z: float = Z, upfront: int | None = None) -> list[dict[str, Any]]:
    """The rule's power on a gain of each size in UNIFORM_GAINS added to `base`, raced against each other null
    variant (not `base` itself: every pair would differ by exactly delta) under every ordering of the seed sets
    (as `replay`), and the calls it spent a trial."""
    nulls = null_variants(table, planted, base)
    return [{"delta": delta, **replay(with_gain(table, delta, base), rule, [("gain", n) for n in nulls],
                                      prune=prune, z=z, upfront=upfront).to_json()} for delta in UNIFORM_GAINS]
