"""The keep rule's race, run: a challenger's screen paired with the incumbent's scores on this machine, its
confirmation seed sets (stopped after any task that sinks it, after the first when the seeds changed no
score on either side, and after any before the last that keeps it early), the bound and the holdout gate. The decisions
are search/keep_rule.py's; where the scores come from is a ScoreSource: evaluations made now and stored
(EvaluatedScores), or a table measured before (bench/resample.py replays the same race over one)."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from ..evaluation.paired import Scores, compare, gate_margin, task_sd
from ..lm.calls import CallRecorder
from ..pipeline.runner import SuiteResult
from ..workspace.suite import Task
from .evaluating import Evaluator
from .keep_rule import PairedKeepRule, Verdict
from .results import Incumbent

# Told each confirmation score as it arrives ((task id, repeat), score); False stops that seed set there.
OnScore = Callable[[tuple[str, int], float | None], bool]


class ScoreSource(Protocol):
    """One challenger's and its incumbent's scores, as the race asks for them."""

    def confirm(self, repeat: int, on_score: OnScore) -> Scores:
        """The challenger's search tasks under seed set `repeat`, told to on_score task by task."""

    def incumbent(self, split: str, repeat: int) -> Scores:
        """The incumbent's tasks of `split` under seed set `repeat`."""

    def holdout(self) -> tuple[Scores | None, dict[str, Any]]:
        """The challenger's holdout tasks under the configured seeds (None without any), and what to record."""


def run_race(rule: PairedKeepRule, source: ScoreSource, screen: Scores) -> Verdict:
    """Screen (scores already made under the configured seeds), confirmation seed sets, bound, holdout gate;
    each step stops a challenger that cannot win."""
    mine, theirs = dict(screen), dict(source.incumbent("search", 0))
    comparison = compare(mine, theirs)
    screen_delta = comparison.mean
    if not rule.still_in_race(comparison):
        return rule.out_of_race(comparison, screen_delta, "screen")
    early = False
    for repeat in range(1, rule.repeats):
        # The incumbent first, so that the challenger's seed set can stop after any task whose pair pulls the
        # running mean to the threshold: a loser costs the tasks up to there, not the whole set.
        theirs.update(source.incumbent("search", repeat))

        def still_in(key: tuple[str, int], score: float | None) -> bool:
            mine[key] = score
            return rule.still_in_race(compare(mine, theirs))

        mine.update(source.confirm(repeat, still_in))
        comparison = compare(mine, theirs)
        if not rule.still_in_race(comparison):
            return rule.out_of_race(comparison, screen_delta, "confirm")
        if comparison.copies:
            break  # the seeds changed no score on either side (a deterministic backend): more sets would copy
        if repeat < rule.repeats - 1 and rule.sure_early(comparison):
            early = True
            break  # far beyond the noise already: the remaining seed sets (both sides') are not spent
    sd = task_sd(theirs)
    verdict = rule.confirm(comparison, screen_delta, sd, early)
    if not verdict.keep:
        return verdict
    found, extra = source.holdout()
    if found is None:
        return verdict
    holdout = compare(found, source.incumbent("holdout", 0))
    verdict = rule.gate(verdict, holdout, *gate_margin(comparison, sd, holdout.n))
    verdict.extra.update(extra)
    return verdict


class EvaluatedScores:
    """A ScoreSource that evaluates on this machine: the challenger's seed sets now, the incumbent's from the
    store where this study evaluated it before (another worker's keep, or tasks that failed: evaluated now)."""

    def __init__(self, evaluator: Evaluator, number: int, incumbent: Incumbent, instructions: dict[str, str],
                 knobs: dict[str, Any], variant_hash: str, recorder: CallRecorder, search_tasks: list[Task],
                 holdout_tasks: list[Task]):
        self.evaluator, self.number, self.recorder = evaluator, number, recorder
        self.incumbent_side = incumbent
        self.incumbent_hash = incumbent.variant_hash
        self.instructions, self.knobs, self.variant_hash = instructions, knobs, variant_hash
        self.tasks = {"search": search_tasks, "holdout": holdout_tasks}

    def confirm(self, repeat: int, on_score: OnScore) -> Scores:
        def on_task(_index: int, task) -> bool:
            return on_score(*self.evaluator.task_score(task, repeat))

        result = self.evaluator.repeat(self.number, self.instructions, self.tasks["search"], repeat,
                                       self.recorder, knobs=self.knobs, variant_hash=self.variant_hash,
                                       kind="confirm", on_task=on_task)
        return self.evaluator.result_scores(result, repeat)

    def incumbent(self, split: str, repeat: int) -> Scores:
        side = self.incumbent_side
        return dict(self.evaluator.scores(self.number, side.instructions, side.knobs, self.incumbent_hash,
                                          self.tasks[split], split, repeat, self.recorder))

    def holdout(self) -> tuple[Scores | None, dict[str, Any]]:
        suite, evaluation_id = self.evaluator.holdout(self.number, self.instructions, self.knobs, self.recorder,
                                                      variant_hash=self.variant_hash)
        if suite is None:
            return None, {}
        return (self.evaluator.result_scores(suite, 0),
                {"holdout_evaluation_id": evaluation_id, "holdout_composite": suite.composite})


class Race:
    """Runs a challenger through the keep rule against an incumbent, evaluating what the rule asks for."""

    def __init__(self, evaluator: Evaluator, rule: PairedKeepRule, search_tasks: list[Task],
                 holdout_tasks: list[Task]):
        self.evaluator, self.rule = evaluator, rule
        self.search_tasks, self.holdout_tasks = search_tasks, holdout_tasks

    def run(self, number: int, incumbent: Incumbent, instructions: dict[str, str], knobs: dict[str, Any],
            variant_hash: str, screen: SuiteResult, recorder: CallRecorder) -> Verdict:
        """The race of one challenger whose screen is `screen`; its evaluations are recorded under `number`."""
        source = EvaluatedScores(self.evaluator, number, incumbent, instructions, knobs, variant_hash, recorder,
                                 self.search_tasks, self.holdout_tasks)
        return run_race(self.rule, source, self.evaluator.result_scores(screen, 0))
