"""Runs a set of tasks through the harness, scores the suite and writes it all to the store."""

from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from ..evaluation.scoring import SuiteScore, TaskScore, score_suite
from ..lm.calls import CallRecord, CallRecorder, CallTotals
from ..store import Store
from ..workspace.config import Portfolio
from ..workspace.suite import Task
from ..workspace.workspace import Workspace
from .harness import Harness, TaskResult

# Called after each task with (index, result); returning False stops the suite early (pruning).
TaskCallback = Callable[[int, TaskResult], bool]
STAGED_FIRST_BLOCK = 2  # tasks in the first block of a staged evaluation that may be stopped early


def staged_blocks(n: int, first: int = STAGED_FIRST_BLOCK) -> list[int]:
    """Block sizes for a staged evaluation that a pruner may stop: 2, 2, 4, 8, … tasks (summing to n), so a
    hopeless variant can be stopped after 2 tasks, for one more model-swap cycle per block (log2 n blocks)."""
    sizes: list[int] = []
    done = 0
    while done < n:
        size = min(first if len(sizes) < 2 else done, n - done)
        sizes.append(size)
        done += size
    return sizes


@dataclass(frozen=True)
class SuiteResult(CallTotals):
    evaluation_id: int
    tasks: tuple[TaskResult, ...]
    score: SuiteScore
    status: str  # complete | pruned | interrupted (evaluate_tasks' partial_on_stop)
    seconds: float

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        return tuple(c for t in self.tasks for c in t.calls)

    @property
    def composite(self) -> float:
        return self.score.composite

    @property
    def swaps(self) -> int:
        """Calls for which the server had to load the model (each a swap, or a first load)."""
        return sum(c.swapped for c in self.calls)

    @property
    def load_s(self) -> float:
        return sum(c.load_s for c in self.calls)

    @property
    def load_joules(self) -> float:
        return sum(c.load_joules for c in self.calls)


def task_score(result: TaskResult) -> TaskScore:
    return TaskScore(result.task_id, result.score_r1, result.checks, result.failed)


def evaluate_tasks(workspace: Workspace, harness: Harness, store: Store, tasks: Sequence[Task], *,
                   kind: str, portfolio: str, instructions: dict[str, str], split: str,
                   study: str | None = None, trial: int | None = None,
                   on_task: TaskCallback | None = None, recorder: CallRecorder | None = None,
                   portfolio_config: Portfolio | None = None, variant_hash: str | None = None,
                   repeat: int = 0, stoppable: bool = False, partial_on_stop: bool = False) -> SuiteResult:
    """Evaluate tasks; every call and task result is committed as soon as it exists.

    The store records portfolio_config as the evaluation's portfolio, or (when None) the workspace's
    portfolio named `portfolio`; pass it when the harness runs a portfolio that name does not describe
    (profile's candidates: the named portfolio with one role's model swapped).

    variant_hash and repeat (which seed set: pipeline/repeats.py) let the keep rule find these scores again.

    Tasks run one by one, or up to harness.concurrency at once against servers that take parallel requests;
    results are recorded and handed to on_task in task order either way. A staged harness (its models swap
    on an Ollama server) runs the suite stage by stage and hands the results over afterwards: the whole suite
    at once, or, when on_task may stop it (stoppable: a pruner listens), in blocks of 2, 2, 4, 8, … tasks, so
    that a stop after the first block saves the calls of the rest.

    A Ctrl-C (KeyboardInterrupt) marks the evaluation interrupted and is raised again; with partial_on_stop,
    once at least one task finished, the tasks that did are returned instead (status "interrupted"), for a
    caller that shows them rather than nothing.
    """
    if portfolio_config is None:
        portfolio_config = workspace.portfolio(portfolio)
    evaluation_id: int | None = None
    results: list[TaskResult] = []
    status = "complete"
    start = time.perf_counter()
    try:
        with _stops_held():
            evaluation_id = store.begin_evaluation(
                kind=kind, portfolio=portfolio,
                portfolio_json=json.dumps(portfolio_config.model_dump(), sort_keys=True),
                instructions_hash=workspace.instructions_hash(instructions),
                evaluation_hash=workspace.evaluation_hash(), split=split, study=study, trial=trial,
                variant_hash=variant_hash, repeat=repeat,
            )
        recorder = CallRecorder(sink=lambda call: store.record_call(evaluation_id, call, study=study, trial=trial),
                                forward_to=recorder)
        # Closed on a break, so that tasks still running concurrently finish and hand over their calls.
        with closing(_results(harness, tasks, recorder, stoppable)) as found:
            for index, result in enumerate(found):
                store.record_task(evaluation_id, result)
                results.append(result)
                # A stop asked for after the last task saves nothing: the evaluation is complete, and whoever
                # reads it (the keep rule) decides on all of it rather than on a "pruned" label.
                if on_task is not None and not on_task(index, result) and index < len(tasks) - 1:
                    status = "pruned"
                    break
        # Inside the try: a stop during this write (slow under load) finishes the row as interrupted, not running.
        score = _finish(store, evaluation_id, status, results, workspace, time.perf_counter() - start)
    except BaseException as exc:
        if evaluation_id is None:  # stopped before its row was written: nothing to finish
            raise
        # Ctrl-C (or an exit) stopped it: "interrupted"; anything else is an error that ended it: "failed".
        stopped = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
        score = _finish(store, evaluation_id, stopped, results, workspace, time.perf_counter() - start)
        if partial_on_stop and isinstance(exc, KeyboardInterrupt) and results:
            return SuiteResult(evaluation_id, tuple(results), score, stopped, time.perf_counter() - start)
        raise
    return SuiteResult(evaluation_id, tuple(results), score, status, time.perf_counter() - start)


