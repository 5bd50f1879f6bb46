"""The Optuna strategies a Study uses by default, built from the workspace's [search] settings in one place.

A Study takes any sampler and pruner (as Optuna's own create_study does); these are what it uses when
none is given. The benchmark passes a RandomSampler here to compare methods without patching.
"""

from __future__ import annotations

import optuna

from ..workspace.config import SearchConfig

STARTUP_TRIALS = 5  # TPE's random start-up trials before it models what worked


def default_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)


def default_pruner(search: SearchConfig) -> optuna.pruners.BasePruner:
    """[search] pruner: "wilcoxon" stops a variant whose per-task scores trail the incumbent's; else none."""
    if search.pruner == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    return optuna.pruners.NopPruner()
