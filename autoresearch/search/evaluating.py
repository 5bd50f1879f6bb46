"""The Study's evaluations: the harness per variant, per-task reports to the pruner, the holdout check,
the proposer, call recording, and the one line that says which backend keeps failing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna

from ..evaluation.scoring import composite, criteria_rate
from ..lm.calls import CallRecord, CallRecorder
from ..lm.engine import make_lm
from ..lm.preflight import server_url
from ..pipeline.harness import Harness, TaskResult, build_engine
from ..pipeline.runner import SuiteResult, evaluate_tasks
from ..workspace.config import ROLES, Task
from .proposer import Proposer
from .results import StopReason, objective


class EvaluationMixin:
    """Evaluating instruction variants for the Study; uses its workspace, portfolio, store and observer."""

    def _trial_calls(self) -> tuple[CallRecord, ...]:
        return tuple(self._trial_recorder.calls) if self._trial_recorder else ()

    def _down(self, what: str, trials: list[tuple[CallRecord, ...]]) -> tuple[StopReason, str]:
        """The stop reason and its one line when trials keep failing: which backend, model and failure modes."""
        failed = [c for calls in trials for c in calls if not c.ok]
        if not failed:
            return StopReason.FAILED_TRIALS, f"{what} without a failed model call (the proposer gave no usable variant)"
        groups: dict[tuple[str, str], list[CallRecord]] = {}
        for call in failed:
            groups.setdefault((call.backend, call.model), []).append(call)
        parts = []
        for (backend, model), calls in groups.items():
            roles = sorted({c.role for c in calls})
            url = next((server_url(self.portfolio.role(r), self.settings.backends) for r in roles
                        if r in ROLES), None)
            modes = Counter(c.failure_mode or "error" for c in calls)
            parts.append(f"{backend} {model}" + (f" at {url}" if url else "") + f" ({', '.join(roles)}): "
                         + ", ".join(f"{m} ×{n}" for m, n in modes.most_common()))
        last = " ".join((failed[-1].error or "").split())[:120]
        return StopReason.BACKEND_DOWN, (f"{what}: " + "; ".join(parts) + (f" (last error: {last})" if last else "")
                                + " — run the same command to resume once it is back")

    def _evaluate(self, trial: optuna.Trial, instructions: dict[str, str], knobs: dict[str, Any],
                  tasks: list[Task], kind: str, recorder: CallRecorder) -> SuiteResult:
        harness = self._harness(instructions, knobs)
        scoring = self.settings.scoring

        def on_task(index: int, result: TaskResult) -> bool:
            value = 0.0 if result.failed else composite(result.score_r1, criteria_rate([result.checks]), scoring)
            # The pruner compares what the keep rule compares: the objective (the composite at weight 0).
            value = objective(value, result.joules, 1, self.energy_weight)
            trial.report(value, step=index)
            self._emit("task_done", {"trial": trial.number, "index": index, "total": len(tasks),
                                        "task": result.task_id, "value": value})
            return kind == "baseline" or not trial.should_prune()

        return evaluate_tasks(self.ws, harness, self.store, tasks, kind=kind, portfolio=self.portfolio_name,
                              instructions=instructions, split="search", study=self.name, trial=trial.number,
                              on_task=on_task, recorder=recorder)

    def _holdout(self, number: int, instructions: dict[str, str], knobs: dict[str, Any],
                 recorder: CallRecorder) -> tuple[float | None, int | None]:
        """The holdout composite of a variant and its evaluation's id; (None, None) without holdout tasks."""
        if not self.holdout_tasks:
            return None, None
        self._emit("holdout", {"trial": number})
        suite = evaluate_tasks(self.ws, self._harness(instructions, knobs), self.store, self.holdout_tasks,
                               kind="holdout", portfolio=self.portfolio_name, instructions=instructions,
                               split="holdout", study=self.name, trial=number, recorder=recorder)
        return suite.composite, suite.evaluation_id

    def _harness(self, instructions: dict[str, str], knobs: dict[str, Any]) -> Harness:
        return Harness(self.ws, self.portfolio, instructions=instructions, max_rounds=knobs.get("revision_rounds"),
                       producer_temperature=knobs.get("producer_temperature"),
                       backend_factory=self.backend_factory, retries=self.retries, backoff_s=self.backoff_s)

    def _proposer(self) -> Proposer:
        if self._proposer_cache is None:
            self._proposer_cache = Proposer(make_lm(build_engine(
                self.ws, "proposer", self.portfolio.proposer, self.backend_factory, self.retries, self.backoff_s)))
        return self._proposer_cache

    def _recorder(self, number: int) -> CallRecorder:
        def sink(call) -> None:
            self.session_calls.append(call)
            if call.task_id is None:  # proposer calls belong to the trial, not to an evaluation
                self.store.record_call(None, call, study=self.name, trial=number)
        self._trial_recorder = CallRecorder(sink=sink)
        return self._trial_recorder

    def _joules(self, recorder: CallRecorder) -> float:
        return sum(c.joules for c in recorder.calls)

    def _suite_objective(self, suite: SuiteResult) -> float:
        """composite − energy_weight × kJ per task of this search evaluation (the composite at weight 0)."""
        value = objective(suite.composite, suite.joules, len(suite.tasks), self.energy_weight)
        assert value is not None
        return value
