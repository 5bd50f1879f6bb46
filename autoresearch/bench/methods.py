"""The five search methods, each run on its own copy of the workspace against one budget of model calls.

- autoresearch: `Study.optimize` as the workspace configures it (by default the answer's shape first, TPE sampler,
  the paired pruner, the paired keep rule).
- mipro: `dspy.MIPROv2` on the harness's own `dspy.Module`, instruction-only (0 demos).
- gepa: `dspy.GEPA` on the same module, the proposer role's model as its reflection LM.
- greedy: the Study with one parent (always the incumbent), recipes drawn uniformly (the first too), no pruner.
- random: the Study with every recipe drawn uniformly (the first and the parent too), no pruner.

Each returns a MethodRun: its model calls (as the store keeps them), the best instructions it would hand
back, their search composite as measured within the budget, and the best composite after each call.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import dspy
import optuna

from ..evaluation.scoring import (
    TaskScore,
    composite,
    criteria_rate,
    failed_task_score,
    score_suite,
)
from ..lm.adapter import GrammarAdapter
from ..lm.calls import (
    CallRecord,
    CallRecorder,
    CallTotals,
    recording,
    spent_and_reused,
)
from ..lm.engine import backend_error_in, make_lm
from ..lm.replies import replies_for
from ..pipeline.harness import Harness, TaskResult, build_engine
from ..pipeline.program import REVISE_SUFFIX, Pipeline
from ..pipeline.runner import task_score
from ..search.proposer import proposer_seeds
from ..search.results import StopReason
from ..search.study import Study
from ..store.statuses import INCUMBENT_STATUSES
from ..text import one_line
from ..workspace.config import ScoringConfig
from ..workspace.suite import Task
from ..workspace.workspace import load_workspace
from .budget import Budget, BudgetExhausted, budgeted_factory
from .workspaces import copy_workspace

LOOP = "autoresearch"  # the method under test: every other is its peer
METHODS = (LOOP, "mipro", "gepa", "greedy", "random")
LABELS = {
    "autoresearch": "autoresearch loop (as shipped)",
    "mipro": "dspy.MIPROv2 (0 demos)",
    "gepa": "dspy.GEPA",
    "greedy": "greedy (incumbent only)",
    "random": "random recipes, no pruner",
}
# Settings merged into the method's workspace copy, and whether Optuna's sampler is replaced by a random one.
# Greedy and random draw every recipe uniformly, their first one too (no shape_first, no follow_near_miss: the loop's).
STUDY_METHODS: dict[str, tuple[dict[str, Any], bool]] = {
    "autoresearch": ({}, False),
    "greedy": ({"search": {"parents": 1, "pruner": "none", "shape_first": False,
                           "follow_near_miss": False}}, True),
    "random": ({"search": {"pruner": "none", "shape_first": False, "follow_near_miss": False}}, True),
}
FILES = (("planner.md", "plan"), ("producer.md", "produce"))  # instruction file → the Pipeline predictor it sets
IDLE_TRIALS = 25  # a Study whose trials make no model call this many times in a row is stopped (no progress)
WHY_CHARS = 200  # of a failed trial's description kept in the seed file's trial_details


@dataclass
class BenchContext:
    """What every method shares: the prepared workspace, the backends, a scratch folder."""

    root: Path  # the benchmark's workspace (already prepared: n_ctx and the like applied)
    scratch: Path  # each method and seed gets a copy of root under here
    portfolio: str
    inner_factory: Callable | None = None  # None: the configured backends (create_backend)
    retries: int = 2
    backoff_s: float = 1.0
    mipro_candidates: int = 3


@dataclass
class MethodRun(CallTotals):
    method: str
    seed: int
    limit: int
    calls: list[CallRecord]  # made (the replies reused for identical requests are counted in `reused`)
    wall_s: float
    model_s: float  # seconds inside backend calls
    best_instructions: dict[str, str]
    best_search: float | None  # the best's search composite as measured within the budget (None: never completed)
    trajectory: list[tuple[int, float]]  # (model calls so far, best search composite so far)
    keeps: int  # how often the method replaced its best
    stop: str  # budget | finished | stopped: … | error: …
    used: int = 0  # calls counted by the budget (equals len(calls) unless a call escaped every recorder)
    holdout: float | None = None  # filled in outside the budget
    search_outside: bool = False  # best_search was measured outside the budget (the method never completed one)
    notes: list[str] = field(default_factory=list)
    trials: list[tuple[str, int]] = field(default_factory=list)  # a Study's trials: (status, model calls it made)
    trial_details: list[dict[str, Any]] = field(default_factory=list)  # the same: recipe, delta, stage, why
    holdout_repeats: list[float | None] = field(default_factory=list)  # the pick's holdout composite per repeat
    reused: int = 0  # replies reused for requests identical to earlier ones, instead of calls (lm/replies.py)
    holdout_calls: int = 0  # made evaluating the pick on the holdout tasks, outside the budget
    holdout_s: float = 0.0  # the wall time of that evaluation

    def joules_after(self, calls: int) -> float:
        """Joules of the method's first `calls` calls, in the order they were recorded."""
        return sum(c.joules for c in self.calls[:calls])

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method, "seed": self.seed, "limit": self.limit, "calls": len(self.calls),
            "budget_used": self.used, "reused": self.reused, "tokens": self.tokens, "joules": self.joules,
            "energy_source": self.energy_source, "wall_s": self.wall_s, "model_s": self.model_s,
            "best_search": self.best_search, "search_outside": self.search_outside, "holdout": self.holdout,
            "holdout_repeats": self.holdout_repeats, "holdout_calls": self.holdout_calls,
            "holdout_s": self.holdout_s, "keeps": self.keeps, "stop": self.stop,
            # (model calls so far, best search composite so far, joules so far)
            "trajectory": [[n, value, self.joules_after(n)] for n, value in self.trajectory],
            "trials": [list(t) for t in self.trials], "trial_details": self.trial_details,
            "best_instructions": self.best_instructions, "notes": self.notes,
        }


