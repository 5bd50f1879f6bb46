"""Evaluating variants for the Study: the harness per variant, per-task reports to the pruner, the holdout
check, the proposer, call recording, and the one line that says which backend keeps failing."""

from __future__ import annotations

import random
from typing import Any, Callable

import optuna

from ..errors import answered, modes_line
from ..evaluation.paired import Scores, seeds_changed_nothing, task_sd
from ..evaluation.scoring import composite
from ..lm.calls import CallRecord, CallRecorder, made
from ..lm.engine import make_lm
from ..lm.preflight import server_url
from ..lm.replies import ReplyCache
from ..pipeline.harness import Harness, TaskResult, build_engine
from ..pipeline.repeats import evaluate_repeat, repeat_portfolio
from ..pipeline.runner import SuiteResult, evaluate_tasks
from ..store import Store
from ..text import one_line
from ..workspace.config import ROLES
from ..workspace.suite import Task
from ..workspace.workspace import Workspace
from .proposer import Proposer
from .pruning import FAILED_TASKS_ATTR, ScreenReference
from .results import Incumbent, StopReason, objective


class Evaluator:
    """Evaluates instruction variants for a Study: one harness per variant, each model call recorded (in the
    store, and in the run's list of calls), each task's score reported to the Optuna trial's pruner."""

    def __init__(self, workspace: Workspace, portfolio: str, store: Store, study: str, *, backend_factory: Any,
                 retries: int, backoff_s: float, emit: Callable[[str, dict[str, Any]], None],
                 session_calls: list[CallRecord], proposer_seeds: random.Random | None = None,
                 proposer: Proposer | None = None, prunes: bool = True, replies: ReplyCache | None = None):
        self.ws, self.settings = workspace, workspace.settings
        self.portfolio_name, self.portfolio = portfolio, workspace.portfolio(portfolio)
        self.store, self.name = store, study
        self.backend_factory, self.retries, self.backoff_s = backend_factory, retries, backoff_s
        self.emit = emit
        self.session_calls = session_calls  # every call of this run, the Study's summary reads them
        self.energy_weight = self.settings.scoring.energy_weight
        self.holdout_tasks = workspace.suite.split("holdout")
        # A screen task's step for the pruner: its index among the search tasks, whatever order the screen runs.
        self.steps = {task.id: index for index, task in enumerate(workspace.suite.split("search"))}
        self._trial_recorder: CallRecorder | None = None
        self._proposer = proposer  # injected (a benchmark's scripted edits), else built on first use
        # A proposer role without a seed draws each call's from here: the run's --seed makes them repeatable.
        self.proposer_seeds = proposer_seeds
        self.prunes = prunes  # a pruner may stop a screen (else a staged harness runs it whole, in one block)
        # The pipeline's replies the run reuses for identical requests (lm/replies.py); the proposer's never are.
        self.replies = replies

    def trial_calls(self) -> tuple[CallRecord, ...]:
        return tuple(self._trial_recorder.calls) if self._trial_recorder else ()

    def down(self, what: str, trials: list[tuple[CallRecord, ...]]) -> tuple[StopReason, str]:
        """The stop reason and its one line when trials keep failing: which backend, model and failure modes."""
        failed = [c for calls in trials for c in calls if not c.ok]
        if not failed:
            return StopReason.FAILED_TRIALS, f"{what} without a failed model call (the proposer gave no usable variant)"
        model_answered = all(answered(c.failure_mode) for c in failed)
        groups: dict[tuple[str, str], list[CallRecord]] = {}
        for call in failed:
            groups.setdefault((call.backend, call.model), []).append(call)
        parts = []
        for (backend, model), calls in groups.items():
            roles = sorted({c.role for c in calls})
            url = next((server_url(self.portfolio.role(r), self.settings.backends) for r in roles
                        if r in ROLES), None)
            parts.append(f"{backend} {model}" + (f" at {url}" if url else "") + f" ({', '.join(roles)}): "
                         + modes_line(c.failure_mode for c in calls))
        last = one_line(failed[-1].error or "", 120)
        line = f"{what}: " + "; ".join(parts) + (f" (last error: {last})" if last else "")
        if model_answered:  # the model replied every time, with nothing usable: no outage to wait out
            return StopReason.FAILED_TRIALS, line + " — the model answered, but no reply could be used"
        return StopReason.BACKEND_DOWN, line + " — run the same command to resume once it is back"

    def evaluate(self, trial: optuna.Trial, instructions: dict[str, str], knobs: dict[str, Any],
                  tasks: list[Task], kind: str, recorder: CallRecorder, variant_hash: str | None = None) -> SuiteResult:
        """The screen: the search tasks (in any order) under the configured seeds (repeat 0), each task told to
        the pruner at its step, its index in the suite's search tasks (so steps pair across trials)."""
        harness = self.harness(instructions, knobs)
        scoring = self.settings.scoring
        failed: list[int] = []

        def on_task(index: int, result: TaskResult) -> bool:
            value = result.composite(scoring)
            # The pruner compares what the keep rule compares: the objective (the composite at weight 0).
            value = objective(value, result.joules, 1, self.energy_weight)
            step = self.steps.get(result.task_id, index)
            if result.failed:  # a backend fault is no evidence: the paired pruner leaves the task out
                failed.append(step)
                trial.set_user_attr(FAILED_TASKS_ATTR, failed)
            trial.report(value, step=step)
            self.emit("task_done", {"trial": trial.number, "index": index, "total": len(tasks),
                                        "task": result.task_id, "value": value})
            return kind == "baseline" or not trial.should_prune()

        return evaluate_tasks(self.ws, harness, self.store, tasks, kind=kind, portfolio=self.portfolio_name,
                              instructions=instructions, split="search", study=self.name, trial=trial.number,
                              on_task=on_task, recorder=recorder, portfolio_config=self.seeded,
                              variant_hash=variant_hash, stoppable=kind != "baseline" and self.prunes)

    def screen_reference(self, number: int, incumbent: Incumbent, tasks: list[Task], recorder: CallRecorder,
                         noise: Scores) -> ScreenReference:
        """What the paired pruner compares a screen with: the incumbent's score per task (by screen step) under
        the screen's seeds, which the race needs next anyway (so evaluated now if the store lacks it), and its
        per-task sd over its stored seed sets (`noise`: stored_noise)."""
        variant_hash = incumbent.variant_hash
        screen = self.scores(number, incumbent.instructions, incumbent.knobs, variant_hash, tasks, "search", 0,
                             recorder)
        return ScreenReference({self.steps.get(t.id, i): screen[(t.id, 0)] for i, t in enumerate(tasks)},
                               task_sd({**noise, **screen}))

    def stored_noise(self, incumbent: Incumbent) -> Scores:
        """The incumbent's stored search scores under the noise measurement's seed sets (0 … noise_repeats − 1;
        none evaluated now): what the screen's task order and the paired pruner read its seed noise from."""
        variant_hash = incumbent.variant_hash
        stored: Scores = dict(self.stored_scores(variant_hash, "search", 0))
        for repeat in range(1, self.settings.search.noise_repeats):
            found = self.stored_scores(variant_hash, "search", repeat)
            if not found:  # seed sets are measured in order: none past a missing one (2 where the seeds copy)
                break
            stored.update(found)
        return stored

    def incumbent_noise(self, number: int, incumbent: Incumbent, tasks: list[Task], recorder: CallRecorder) -> Scores:
        """stored_noise, after evaluating now (kind "incumbent", under trial `number`) the seed sets measured
        upfront ([search] noise_repeats_upfront) that this store lacks: a worker that joined a shared study after
        its baseline, or whose incumbent another worker kept, measures that incumbent's noise on its own machine
        as the baseline did, before the task order and the paired pruner read it. Nothing is evaluated where the
        store has them (the baseline's, a kept variant's confirmations), nor past two sets whose scores copy."""
        noise = dict(self.stored_noise(incumbent))
        search = self.settings.search
        variant_hash = incumbent.variant_hash
        for repeat in range(len({r for _, r in noise}), min(search.noise_repeats_upfront, search.noise_repeats)):
            if repeat >= 2 and seeds_changed_nothing(list(noise), noise):
                break  # the seeds changed no score: more sets would copy (the baseline stops there too)
            noise.update(self.scores(number, incumbent.instructions, incumbent.knobs, variant_hash, tasks, "search",
                                     repeat, recorder))
        return noise

    def holdout(self, number: int, instructions: dict[str, str], knobs: dict[str, Any],
                 recorder: CallRecorder, variant_hash: str | None = None) -> tuple[SuiteResult | None, int | None]:
        """A variant's holdout evaluation (repeat 0) and its id; (None, None) without holdout tasks."""
        if not self.holdout_tasks:
            return None, None
        self.emit("holdout", {"trial": number})
        suite = evaluate_tasks(self.ws, self.harness(instructions, knobs), self.store, self.holdout_tasks,
                               kind="holdout", portfolio=self.portfolio_name, instructions=instructions,
                               split="holdout", study=self.name, trial=number, recorder=recorder,
                               portfolio_config=self.seeded, variant_hash=variant_hash)
        return suite, suite.evaluation_id

    def repeat(self, number: int, instructions: dict[str, str], tasks: list[Task], repeat: int,
               recorder: CallRecorder, *, knobs: dict[str, Any] | None = None, variant_hash: str | None = None,
               kind: str = "noise", split: str = "search",
               on_task: Callable[[int, TaskResult], bool] | None = None) -> SuiteResult:
        """The tasks again with each pipeline role's seed + repeat (pipeline/repeats.py): one draw of the noise.
        Recorded as an evaluation of the trial (kind: noise, confirm or incumbent) that carries its seeds; the
        pruner is not told. on_task returning False stops it after that task (the race's futility stop)."""
        self.emit(kind, {"trial": number, "repeat": repeat, "split": split})
        suite, _ = evaluate_repeat(self.ws, self.store, self.portfolio_name, self.portfolio, tasks, repeat,
                                   instructions=instructions, kind=kind, split=split, study=self.name,
                                   trial=number, recorder=recorder, backend_factory=self.backend_factory,
                                   retries=self.retries, backoff_s=self.backoff_s, knobs=knobs,
                                   variant_hash=variant_hash, on_task=on_task, stoppable=on_task is not None,
                                   replies=self.replies)
        return suite

    def scores(self, number: int, instructions: dict[str, str], knobs: dict[str, Any], variant_hash: str,
               tasks: list[Task], split: str, repeat: int, recorder: CallRecorder) -> Scores:
        """A variant's per-task scores under one seed set, from the store where it was evaluated before (by
        any trial of this study on this machine); the tasks it lacks, or that failed there, are evaluated
        now (kind "incumbent", under trial `number`). A task that fails again stays None. A whole seed set of
        the baseline's evaluated so joins the study's noise (store/queries.noise_composites)."""
        found = self.stored_scores(variant_hash, split, repeat)
        missing = [t for t in tasks if found.get((t.id, repeat)) is None]
        if missing:
            result = self.repeat(number, instructions, missing, repeat, recorder, knobs=knobs,
                                 variant_hash=variant_hash, kind="incumbent", split=split)
            found.update(self.result_scores(result, repeat))
        return {(t.id, repeat): found.get((t.id, repeat)) for t in tasks}

    def stored_scores(self, variant_hash: str, split: str, repeat: int) -> dict[tuple[str, int], float | None]:
        """Per task, its first successful score in the store (None where every attempt failed)."""
        found: dict[tuple[str, int], float | None] = {}
        for row in self.store.variant_task_results(self.name, variant_hash, split, repeat):
            key = (row["task_id"], repeat)
            if found.get(key) is None:
                found[key] = None if row["failed"] else self.task_objective(
                    row["score_r1"], row["criteria_passed"], row["criteria_total"], row["joules"])
        return found

    def result_scores(self, suite: SuiteResult, repeat: int) -> dict[tuple[str, int], float | None]:
        """An evaluation's per-task scores as the keep rule pairs them (None: the task failed)."""
        return dict(self.task_score(t, repeat) for t in suite.tasks)

    def task_score(self, task: TaskResult, repeat: int) -> tuple[tuple[str, int], float | None]:
        """One task's (task id, repeat) key and score as the keep rule pairs it (None: the task failed)."""
        return (task.task_id, repeat), None if task.failed else self.task_objective(
            task.score_r1, task.criteria_passed, len(task.checks), task.joules)

    def task_objective(self, judge: float, passed: int, total: int, joules: float) -> float:
        """One task's objective: its composite, less the energy term when [scoring] energy_weight > 0."""
        value = composite(judge, passed / total if total else 0.0, self.settings.scoring)
        return objective(value, joules, 1, self.energy_weight)

    @property
    def seeded(self):
        """The portfolio of repeat 0: the configured seeds, and seed 0 for a pipeline role without one, so
        that the screen and the incumbent's scores it is paired with were drawn under the same seeds."""
        return repeat_portfolio(self.portfolio, 0)

    def harness(self, instructions: dict[str, str], knobs: dict[str, Any]) -> Harness:
        return Harness(self.ws, self.seeded, instructions=instructions, max_rounds=knobs.get("revision_rounds"),
                       producer_temperature=knobs.get("producer_temperature"),
                       backend_factory=self.backend_factory, retries=self.retries, backoff_s=self.backoff_s,
                       replies=self.replies)

    def proposer(self) -> Proposer:
        """The proposer of variants, on the portfolio's proposer model (built once)."""
        if self._proposer is None:
            role = self.portfolio.proposer
            # n_ctx bounds the prompt for every backend: a server's own window is unknown, and rarely smaller.
            self._proposer = Proposer(make_lm(build_engine(
                self.ws, "proposer", role, self.backend_factory, self.retries, self.backoff_s,
                seeds=self.proposer_seeds)), context_tokens=role.n_ctx, reply_tokens=role.max_tokens,
                examples=self.settings.search.proposer_examples)
        return self._proposer

    def recorder(self, number: int) -> CallRecorder:
        def sink(call) -> None:
            self.session_calls.append(call)
            if call.task_id is None:  # proposer calls belong to the trial, not to an evaluation
                self.store.record_call(None, call, study=self.name, trial=number)
        self._trial_recorder = CallRecorder(sink=sink)
        return self._trial_recorder

    @staticmethod
    def joules(recorder: CallRecorder) -> float:
        return sum(c.joules for c in made(recorder.calls))  # spent: a reused reply cost nothing now

    def suite_objective(self, suite: SuiteResult) -> float:
        """composite − energy_weight × kJ per task of this search evaluation (the composite at weight 0)."""
        value = objective(suite.composite, suite.joules, len(suite.tasks), self.energy_weight)
        assert value is not None
        return value
