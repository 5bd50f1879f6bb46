"""The paired pruner: a screen stopped from its first task once beating the incumbent is implausible."""

from __future__ import annotations

import random

import optuna
import pytest
from scripted import ScriptedPipeline, producer_only

from autoresearch.search import identity
from autoresearch.search.pruning import (
    FAILED_TASKS_ATTR,
    PairedFutilityPruner,
    ScreenReference,
    implausible,
)
from autoresearch.search.strategies import default_pruner
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace


def test_one_task_far_below_the_incumbent_is_enough_and_one_near_it_is_not():
    assert implausible([-3.0], tasks=4, sd=0.5, threshold=0.1)
    assert not implausible([-0.3], tasks=4, sd=0.5, threshold=0.1)  # within what the other 3 tasks could undo
    assert not implausible([-3.0], tasks=4, sd=5.0, threshold=0.1)  # noisy tasks: it could still be luck
    assert implausible([-0.3, -0.3, -0.3], tasks=4, sd=0.5, threshold=0.1)  # the same mean, seen on more tasks


def test_it_never_prunes_without_evidence_or_once_the_screen_is_whole():
    assert not implausible([], tasks=4, sd=0.5, threshold=0.1)
    assert not implausible([-3.0] * 4, tasks=4, sd=0.5, threshold=0.1)  # the screen's own decision then
    assert not implausible([-3.0], tasks=4, sd=0.0, threshold=0.1)  # no measured noise: no prediction


def frozen(values: dict[int, float], failed: list[int] = ()) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, intermediate_values=values,
                                     user_attrs={FAILED_TASKS_ATTR: list(failed)} if failed else {})


def test_the_pruner_pairs_steps_with_the_incumbents_tasks_and_leaves_failed_tasks_out():
    pruner = PairedFutilityPruner(threshold=0.1)
    assert not pruner.prune(None, frozen({0: 1.0}))  # nothing to compare with yet
    pruner.against(ScreenReference({0: 6.0, 1: 6.0, 2: 6.0, 3: 6.0}, sd=None))
    assert not pruner.prune(None, frozen({0: 1.0}))  # noise not measured
    pruner.against(ScreenReference({0: 6.0, 1: 6.0, 2: 6.0, 3: 6.0}, sd=0.5))
    assert pruner.prune(None, frozen({0: 1.0}))
    assert not pruner.prune(None, frozen({0: 0.0}, failed=[0]))  # a backend fault is no evidence
    assert not pruner.prune(None, frozen({0: 6.2}))
    # The incumbent's failed task is no evidence either: 3 comparable tasks, the variant's one below it ignored.
    pruner.against(ScreenReference({0: None, 1: 6.0, 2: 6.0, 3: 6.0}, sd=0.5))
    assert not pruner.prune(None, frozen({0: 0.0}))


class Always(optuna.pruners.BasePruner):
    """A fallback that prunes whatever it is asked about, and counts the questions."""

    def __init__(self):
        self.asked = 0

    def prune(self, study, trial) -> bool:
        self.asked += 1
        return True


def test_without_seed_noise_it_leaves_the_decision_to_its_fallback():
    fallback = Always()
    pruner = PairedFutilityPruner(threshold=0.1, fallback=fallback)
    pruner.against(ScreenReference({0: 6.0, 1: 6.0}, sd=0.0))  # the seeds changed no score
    assert pruner.prune(None, frozen({0: 6.0})) and fallback.asked == 1
    pruner.against(ScreenReference({0: 6.0, 1: 6.0}, sd=None))  # noise_repeats = 1: not measured
    assert pruner.prune(None, frozen({0: 6.0})) and fallback.asked == 2
    pruner.against(ScreenReference({0: 6.0, 1: 6.0}, sd=0.5))  # measured: its own prediction, not the fallback's
    assert not pruner.prune(None, frozen({0: 6.0})) and fallback.asked == 2
    assert not PairedFutilityPruner(threshold=0.1).prune(None, frozen({0: 1.0}))  # no fallback: never