def run_method(ctx: BenchContext, method: str, seed: int, limit: int) -> MethodRun:
    if method in STUDY_METHODS:
        return run_study_method(ctx, method, seed, limit)
    if method in ("mipro", "gepa"):
        return run_dspy_method(ctx, method, seed, limit)
    raise ValueError(f"unknown method {method!r}; one of {', '.join(METHODS)}")


def normalise(text: str) -> str:
    """Instruction text as a file holds it; the adapter strips it anyway, so this changes no prompt."""
    return str(text).strip() + "\n"


def instructions_key(instructions: dict[str, str]) -> str:
    return json.dumps({k: normalise(v) for k, v in sorted(instructions.items())})


# --- the Study-based methods -----------------------------------------------------------------------


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
                          sampler=optuna.samplers.RandomSampler(seed=session_seed) if uniform else None)
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
                     trial_details=progress.details, reused=reused)


# --- the DSPy optimizers ---------------------------------------------------------------------------


class TunablePipeline(Pipeline):
    """Harness's Pipeline as a DSPy optimizer gets it: the same predictors, LMs and forward.

    Two differences, both so that what an optimizer tunes maps one-to-one onto instruction files:
    only the predictors of the optimizable files are parameters (the revision step's instructions are
    the producer's plus a fixed suffix, as Harness builds them, so revise follows produce instead of
    being tuned apart), and each prediction carries the instructions that produced it, so the
    benchmark can score every candidate an optimizer evaluates. A failed model call scores its task as
    failed (as Harness.run_task does) instead of raising.
    """

    def __init__(self, base: Pipeline, optimizable: Sequence[str]):
        super().__init__("-", "-", base.judge, max_rounds=base.max_rounds, pass_threshold=base.pass_threshold)
        self.plan, self.produce, self.revise = base.plan, base.produce, base.revise
        self.tuned = tuple(attr for file, attr in FILES if file in optimizable)

    def named_parameters(self):
        return [(name, p) for name, p in super().named_parameters() if name.split(".")[0] in self.tuned]

    def reset_copy(self) -> "TunablePipeline":
        """DSPy's reset also drops each predictor's LM (then the context's LM would play every role):
        here a predictor's LM is its role's model, part of the program, so the copy keeps it."""
        copied = super().reset_copy()
        lms = {name: predictor.lm for name, predictor in self.named_predictors()}
        for name, predictor in copied.named_predictors():
            predictor.lm = lms[name]
        return copied

    def instructions(self) -> dict[str, str]:
        return {file: normalise(getattr(self, attr).signature.instructions) for file, attr in FILES}

    def forward(self, task: str) -> dspy.Prediction:
        instructions = self.instructions()
        try:
            out = super().forward(task)
        except Exception as exc:
            error = backend_error_in(exc)
            if error is None:
                raise
            return dspy.Prediction(answer="", failed=error.failure_mode or "error", instructions=instructions)
        out["instructions"] = instructions
        return out

    def revise_answer(self, task: str, plan: str, answer: str, critique: str) -> str:
        wanted = self.produce.signature.instructions.rstrip() + REVISE_SUFFIX
        if self.revise.signature.instructions != wanted:
            self.revise.signature = self.revise.signature.with_instructions(wanted)
        return super().revise_answer(task, plan, answer, critique)


