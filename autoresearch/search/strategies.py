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
from .pruning import PairedFutilityPruner, z_of

STARTUP_TRIALS = 5  # random start-up trials before the sampler models what worked, for a run without a trial budget
MIN_STARTUP_TRIALS = 2


def startup_trials(n_trials: int | None) -> int:
    """Random start-up trials for a run of n_trials: a quarter of them, 2 to 5. A fixed 5 left a 7-trial run
    (100 model calls) all but random: TPE modelled two trials (docs/BENCHMARKS.md)."""
    if n_trials is None:
        return STARTUP_TRIALS
    return max(MIN_STARTUP_TRIALS, min(STARTUP_TRIALS, round(n_trials / 4)))


def default_sampler(search: SearchConfig, seed: int | None, *, n_trials: int | None = None,
                    shared: bool = False) -> optuna.samplers.BaseSampler:
    """[search] sampler. TPE models the parameters jointly (multivariate: which operator works depends on the
    file), and in a shared study treats other workers' running trials as bad (constant_liar), so that
    workers asking at once do not all get the same recipe. "gp" raises ImportError without torch."""
    startup = startup_trials(n_trials)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "gp":
        import torch  # noqa: F401  (Optuna's GPSampler imports it only when it first models: fail now instead)

        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                      constant_liar=shared)


def default_pruner(settings: Settings) -> optuna.pruners.BasePruner:
    """[search] pruner: "wilcoxon" stops a variant whose per-task scores trail the best trial's (from the 4th
    task); "paired" one that can no longer plausibly beat the incumbent by keep_threshold (from the first,
    search/pruning.py, at [search] prune_confidence; Wilcoxon's decision where the seeds gave no noise to predict
    from); "none" never stops one."""
    wilcoxon = optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    if settings.search.pruner == "wilcoxon":
        return wilcoxon
    if settings.search.pruner == "paired":  # where it cannot predict (no seed noise), Wilcoxon decides
        return PairedFutilityPruner(settings.scoring.keep_threshold, z=z_of(settings.search.prune_confidence),
                                    fallback=wilcoxon)
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
