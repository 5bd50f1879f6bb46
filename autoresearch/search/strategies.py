"""The Optuna side of a Study: the parameter space of a trial's recipe, and the strategies it uses by default,
built from the workspace's [search] settings in one place.

A Study takes any sampler and pruner (as Optuna's own create_study does); these are what it uses when
none is given. The benchmark passes a RandomSampler here to compare methods without patching.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import optuna
import sqlalchemy
from optuna.distributions import CategoricalDistribution, IntDistribution

from ..workspace.config import SearchConfig, Settings

STARTUP_TRIALS = 5  # TPE's random start-up trials before it models what worked


def default_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)


def default_pruner(search: SearchConfig) -> optuna.pruners.BasePruner:
    """[search] pruner: "wilcoxon" stops a variant whose per-task scores trail the incumbent's; else none."""
    if search.pruner == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    return optuna.pruners.NopPruner()


def distributions(settings: Settings, operator_names: list[str]) -> dict[str, Any]:
    """The fixed parameter space of a trial's recipe; it never changes inside a study."""
    search = settings.search
    space: dict[str, Any] = {
        "file": CategoricalDistribution(settings.workspace.optimizable),
        "operator": CategoricalDistribution(operator_names),
        "parent": IntDistribution(0, search.parents - 1),
        "proposer_temperature": CategoricalDistribution(search.proposer_temperatures),
    }
    if search.producer_temperatures:
        space["producer_temperature"] = CategoricalDistribution(search.producer_temperatures)
    if search.revision_rounds:
        space["revision_rounds"] = CategoricalDistribution(search.revision_rounds)
    return space


def create_optuna_study(name: str, storage: Callable[[], str | optuna.storages.BaseStorage],
                        sampler: optuna.samplers.BaseSampler,
                        pruner: optuna.pruners.BasePruner, *, retry: Callable[[int], bool],
                        rng: random.Random) -> optuna.Study:
    """Create or load the Optuna study; after a database error, try again while retry(attempt) says so
    (workers of a shared study starting together race to create Optuna's tables, storage() included)."""
    for attempt in range(5):  # the last attempt's error is raised
        try:
            return optuna.create_study(study_name=name, storage=storage(), load_if_exists=True, direction="maximize",
                                       sampler=sampler, pruner=pruner)
        except sqlalchemy.exc.SQLAlchemyError:
            if not retry(attempt) or attempt == 4:
                raise
            time.sleep(0.2 + rng.random() * (attempt + 1))
    raise AssertionError("unreachable")  # for the type checker: every path above returns or raises