def test_it_is_the_default_and_wilcoxon_an_option(loop_workspace):
    settings = load_workspace(loop_workspace()).settings
    pruner = default_pruner(settings)
    assert settings.search.pruner == "paired" and isinstance(pruner, PairedFutilityPruner)
    assert isinstance(pruner.fallback, optuna.pruners.WilcoxonPruner)
    root = loop_workspace(extra='\n[search]\npruner = "wilcoxon"\n')
    assert isinstance(default_pruner(load_workspace(root).settings), optuna.pruners.WilcoxonPruner)


def test_the_setting_picks_it_with_the_keep_threshold(loop_workspace):
    root = loop_workspace(keep_threshold=0.3, extra='\n[search]\npruner = "paired"\n')
    pruner = default_pruner(load_workspace(root).settings)
    assert isinstance(pruner, PairedFutilityPruner) and pruner.threshold == pytest.approx(0.3)
    assert pruner.z == 1.645  # prune_confidence 0.95, the default


def test_prune_confidence_sets_how_sure_the_pruner_must_be_and_continues_the_study(loop_workspace):
    default = load_workspace(loop_workspace())
    bolder = load_workspace(loop_workspace(extra="\n[search]\nprune_confidence = 0.8\n"))
    assert default_pruner(bolder.settings).z == pytest.approx(0.842)
    # A stop rule's level, not the space: the study (its name, its trials) goes on under another level.
    assert identity.study_name(bolder) == identity.study_name(default)
    # Half a point under the incumbent on the first of 4 tasks (sd 0.5): stopped at 80%, not at 95%.
    reference = ScreenReference({0: 6.0, 1: 6.0, 2: 6.0, 3: 6.0}, sd=0.5)
    for settings, stops in ((default.settings, False), (bolder.settings, True)):
        pruner = default_pruner(settings)
        pruner.against(reference)
        assert pruner.prune(None, frozen({0: 5.5})) is stops


@pytest.mark.parametrize(("pruner", "screened"), [("paired", 1), ("wilcoxon", 3)])
def test_a_hopeless_variant_is_stopped_after_its_first_task(loop_workspace, pruner, screened):
    extra = ('\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\nnoise_repeats = 2\n'
             f'pruner = "{pruner}"\n')
    root = producer_only(loop_workspace(search_tasks=3, holdout_tasks=1, extra=extra))
    rng = random.Random(5)  # the judge's seed-to-seed wobble, so that the incumbent's noise is measured
    pipeline = ScriptedPipeline(variants=["Answer worse.\n"],
                                score=lambda answer, task: (1 if "worse" in answer else 8) + rng.choice([0, 1]))
    summary = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=1)
    store = Store.for_workspace(root / "runs")
    row = store.trial(summary.study, 1)
    tasks = store.task_results(row["evaluation_id"])
    # The paired pruner stops it after one task; Optuna's Wilcoxon pruner cannot before the 4th.
    assert len(tasks) == screened
    assert row["status"] == ("pruned" if pruner == "paired" else "discard")


def test_a_variant_pruned_against_this_incumbent_is_not_evaluated_again(loop_workspace):
    # Seed 2 of the shape-first bench evaluated one variant three times, pruned each time (~55 of 300 calls).
    extra = ('\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\nnoise_repeats = 2\n'
             'pruner = "paired"\n')
    root = producer_only(loop_workspace(search_tasks=3, holdout_tasks=1, extra=extra))
    rng = random.Random(5)
    pipeline = ScriptedPipeline(variants=["Answer worse.\n", "Answer worse.\n"],
                                score=lambda answer, task: (1 if "worse" in answer else 8) + rng.choice([0, 1]))
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    study.optimize(n_trials=1)
    producer_calls = pipeline.calls_by_role["producer"]
    [again] = study.optimize(n_trials=1).outcomes
    assert again.status == "pruned"
    assert again.description.startswith("identical to trial 1, pruned against this incumbent")
    assert pipeline.calls_by_role["producer"] == producer_calls  # no task ran
    store = Store.for_workspace(root / "runs")
    first, second = store.trial(study.name, 1), store.trial(study.name, 2)
    assert first["status"] == "pruned"
    assert first["incumbent_before"] == pytest.approx(store.trial(study.name, 0)["objective"])
    assert second["evaluation_id"] is None and second["variant_hash"] == first["variant_hash"]
