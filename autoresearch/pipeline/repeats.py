"""The same instructions evaluated several times, each repeat with its own seeds: the noise floor that a
difference between two evaluations has to clear before it means anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..evaluation.noise import Spread, spread
from ..lm.calls import CallRecorder
from ..lm.replies import ReplyCache
from ..store import Store
from ..workspace.config import PIPELINE_ROLES, Portfolio, ScoringConfig
from ..workspace.suite import Task
from ..workspace.workspace import Workspace
from .harness import Harness, TaskResult
from .runner import SuiteResult, TaskCallback, evaluate_tasks


def repeat_portfolio(portfolio: Portfolio, repeat: int) -> Portfolio:
    """The portfolio of repeat r (from 0): each pipeline role's seed + r, a role without one seeded r.

    Repeat 0 is the configured portfolio wherever a seed is set; a role without a seed gets one, since the
    embedded model's unseeded default gives the same output every time and would hide the noise."""
    roles = {role: portfolio.role(role).model_copy(update={"seed": (portfolio.role(role).seed or 0) + repeat})
             for role in PIPELINE_ROLES}
    return portfolio.model_copy(update=roles)


@dataclass(frozen=True)
class Repeats:
    """Every repeat's evaluation, with the seeds each role used in it."""

    results: tuple[SuiteResult, ...]
    seeds: tuple[dict[str, int], ...]  # per repeat: role → seed
    requested: int = 0  # the repeats asked for, where a stop (Ctrl-C, SIGTERM) came before the last; else 0

    @property
    def composite(self) -> Spread:
        return spread(r.score.composite for r in self.results)

    @property
    def copies(self) -> bool:
        """Every repeat reproduced the first's replies (two or more repeats): the seeds changed nothing."""
        return len(self.results) >= 2 and all(same_replies(self.results[0], r) for r in self.results[1:])

    def task_spreads(self, scoring: ScoringConfig) -> dict[str, Spread]:
        """Per task, its composite in each repeat (a failed task counts 0, as the pruner sees it)."""
        values: dict[str, list[float]] = {}
        for result in self.results:
            for t in result.tasks:
                values.setdefault(t.task_id, []).append(t.composite(scoring))
        return {task: spread(v) for task, v in values.items()}


def same_replies(first: SuiteResult, other: SuiteResult) -> bool:
    """Whether `other`, made under other seeds, reproduced every reply of `first`: the same tasks, none failed,
    each with the same plan, answers, critique and scores. Then the backend ignores the seed (greedy decoding at
    temperature 0) and a further repeat would be one more copy, not a measurement of noise."""
    mine, theirs = _replies_by_task(first), _replies_by_task(other)
    return bool(mine) and None not in mine.values() and mine == theirs


def _replies_by_task(suite: SuiteResult) -> dict[str, tuple | None]:
    return {t.task_id: None if t.failed else _replies(t) for t in suite.tasks}


def _replies(t: TaskResult) -> tuple:
    return (t.plan, t.output_r1, t.output, t.critique, t.score_r1, t.score_final, tuple(sorted(t.dimensions.items())),
            tuple(c.passed for c in t.checks))


def role_seeds(portfolio: Portfolio) -> dict[str, int | None]:
    """Each pipeline role's seed (None: the role draws one per call)."""
    return {role: portfolio.role(role).seed for role in PIPELINE_ROLES}


def evaluate_repeat(workspace: Workspace, store: Store, portfolio: str, base: Portfolio, tasks: Sequence[Task],
                    repeat: int, *, instructions: dict[str, str], kind: str, split: str, study: str | None = None,
                    trial: int | None = None, on_task: TaskCallback | None = None, recorder: CallRecorder | None = None,
                    backend_factory: Any = None, retries: int = 2, backoff_s: float = 1.0,
                    knobs: dict[str, Any] | None = None, variant_hash: str | None = None,
                    stoppable: bool = False, replies: ReplyCache | None = None) -> tuple[SuiteResult, dict[str, int | None]]:
    """One repeat: the tasks under repeat_portfolio(base, repeat), recorded as an evaluation that carries those
    seeds; returns it with the seeds. knobs: a study's searched settings (revision_rounds, producer_temperature);
    stoppable: on_task may stop it early (evaluate_tasks); replies: a run's to reuse (lm/replies.py)."""
    seeded = repeat_portfolio(base, repeat)
    knobs = knobs or {}
    harness = Harness(workspace, seeded, instructions=instructions, backend_factory=backend_factory,
                      retries=retries, backoff_s=backoff_s, max_rounds=knobs.get("revision_rounds"),
                      producer_temperature=knobs.get("producer_temperature"), replies=replies)
    result = evaluate_tasks(workspace, harness, store, tasks, kind=kind, portfolio=portfolio, instructions=instructions,
                            split=split, study=study, trial=trial, on_task=on_task, recorder=recorder,
                            portfolio_config=seeded, variant_hash=variant_hash, repeat=repeat, stoppable=stoppable)
    return result, role_seeds(seeded)


def evaluate_repeats(workspace: Workspace, store: Store, portfolio: str, tasks: Sequence[Task], repeats: int, *,
                     split: str, on_task: TaskCallback | None = None, backend_factory: Any = None,
                     replies: ReplyCache | None = None) -> Repeats:
    """Evaluate the workspace's instructions `repeats` times, each repeat an evaluation of its own. A stop
    (KeyboardInterrupt) after two or more whole repeats ends them there: the spread of those, not nothing."""
    found = []
    try:
        for repeat in range(repeats):
            found.append(evaluate_repeat(workspace, store, portfolio, workspace.portfolio(portfolio), tasks, repeat,
                                         instructions=workspace.instructions, kind="eval", split=split,
                                         on_task=on_task, backend_factory=backend_factory, replies=replies))
    except KeyboardInterrupt:
        if len(found) < 2:  # no spread to show
            raise
        return Repeats(tuple(r for r, _ in found), tuple(s for _, s in found), requested=repeats)
    return Repeats(tuple(r for r, _ in found), tuple(s for _, s in found))
