"""The Study-based methods of bench_search: the loop as shipped, greedy, random and the unpruned loop (an
ablation), each a Study on its own copy of the workspace, its observer recording every finished trial (status,
calls, recipe, where its race ended, why it failed) until the budget of model calls ends it."""

from __future__ import annotations

import itertools
import time
from typing import Any

import optuna

from ..lm.calls import CallRecord, spent_and_reused
from ..search import strategies
from ..search.results import StopReason
from ..search.study import Study
from ..store.statuses import INCUMBENT_STATUSES
from ..text import one_line
from ..workspace.workspace import load_workspace
from .budget import Budget, BudgetExhausted, budgeted_factory
from .methods import UNPRUNED, BenchContext, MethodRun, normalise
from .pruner_shadow import ShadowPruner
from .workspaces import copy_workspace

# Settings merged into the method's workspace copy, and whether Optuna's sampler is replaced by a random one.
# Greedy and random draw every recipe uniformly, their first one too (no shape_first, no follow_near_miss: the loop's).
STUDY_METHODS: dict[str, tuple[dict[str, Any], bool]] = {
    "autoresearch": ({}, False),
    "greedy": ({"search": {"parents": 1, "pruner": "none", "shape_first": False,
                           "follow_near_miss": False}}, True),
    "random": ({"search": {"pruner": "none", "shape_first": False, "follow_near_miss": False}}, True),
    # The loop's every other setting kept, so its trials match the loop's own until the pruner first stops one.
    # Its Study is handed the loop's pruner in a shadow (pruner_shadow.py): asked as in the loop, never obeyed.
    "unpruned": ({"search": {"pruner": "none"}}, False),
}
IDLE_TRIALS = 25  # a Study whose trials make no model call this many times in a row is stopped (no progress)
WHY_CHARS = 200  # of a failed trial's description kept in the seed file's trial_details


class _Progress:
    """The Study's observer: best composite after each finished trial, keeps, and trials without a call."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.best: float | None = None
        self.trajectory: list[tuple[int, float]] = []
        self.keeps = 0
        self.idle = 0
        self._used_at_start = 0
        self.study: Study | None = None
        self.details: list[dict[str, Any]] = []  # each finished trial: status, calls, recipe, delta, stage, why

    @property
    def calls_in_trial(self) -> int:
        """Model calls the trial under way has made so far."""
        return self.budget.used - self._used_at_start

    @property
    def trials(self) -> list[tuple[str, int]]:
        """(status, model calls) of each finished trial: the seed file's older, shorter record of them."""
        return [(d["status"], d["calls"]) for d in self.details]

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "trial_started":
            self._used_at_start = self.budget.used
        elif kind == "trial_finished":
            outcome = data["outcome"]
            calls = self.budget.used - self._used_at_start
            self.details.append({"number": outcome.number, "status": str(outcome.status), "calls": calls,
                                 "operator": outcome.operator, "file": outcome.file, "delta": outcome.delta,
                                 "composite": outcome.composite,
                                 # where the keep rule's race ended (screen, confirm, bound, holdout, kept): a lost
                                 # race told from a failed screen without reading it from the calls
                                 "stage": outcome.evidence.stage if outcome.evidence else None,
                                 # a failed trial's cause (the proposer's, or the tasks'), which nothing else keeps
                                 "why": outcome.description[:WHY_CHARS] if outcome.status == "failed" else None})
            if outcome.status in INCUMBENT_STATUSES and outcome.composite is not None:
                self.keeps += outcome.status == "keep"
                self.best = outcome.composite
                self.trajectory.append((self.budget.used, outcome.composite))
            self.idle = self.idle + 1 if self.budget.used == self._used_at_start else 0
            if self.idle >= IDLE_TRIALS and self.study is not None:
                self.study.request_stop()


def run_study_method(ctx: BenchContext, method: str, seed: int, limit: int) -> MethodRun:
    update, uniform = STUDY_METHODS[method]
    root = copy_workspace(ctx.root, ctx.scratch / f"{method}-seed{seed}", update=update)
    budget = Budget(limit)
    factory = budgeted_factory(budget, ctx.inner_factory)
    progress = _Progress(budget)
    # The unpruned ablation records where the loop's own pruner (the workspace's, before the update) would stop.
    shadow = ShadowPruner(strategies.default_pruner(load_workspace(ctx.root).settings),
                          lambda: progress.calls_in_trial) if method == UNPRUNED else None
    calls: list[CallRecord] = []
    reused = 0
    notes: list[str] = []
    stop = "budget"
    start = time.perf_counter()
    try:
        for session in itertools.count():
            # A resumed study gets another seed, or a seeded sampler would replay the first session's recipes.
            session_seed = seed + 1000 * session
            study = Study(load_workspace(root), portfolio=ctx.portfolio, backend_factory=factory,
                          seed=session_seed, observer=progress, retries=ctx.retries, backoff_s=ctx.backoff_s,
                          sampler=optuna.samplers.RandomSampler(seed=session_seed) if uniform else None,
                          pruner=shadow)
            progress.study, progress.idle, before = study, 0, budget.used
            try:
                summary = study.optimize()  # no stop condition: the budget ends it
            finally:
                spent, reused_now = spent_and_reused(study.session_calls)
                calls.extend(spent)
                reused += reused_now
            if budget.used == before or summary.stop_reason == StopReason.INTERRUPTED:
                stop = f"stopped: {summary.stop_reason}"
                break
            # It stopped on its own (e.g. three failed trials in a row) with budget left: resume it,
            # as running `autoresearch run` again would.
            notes.append(f"the study stopped on its own ({summary.stop_reason}) after {budget.used} calls; resumed")
    except BudgetExhausted:
        stop = "budget"
    except Exception as exc:  # a method that crashes is reported as such, with what it found until then
        stop = f"error: {type(exc).__name__}: {one_line(str(exc), 200)}"
    wall = time.perf_counter() - start
    best_instructions = {k: normalise(v) for k, v in load_workspace(root).instructions.items()}
    return MethodRun(method, seed, limit, calls, wall, budget.model_s, best_instructions, progress.best,
                     progress.trajectory, progress.keeps, stop, used=budget.used, notes=notes, trials=progress.trials,
                     trial_details=progress.details, reused=reused,
                     shadow=shadow.as_json() if shadow is not None else None)
