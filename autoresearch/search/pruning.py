"""A screen pruner that can stop a variant from its first task: [search] pruner = "paired" (the default).

Optuna's WilcoxonPruner compares a trial with the best trial so far and cannot prune before its 4th task.
The keep rule's screen, though, compares a variant with the incumbent task by task under the same seeds, and
passes it only when the mean paired difference over all T search tasks exceeds keep_threshold. After k tasks
with mean paired difference m, the unseen tasks' differences are predicted from the seen ones: their mean
is m give or take σ_d·√(1/k + 1/(T−k)), σ_d = √2 · the incumbent's per-task sd over seed sets (a difference
of two single draws). So the final mean is m give or take ((T−k)/T)·σ_d·√(1/k + 1/(T−k)), and the variant is
stopped when even Z of those above m (one-sided 95% by default: [search] prune_confidence) is at or under the
threshold. A task that failed (a backend fault, not evidence) is left out, as the keep rule leaves it out. Without a seed noise to predict
from (noise_repeats = 1, or seeds that changed no score: sd 0) it asks its fallback (the default pruner's:
Optuna's WilcoxonPruner against the best trial), so such a study prunes as it did before this pruner.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import optuna

CONFIDENCE = 0.95  # [search] prune_confidence's default: stopped when beating the threshold has under a 5% chance


def z_of(confidence: float) -> float:
    """The one-sided normal quantile of `confidence`, to 3 decimals as tables give it (0.95: 1.645)."""
    return round(statistics.NormalDist().inv_cdf(confidence), 3)


Z = z_of(CONFIDENCE)  # 1.645
FAILED_TASKS_ATTR = "failed_tasks"  # a trial's user attribute: the screen steps whose task failed


@dataclass(frozen=True)
class ScreenReference:
    """What the screen is compared with: the incumbent's score at each step (task) under the screen's seeds,
    and its per-task sd over seed sets (None when measured under one seed set only)."""

    incumbent: dict[int, float | None]
    sd: float | None


def implausible(differences: list[float], tasks: int, sd: float, threshold: float, z: float = Z) -> bool:
    """Whether k paired differences make a final mean over `tasks` above threshold implausible (see above)."""
    k = len(differences)
    if k == 0 or k >= tasks or sd <= 0:
        return False
    mean = sum(differences) / k
    spread = (tasks - k) / tasks * math.sqrt(2) * sd * math.sqrt(1 / k + 1 / (tasks - k))
    return mean + z * spread <= threshold


class PairedFutilityPruner(optuna.pruners.BasePruner):
    """Stops a screen as soon as its tasks so far make beating the incumbent by the threshold implausible.

    The Study tells it what to compare with before each screen (against()); without a reference it never
    prunes, and without a seed noise (sd None or 0) it leaves the decision to `fallback` (never, without one).
    """

    def __init__(self, threshold: float, z: float = Z, fallback: optuna.pruners.BasePruner | None = None):
        self.threshold, self.z, self.fallback = threshold, z, fallback
        self.reference: ScreenReference | None = None

    def against(self, reference: ScreenReference | None) -> None:
        self.reference = reference

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        reference = self.reference
        if reference is None:
            return False
        if not reference.sd:  # no seed noise to predict the unseen tasks from
            return self.fallback is not None and self.fallback.prune(study, trial)
        return would_stop(reference, trial.intermediate_values, set(trial.user_attrs.get(FAILED_TASKS_ATTR, ())),
                          self.threshold, self.z)


def would_stop(reference: ScreenReference, values: dict[int, float], failed: set[int], threshold: float,
               z: float = Z) -> bool:
    """The paired pruner's decision on a screen's scores so far (`values` by step), its failed steps left out; a
    reference with a measured noise (the pruner asks its fallback otherwise)."""
    comparable = {step for step, score in reference.incumbent.items() if score is not None} - failed
    differences = [value - reference.incumbent[step] for step, value in sorted(values.items()) if step in comparable]
    return implausible(differences, len(comparable), reference.sd or 0.0, threshold, z)
