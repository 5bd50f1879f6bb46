"""The same instructions evaluated several times, each repeat with its own seeds: the noise floor that a
difference between two evaluations has to clear before it means anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..evaluation.noise import Spread, spread
from ..evaluation.scoring import composite, criteria_rate
from ..store import Store
from ..workspace.config import PIPELINE_ROLES, Portfolio, ScoringConfig, Task
from ..workspace.workspace import Workspace
from .harness import Harness
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

    @property
    def composite(self) -> Spread:
        return spread(r.score.composite for r in self.results)

    def task_spreads(self, scoring: ScoringConfig) -> dict[str, Spread]:
        """Per task, its composite in each repeat (a failed task counts 0, as the pruner sees it)."""
        values: dict[str, list[float]] = {}
        for result in self.results:
            for t in result.tasks:
                value = 0.0 if t.failed else composite(t.score_r1, criteria_rate([t.checks]), scoring)
                values.setdefault(t.task_id, []).append(value)
        return {task: spread(v) for task, v in values.items()}


def evaluate_repeats(workspace: Workspace, store: Store, portfolio: str, tasks: Sequence[Task], repeats: int, *,
                     split: str, on_task: TaskCallback | None = None, backend_factory: Any = None) -> Repeats:
    """Evaluate the workspace's instructions `repeats` times, each repeat an evaluation of its own."""
    base = workspace.portfolio(portfolio)
    results, seeds = [], []
    for repeat in range(repeats):
        seeded = repeat_portfolio(base, repeat)
        harness = Harness(workspace, seeded, backend_factory=backend_factory)
        results.append(evaluate_tasks(workspace, harness, store, tasks, kind="eval", portfolio=portfolio,
                                      instructions=workspace.instructions, split=split, on_task=on_task,
                                      portfolio_config=seeded))
        seeds.append({role: seeded.role(role).seed for role in PIPELINE_ROLES})
    return Repeats(tuple(results), tuple(seeds))
