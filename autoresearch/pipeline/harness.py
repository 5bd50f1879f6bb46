"""Runs the program (pipeline/program.py) on tasks: each role's LM built from a portfolio, tasks one by one or stage
by stage over a suite, and what each task produced (TaskResult): its answers, scores, checks and calls."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import dspy

from ..energy import select_meter
from ..errors import BackendError
from ..evaluation import (
    CheckResult,
    check_all,
    composite,
    criteria_rate,
    degenerate,
    failed_task_score,
    guard,
)
from ..lm.adapter import GrammarAdapter
from ..lm.backends import create_backend
from ..lm.calls import CallRecord, CallRecorder, CallTotals, recording
from ..lm.engine import BackendEngine, backend_error_in, make_lm
from ..lm.model_identity import run_identity, run_models
from ..lm.preflight import is_local
from ..lm.replies import ReplyCache
from ..lm.scheduling import KeepAlivePolicy, policy_for
from ..shared_meter import shared
from ..workspace.config import (
    PIPELINE_ROLES,
    BackendsConfig,
    Portfolio,
    RoleConfig,
    ScoringConfig,
    role_concurrency,
)
from ..workspace.suite import Task
from ..workspace.workspace import ROLE_FILES, Workspace
from .parallel import in_order
from .program import Judge, Judgement, Pipeline, prompt_format


@dataclass(frozen=True)
class TaskResult(CallTotals):
    """Everything one task's run produced; what the store keeps and the scores are made from."""

    def composite(self, scoring: ScoringConfig) -> float:
        """This task's composite, as the pruner sees it task by task: 0 for a failed task."""
        return 0.0 if self.failed else composite(self.score_r1, criteria_rate([self.checks]), scoring)

    task_id: str
    split: str
    score_r1: float
    score_final: float
    dimensions: dict[str, float]
    checks: tuple[CheckResult, ...]
    critique: str = ""
    plan: str = ""
    output_r1: str = ""
    output: str = ""
    revisions: int = 0
    seconds: float = 0.0
    calls: tuple[CallRecord, ...] = field(default=(), repr=False)
    failed: bool = False
    failure_mode: str | None = None
    guarded: str | None = None  # why the guard found judge-directed text in an output (then all scores are 0)
    degenerate: str | None = None  # why an output was degenerate (evaluation/degenerate.py; its judge score is 0)

    @property
    def criteria_passed(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def flags(self) -> tuple[str, ...]:
        if self.guarded:
            return (guard.FLAG,)
        flags = tuple(c.criterion for c in self.checks if c.criterion == "no_judge_address" and not c.passed)
        return (*flags, degenerate.FLAG) if self.degenerate else flags


@dataclass
class _TaskRun:
    """One task's progress through the staged pipeline."""

    task: Task
    plan: str = ""
    draft: str = ""
    answer: str = ""
    first: Judgement | None = None
    judgement: Judgement | None = None
    rounds: int = 0
    seconds: float = 0.0
    calls: list[CallRecord] = field(default_factory=list)
    error: BackendError | None = None


def _concurrency(config: RoleConfig, backend: Any, backends: BackendsConfig) -> int:
    """Calls a role may run at once: a server's limit from the config; for the embedded model, what the
    backend built decodes at once (its batch or side-by-side contexts). A stand-in backend (a test's fake,
    a benchmark's call-counting wrapper) gets one at a time, so its calls keep their order."""
    if config.backend != "embedded":
        return role_concurrency(config, backends)
    return getattr(backend, "concurrency", 1)


class Harness:
    """Builds each role's LM from a portfolio and runs tasks through the pipeline.

    Tasks run one by one (run_task: what pruning wants) or stage by stage over a suite
    (run_tasks_staged: all plans, then all drafts, then all judgements, …, so consecutive calls use the
    same model). `staged` says which the portfolio wants: staged when the pipeline's roles use at
    least two distinct models served by Ollama, where a model swap costs a load; an embedded model
    shares one process, and one model never swaps.
    """

    def __init__(self, workspace: Workspace, portfolio: Portfolio, *, instructions: dict[str, str] | None = None,
                 max_rounds: int | None = None, producer_temperature: float | None = None,
                 backend_factory=None, retries: int = 2, backoff_s: float = 1.0,
                 keep_alive_policy: KeepAlivePolicy | None = None, replies: ReplyCache | None = None):
        self.workspace = workspace
        settings = workspace.settings
        instructions = instructions or workspace.instructions
        self.engines: dict[str, BackendEngine] = {}
        self.lms: dict[str, dspy.LM] = {}
        for role in PIPELINE_ROLES:
            config = portfolio.role(role)
            if role == "producer" and producer_temperature is not None:
                config = config.model_copy(update={"temperature": producer_temperature})
            engine = build_engine(workspace, role, config, backend_factory, retries, backoff_s, replies=replies)
            if keep_alive_policy is not None and engine.policy is not None:
                engine.policy = keep_alive_policy
            self.engines[role] = engine
            self.lms[role] = make_lm(engine)
        self.instructions = {name: instructions[name] for name in ROLE_FILES}  # what the producer is given
        judge = Judge(workspace.rubric, workspace.evaluator_instructions, self.lms["evaluator"])
        self.pipeline = Pipeline(
            instructions["planner.md"], instructions["producer.md"], judge,
            max_rounds=settings.scoring.max_revision_rounds if max_rounds is None else max_rounds,
            pass_threshold=settings.scoring.judge_pass_threshold,
        )
        self.pipeline.plan.set_lm(self.lms["planner"])
        self.pipeline.produce.set_lm(self.lms["producer"])
        self.pipeline.revise.set_lm(self.lms["producer"])
        self.adapter = GrammarAdapter(restate=settings.workspace.restate_instructions)
        served = {_served_model(e) for e in self.engines.values() if e.backend.name == "ollama"}
        self.staged = len(served) >= 2
        # Tasks (or a stage's calls) at once: the smallest limit of the roles that run a task.
        self.concurrency = min(_concurrency(portfolio.role(role), self.engines[role].backend, settings.backends)
                               for role in PIPELINE_ROLES)

    def run_tasks(self, tasks: Sequence[Task], recorder: CallRecorder) -> Iterator[TaskResult]:
        """Each task's result, in task order, as run_task makes it; up to `concurrency` tasks run at once.

        The caller sees results (and recorder sees each task's calls) in task order and from its own thread,
        so a pruner judges the tasks in a fixed order and the store is written by one thread. Closing the
        iterator early (a pruned trial) cancels the tasks not started and waits for those running, whose
        calls still reach recorder: they were made, and their joules were spent.
        """
        if self.concurrency <= 1:
            for task in tasks:
                yield self.run_task(task, recorder)
            return
        yield from in_order(lambda task, own: self.run_task(task, own), tasks, recorder, self.concurrency)

    def run_task(self, task: Task, recorder: CallRecorder | None = None) -> TaskResult:
        """Run one task; a failed model call scores the task as failed instead of raising."""
        recorder = recorder or CallRecorder()
        recorder.task_id = task.id
        first_call = len(recorder.calls)
        start = time.perf_counter()
        with recording(recorder), dspy.context(adapter=self.adapter):
            try:
                out = self.pipeline(task=task.prompt)
            except Exception as exc:  # DSPy wraps engine errors; only a BackendError below means "the model failed"
                error = backend_error_in(exc)
                if error is None:
                    raise
                return _failed_result(task, error, time.perf_counter() - start, tuple(recorder.calls[first_call:]))
        return self._result(task, out.plan, out.answer_r1, out.answer, out.first, out.final, out.revisions,
                            time.perf_counter() - start, tuple(recorder.calls[first_call:]))

    def run_tasks_staged(self, tasks: Sequence[Task], recorder: CallRecorder | None = None) -> list[TaskResult]:
        """Run tasks stage by stage: every plan, every draft, every first judgement, then each revision
        round (revise, then judge, the tasks still under the pass threshold). The same steps and checks as
        run_task, task by task, so the results match; a failed call fails its own task only."""
        recorder = recorder or CallRecorder()
        runs = [_TaskRun(task) for task in tasks]
        pipeline = self.pipeline

        def plan(run: _TaskRun) -> None:
            run.plan = pipeline.make_plan(run.task.prompt)

        def draft(run: _TaskRun) -> None:
            run.draft = run.answer = pipeline.draft(run.task.prompt, run.plan)

        def judge(run: _TaskRun) -> None:
            run.judgement = pipeline.judge(run.task.prompt, run.answer)
            if run.first is None:
                run.first = run.judgement
            else:
                run.rounds += 1

        def revise(run: _TaskRun) -> None:
            assert run.judgement is not None
            run.answer = pipeline.revise_answer(run.task.prompt, run.plan, run.answer, run.judgement.critique)

        with recording(recorder), dspy.context(adapter=self.adapter):
            self._stage(runs, "planner", plan, recorder, after=None)
            self._stage(runs, "producer", draft, recorder, after="planner")
            self._stage(runs, "evaluator", judge, recorder, after="producer")
            while True:
                pending = [r for r in runs if r.error is None and pipeline.needs_revision(r.judgement, r.rounds)]
                if not pending:
                    break
                self._stage(pending, "producer", revise, recorder, after="evaluator")
                self._stage(pending, "evaluator", judge, recorder, after="producer")
        return [
            _failed_result(r.task, r.error, r.seconds, tuple(r.calls)) if r.error is not None else
            self._result(r.task, r.plan, r.draft, r.answer, r.first, r.judgement, r.rounds, r.seconds, tuple(r.calls))
            for r in runs
        ]

    def _stage(self, runs: list[_TaskRun], role: str, step, recorder: CallRecorder, *, after: str | None) -> None:
        """One step over every task still running (up to `concurrency` at once), each call tagged with its
        task; a model failure ends that task only. When the previous stage used another model, it is
        preloaded first."""
        alive = [r for r in runs if r.error is None]
        if not alive:
            return
        if after is not None and _served_model(self.engines[role]) != _served_model(self.engines[after]):
            self.engines[role].preload()  # a no-op unless Ollama, and unless /api/ps shows it unloaded

        def run_step(run: _TaskRun, own: CallRecorder) -> None:
            own.task_id = run.task.id
            start = time.perf_counter()
            with recording(own):
                try:
                    step(run)
                except Exception as exc:  # as in run_task: only a BackendError is the model failing
                    error = backend_error_in(exc)
                    if error is None:
                        raise
                    run.error = error
                finally:
                    run.seconds += time.perf_counter() - start
                    run.calls.extend(own.calls)

        for _ in in_order(run_step, alive, recorder, self.concurrency):
            pass

    def _result(self, task: Task, plan: str, draft: str, answer: str, first: Judgement, final: Judgement,
                revisions: int, seconds: float, calls: tuple[CallRecord, ...],
                instructions: Mapping[str, str] | None = None) -> TaskResult:
        """A finished task's result: criteria checked on the final answer, then the guards. instructions: the role
        files that produced it, where not this harness's own (a benchmark's optimizer tunes its own copy)."""
        result = TaskResult(
            task_id=task.id, split=task.split, score_r1=first.score, score_final=final.score,
            dimensions=first.dimensions, checks=tuple(check_all(answer, task.criteria)),
            critique=final.critique, plan=plan, output_r1=draft, output=answer,
            revisions=revisions, seconds=_task_seconds(seconds, calls), calls=calls,
        )
        # The guard: the first draft (what the counted judge score saw) and the final answer (what the
        # criteria saw) are both checked, whatever criteria the task lists.
        reason = guard.first_judge_directed((draft, answer), [d.name for d in self.workspace.rubric.dimensions])
        if reason is None:
            if not self.workspace.settings.scoring.degenerate_guard:
                return result
            return _degenerate_zeroed(result, instructions or self.instructions, task.prompt)
        # A judge that was addressed may have obeyed, so its scores are worthless: they are zeroed
        # (not merely left out) so that flattering the judge can never gain, and every criterion fails.
        return replace(
            result, score_r1=0.0, score_final=0.0, dimensions={d: 0.0 for d in first.dimensions},
            checks=guard.guarded_checks(task.criteria, reason), guarded=reason,
            critique=f"{guard.REASON_PREFIX}{reason}{guard.REASON_END} {result.critique}".strip(),
        )


def _degenerate_zeroed(result: TaskResult, instructions: Mapping[str, str], task: str) -> TaskResult:
    """result with the judge's score of each degenerate text (the draft its counted score saw, the final answer)
    replaced by 0; the criteria stand as they checked the answer. instructions: the role files that produced it."""
    sources = tuple(instructions.values())
    first = degenerate.degenerate(result.output_r1, sources, task)
    # Without a revision the final answer is the draft: checked once.
    final = first if result.output == result.output_r1 else degenerate.degenerate(result.output, sources, task)
    reason = first or final
    if reason is None:
        return result
    return replace(
        result, score_r1=0.0 if first else result.score_r1, score_final=0.0 if final else result.score_final,
        dimensions={d: 0.0 for d in result.dimensions} if first else result.dimensions, degenerate=reason,
        critique=f"{degenerate.REASON_PREFIX}{reason}{degenerate.REASON_END} {result.critique}".strip(),
    )


def _failed_result(task: Task, error: BackendError, seconds: float, calls: tuple[CallRecord, ...]) -> TaskResult:
    """A task whose model call failed: judge 0 and every criterion failed, with the failure mode as reason."""
    return TaskResult(
        task_id=task.id, split=task.split, score_r1=0.0, score_final=0.0, dimensions={},
        checks=failed_task_score(task, f"model call failed: {error.failure_mode}").checks,
        seconds=_task_seconds(seconds, calls), calls=calls, failed=True, failure_mode=error.failure_mode,
    )


def _task_seconds(wall_s: float, calls: tuple[CallRecord, ...]) -> float:
    """A task's seconds: its wall time, plus each reused reply's seconds as when it was made (lm/replies.py), so
    they are those of its instructions, whether or not this run had the reply already."""
    return wall_s + sum(c.latency_s for c in calls if c.reused)


def _served_model(engine: BackendEngine) -> tuple[str, str | None, str]:
    """Which server process holds an engine's model: (backend, server URL, model)."""
    return engine.backend.name, getattr(engine.backend, "url", None), engine.config.model


def backend_of(config: RoleConfig, backends: BackendsConfig, backend_factory=None) -> Any:
    """The backend a role's calls go to: backend_factory's (a test's, the benchmark's), else create_backend's."""
    return (backend_factory or create_backend)(config, backends)


def models_now(workspace: Workspace, portfolio: Portfolio, backend_factory=None, note=lambda text: None) -> str:
    """The identity of what answers a portfolio's pipeline roles now, as the store stamps it (Store.models): each
    role's model that can tell (lm/model_identity.run_models) and this harness's prompt format."""
    return run_identity(run_models(portfolio, workspace.settings.backends,
                                   lambda config, backends: backend_of(config, backends, backend_factory), note=note),
                        prompt_format(workspace))


def reuses_replies(backend) -> bool:
    """Whether a role on this backend may be answered from the run's reply cache. Not where its replies depend on
    which calls share a batch (lm/lanes.py): a reused reply would leave its lane out of the next batch, so every
    call is made and the batches stay those of the tasks and seeds alone."""
    return not getattr(backend, "decodes_in_batches", False)


def build_engine(workspace: Workspace, role: str, config: RoleConfig, backend_factory=None,
                 retries: int = 2, backoff_s: float = 1.0, seeds: random.Random | None = None,
                 replies: ReplyCache | None = None) -> BackendEngine:
    """The metered, logged engine of one role: its backend plus the best energy meter for where it runs."""
    settings = workspace.settings
    backend = backend_of(config, settings.backends, backend_factory)
    url = getattr(backend, "url", None) or getattr(backend, "base_url", None)
    url = url if isinstance(url, str) else None  # (a fake's attribute may be anything)
    meter = select_meter(
        in_process=backend.in_process, local=is_local(config, settings.backends),
        gpu=not backend.in_process, cpu_watts_per_core=settings.energy.cpu_watts_per_core,
        server_watts=settings.energy.server_watts, server=url,
        gpus=settings.energy.gpus,
    )
    # A counter measures the whole device (a server's estimate, the server): engines share one per device,
    # which splits the energy of overlapping calls among them by tokens.
    meter = shared(meter, stream=f"{role}:{config.model}")
    # Every Ollama engine gets the keep-alive policy of its server, shared across harnesses and trials.
    policy = policy_for(url) if backend.name == "ollama" and url else None
    if not reuses_replies(backend):
        replies = None
    return BackendEngine(role, config, backend, meter, retries=retries, backoff_s=backoff_s,
                         timeout_s=settings.backends.timeout_s, policy=policy, seeds=seeds,
                         outage_wait_s=settings.backends.outage_wait_s, server=url, replies=replies)