@dataclass
class Scored:
    score: TaskScore
    value: float  # the task's own composite, 0–10 (what Study reports to the pruner)
    feedback: str


class Tracker:
    """Every (instructions, task) score an optimizer's runs produced; a candidate scored on every search
    task has a suite composite, exactly as evaluate_tasks computes it. Tracks the best such candidate."""

    def __init__(self, tasks: Sequence[Task], scoring: ScoringConfig, budget: Budget):
        self.task_ids = [t.id for t in tasks]
        self.scoring = scoring
        self.budget = budget
        self.scores: dict[str, dict[str, TaskScore]] = {}
        self.instructions: dict[str, dict[str, str]] = {}
        self.best_key: str | None = None
        self.best: float | None = None
        self.trajectory: list[tuple[int, float]] = []
        self.improvements = 0

    def record(self, instructions: dict[str, str], score: TaskScore) -> None:
        key = instructions_key(instructions)
        self.instructions[key] = {k: normalise(v) for k, v in instructions.items()}
        self.scores.setdefault(key, {})[score.task_id] = score
        composite = self.composite(key)
        if composite is None:
            return
        if self.best is None or composite > self.best + 1e-9 or (key == self.best_key and composite != self.best):
            if self.best is not None and key != self.best_key:
                self.improvements += 1
            self.best, self.best_key = composite, key
            self.trajectory.append((self.budget.used, composite))

    def composite(self, key: str) -> float | None:
        tasks = self.scores.get(key, {})
        if any(t not in tasks for t in self.task_ids):
            return None
        return score_suite([tasks[t] for t in self.task_ids], self.scoring).composite


def score_prediction(harness: Harness, task: Task, pred: dspy.Prediction, scoring: ScoringConfig) -> Scored:
    """A prediction of the pipeline scored as the harness scores a task: judge r1, criteria on the final
    answer, the judge guard; a failed one as a failed task."""
    if pred.get("failed"):
        reason = f"model call failed: {pred.get('failed')}"
        return Scored(failed_task_score(task, reason), 0.0, reason)
    result: TaskResult = harness._result(task, pred.plan, pred.answer_r1, pred.answer, pred.first, pred.final,
                                         pred.revisions, 0.0, (), instructions=pred.get("instructions"))
    score = task_score(result)
    value = composite(result.score_r1, criteria_rate([result.checks]), scoring)
    failing = [f"- {c.criterion}: {c.reason}" for c in result.checks if not c.passed]
    feedback = (f"Judge score {result.score_r1:.1f}/10; composite {value:.2f}/10. Judge critique: "
                f"{result.critique or '(none)'}\n" + ("Failed checks:\n" + "\n".join(failing) if failing
                                                       else "Every check passed."))
    return Scored(score, value, feedback)


def make_metric(harness: Harness, tasks: Sequence[Task], tracker: Tracker, scoring: ScoringConfig, *,
                feedback: bool) -> Callable:
    """The per-task metric: the task's composite normalised to 0–1; with feedback, GEPA's score + text."""
    by_id = {t.id: t for t in tasks}

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        scored = score_prediction(harness, by_id[gold.task_id], pred, scoring)
        if pred.get("instructions"):
            tracker.record(pred.instructions, scored.score)
        value = scored.value / 10.0
        return dspy.Prediction(score=value, feedback=scored.feedback) if feedback else value

    return metric