# The signals that stop a command (cli/signals.py): Ctrl-C, SIGTERM, the terminal's hangup.
_STOPS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def _stops_held() -> Iterator[None]:
    """Hold back a stop while an evaluation's row is written, so that it arrives once the row's id is known: a
    stop inside the write (a commit is slow under load) left a row 'running' that nothing would finish.

    The handlers are swapped for ones that note the signal, and what was noted is raised again after; a signal
    mask would not do, since a process with other threads (llama.cpp's) takes a signal on any unmasked one.
    Only the main thread can set handlers; elsewhere the write is not held (no stop reaches such a thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    held = {}
    for signum in _STOPS:
        handler = signal.getsignal(signum)
        if handler not in (signal.SIG_IGN, None):  # an ignored signal stays ignored
            held[signum] = signal.signal(signum, lambda number, frame: noted.append(number))
    try:
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        for signum in noted:
            signal.raise_signal(signum)  # to the handler it was meant for, now that the row exists


def _results(harness: Harness, tasks: Sequence[Task], recorder: CallRecorder,
             stoppable: bool) -> Iterator[TaskResult]:
    """The tasks' results in task order: stage by stage when the harness is staged (block by block where the
    caller may stop early), else task by task (up to harness.concurrency at once)."""
    if harness.staged:
        start = 0
        for size in staged_blocks(len(tasks)) if stoppable else [len(tasks)]:
            yield from harness.run_tasks_staged(tasks[start:start + size], recorder)
            start += size
    else:
        yield from harness.run_tasks(tasks, recorder)


def _finish(store: Store, evaluation_id: int, status: str, results: list[TaskResult],
            workspace: Workspace, seconds: float) -> SuiteScore:
    score = score_suite([task_score(r) for r in results], workspace.settings.scoring)
    sources = sorted({c.energy_source for r in results for c in r.calls})
    store.finish_evaluation(
        evaluation_id, status=status, composite=score.composite if results else None,
        judge_mean=score.judge_mean if results else None,
        criteria_rate=score.criteria_rate if results else None,
        joules=sum(r.joules for r in results), energy_source="+".join(sources) or "none", seconds=seconds,
    )
    return score
