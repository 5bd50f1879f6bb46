"""The DSPy optimizers of bench_search: MIPROv2 and GEPA on the harness's own program (TunablePipeline), scored
by the same metric as the loop (the composite of one task), each on one budget of model calls."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import dspy

from ..evaluation.scoring import (
    TaskScore,
    composite,
    criteria_rate,
    failed_task_score,
    score_suite,
)
from ..lm.adapter import GrammarAdapter
from ..lm.calls import CallRecorder, recording, spent_and_reused
from ..lm.engine import backend_error_in, make_lm
from ..lm.replies import replies_for
from ..pipeline.harness import Harness, TaskResult, build_engine
from ..pipeline.program import REVISE_SUFFIX, Pipeline
from ..pipeline.runner import task_score
from ..search.proposer import proposer_seeds
from ..text import one_line
from ..workspace.config import ScoringConfig
from ..workspace.suite import Task
from ..workspace.workspace import load_workspace
from .budget import Budget, BudgetExhausted, budgeted_factory
from .methods import BenchContext, MethodRun, instructions_key, normalise
from .workspaces import copy_workspace

FILES = (("planner.md", "plan"), ("producer.md", "produce"))  # instruction file → the Pipeline predictor it sets


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