def run_dspy_method(ctx: BenchContext, method: str, seed: int, limit: int) -> MethodRun:
    root = copy_workspace(ctx.root, ctx.scratch / f"{method}-seed{seed}")
    ws = load_workspace(root)
    portfolio = ws.portfolio(ctx.portfolio)
    budget = Budget(limit)
    factory = budgeted_factory(budget, ctx.inner_factory)
    # The same reuse of identical requests' replies as a Study's (lm/replies.py): one harness for every method.
    harness = Harness(ws, portfolio, backend_factory=factory, retries=ctx.retries, backoff_s=ctx.backoff_s,
                      replies=replies_for(ws.settings.backends))
    program = TunablePipeline(harness.pipeline, ws.settings.workspace.optimizable)
    # The optimizer's proposal calls draw their seeds from the bench seed, as the loop's proposer does: a seed's run
    # repeats on the same machine and build, so two runs of it differ only by what changed between them.
    proposer_lm = make_lm(build_engine(ws, "proposer", portfolio.proposer, factory, ctx.retries, ctx.backoff_s,
                                       seeds=proposer_seeds(seed)))
    tasks = ws.suite.split("search")
    examples = [dspy.Example(task=t.prompt, task_id=t.id).with_inputs("task") for t in tasks]
    tracker = Tracker(tasks, ws.settings.scoring, budget)
    metric = make_metric(harness, tasks, tracker, ws.settings.scoring, feedback=method == "gepa")
    recorder = CallRecorder()
    compiled = None
    notes: list[str] = []
    start = time.perf_counter()
    with recording(recorder), dspy.context(adapter=harness.adapter):  # the harness's own prompt format
        try:
            if method == "mipro":
                compiled = _mipro(program, examples, metric, proposer_lm, harness.lms["producer"], seed,
                                  ctx.mipro_candidates, notes)
            else:
                compiled = _gepa(program, examples, metric, proposer_lm, seed, limit)
            stop = "finished"
        except BudgetExhausted:
            stop = "budget"
        except Exception as exc:
            stop = f"error: {type(exc).__name__}: {one_line(str(exc), 200)}"
    wall = time.perf_counter() - start
    best_key = tracker.best_key
    if compiled is not None:  # finished: the program the optimizer returns is its pick
        key = instructions_key(compiled.instructions())
        if tracker.composite(key) is not None:
            best_key = key
        else:
            notes.append("the returned program was never scored on every search task; reporting the best one that was")
    if best_key is not None:
        best_instructions, best_search = tracker.instructions[best_key], tracker.composite(best_key)
    else:
        best_instructions, best_search = program.instructions(), None
    spent, reused = spent_and_reused(recorder.calls)
    return MethodRun(method, seed, limit, spent, wall, budget.model_s, best_instructions, best_search,
                     tracker.trajectory, tracker.improvements, stop, used=budget.used, notes=notes,
                     reused=reused)


def _mipro(program: TunablePipeline, examples: list, metric: Callable, proposer_lm: dspy.LM, task_lm: dspy.LM,
           seed: int, candidates: int, notes: list[str]) -> TunablePipeline:
    """MIPROv2 instruction-only: no demos in the prompts (demos are still bootstrapped, as MIPROv2 does,
    to show the proposer examples), `candidates` instructions per predictor, and MIPROv2's own
    recommended number of trials for that many candidates. Every trial is a full evaluation on the
    search tasks (minibatch=False: the suite is smaller than a minibatch)."""
    optimizer = dspy.MIPROv2(metric=metric, prompt_model=proposer_lm, task_model=task_lm,
                             max_bootstrapped_demos=0, max_labeled_demos=0, auto=None,
                             num_candidates=candidates, num_threads=1, seed=seed, verbose=False)
    trials = optimizer._set_num_trials_from_num_candidates(program, True, candidates)
    notes.append(f"MIPROv2: {candidates} instruction candidates per predictor, {trials} trials")
    return optimizer.compile(program, trainset=examples, valset=examples, num_trials=trials, minibatch=False)


def _gepa(program: TunablePipeline, examples: list, metric: Callable, proposer_lm: dspy.LM, seed: int,
          limit: int) -> TunablePipeline:
    """GEPA with its defaults (reflection minibatch 3, Pareto selection, merge), the search tasks as both
    its train and validation sets. Its own budget (metric calls) is set above ours: each metric call
    costs at least three model calls, so the budget of model calls always binds first. The reflection
    calls go through the same GrammarAdapter as every other role (GEPA's default JSONAdapter asks for
    field markers a small model does not keep); GEPA's reflection prompt itself is unchanged."""
    from dspy.teleprompt.gepa import InstructionProposer

    optimizer = dspy.GEPA(metric=metric, max_metric_calls=max(limit, 1), reflection_lm=proposer_lm,
                          instruction_proposer=InstructionProposer(adapter=GrammarAdapter()),
                          num_threads=1, seed=seed)
    return optimizer.compile(program, trainset=examples, valset=examples)
