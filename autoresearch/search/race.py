"""The keep rule's race, run: a challenger's screen paired with the incumbent's scores on this machine, its
confirmation seed sets, the bound and the holdout gate (the decisions are search/keep_rule.py's)."""

from __future__ import annotations

from typing import Any

from ..evaluation.paired import compare, holdout_margin, task_sd
from ..lm.calls import CallRecorder
from ..pipeline.runner import SuiteResult
from ..workspace.config import Task
from . import records
from .evaluating import Evaluator
from .keep_rule import PairedKeepRule, Verdict
from .results import Incumbent


class Race:
    """Runs a challenger through the keep rule against an incumbent; evaluates what the rule asks for."""

    def __init__(self, evaluator: Evaluator, rule: PairedKeepRule, search_tasks: list[Task],
                 holdout_tasks: list[Task]):
        self.evaluator, self.rule = evaluator, rule
        self.search_tasks, self.holdout_tasks = search_tasks, holdout_tasks

    def run(self, number: int, incumbent: Incumbent, instructions: dict[str, str], knobs: dict[str, Any],
            variant_hash: str, screen: SuiteResult, recorder: CallRecorder) -> Verdict:
        """Screen (the evaluation already made under the configured seeds), confirmation seed sets, bound,
        holdout gate; each step stops a challenger that cannot win. Evaluations are recorded under `number`."""
        rule, tasks = self.rule, self.search_tasks
        mine = self.evaluator.result_scores(screen, 0)
        theirs = self.incumbent_scores(number, incumbent, tasks, "search", 0, recorder)
        comparison = compare(mine, theirs)
        screen_delta = comparison.mean
        if not rule.still_in_race(comparison):
            return rule.out_of_race(comparison, screen_delta, "screen")
        for repeat in range(1, rule.repeats):
            result, _ = self.evaluator.repeat(number, instructions, tasks, repeat, recorder, knobs=knobs,
                                              variant_hash=variant_hash, kind="confirm")
            mine.update(self.evaluator.result_scores(result, repeat))
            theirs.update(self.incumbent_scores(number, incumbent, tasks, "search", repeat, recorder))
            comparison = compare(mine, theirs)
            if not rule.still_in_race(comparison):
                return rule.out_of_race(comparison, screen_delta, "confirm")
        sd = task_sd(theirs)
        verdict = rule.confirm(comparison, screen_delta, sd)
        if not verdict.keep:
            return verdict
        holdout_suite, holdout_id = self.evaluator.holdout(number, instructions, knobs, recorder,
                                                           variant_hash=variant_hash)
        if holdout_suite is None:
            return verdict
        holdout = compare(self.evaluator.result_scores(holdout_suite, 0),
                          self.incumbent_scores(number, incumbent, self.holdout_tasks, "holdout", 0, recorder))
        verdict = rule.gate(verdict, holdout, None if sd is None else holdout_margin(sd, holdout.n))
        verdict.extra.update(holdout_evaluation_id=holdout_id, holdout_composite=holdout_suite.composite)
        return verdict

    def incumbent_scores(self, number: int, incumbent: Incumbent, tasks: list[Task], split: str, repeat: int,
                         recorder: CallRecorder) -> dict:
        """The incumbent's per-task scores under one seed set, measured on this machine (stored, or evaluated
        now: another worker's keep, or tasks that failed)."""
        variant_hash = records.variant_fields(incumbent.instructions, incumbent.knobs)["variant_hash"]
        return dict(self.evaluator.scores(number, incumbent.instructions, incumbent.knobs, variant_hash, tasks,
                                          split, repeat, recorder))
