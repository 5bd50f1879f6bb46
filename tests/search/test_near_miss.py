"""A challenger that ends inside the noise is followed by its crossover with the incumbent (follow_near_miss)."""

from __future__ import annotations

import optuna
from scripted import ScriptedPipeline, producer_only
from test_shape_first import waiting
from test_shared import STUDY, shared_setup
from test_shared import study as worker

from autoresearch.search.near_miss import NearMiss, follow, followed
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace

# One parent only (the incumbent): a crossover has a second version only where a near-miss gives it one.
SPACE = ('\n[search]\noperators = ["rephrase", "crossover"]\nproposer_temperatures = [0.5]\nnoise_repeats = 1\n'
         'pruner = "none"\nparents = 1\n')
NEAR_MISS = "Answer. Mark it!\n"


def mixed(answer: str, task: str) -> int:
    """'Mark' gains 3 judge points on tasks 0 and 1 and loses 4 on task 2: a mean above the threshold whose
    spread leaves its lower bound below zero."""
    if "Mark" not in answer:
        return 5
    return 1 if "Task number 2." in task else 8


def run(loop_workspace, extra: str = "", trials: int = 2):
    root = producer_only(loop_workspace(search_tasks=3, extra=SPACE + extra))
    pipeline = ScriptedPipeline(variants=[NEAR_MISS, "Answer plainly.\n"], score=mixed)
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    return root, pipeline, study, study.optimize(n_trials=trials)


def test_a_near_miss_is_followed_by_its_crossover_with_the_incumbent_made_by_rule(loop_workspace):
    root, pipeline, study, summary = run(loop_workspace)
    near, cross = summary.outcomes
    assert near.status == "discard" and near.description.startswith("inside the noise")
    assert near.description.endswith("; its crossover with the incumbent is the next trial") and near.crossover_next
    assert cross.operator == "crossover"
    assert cross.description.endswith(
        "; [rule] crossover: added 1 sentence(s) from the other parent (trial 1, which ended inside the noise)")
    # The crossover came from the near-miss's text (the only parent is the incumbent) and by rule: one proposer call.
    assert pipeline.calls_by_role["proposer"] == 1
    texts = {r["number"]: r["variant_text"] for r in Store.for_workspace(root / "runs").trials(summary.study)}
    assert (texts[1], texts[2]) == (NEAR_MISS, "Answer.\nMark it!\n")
    # The follow-up ended inside the noise too, and is not followed: its crossover would add nothing.
    assert cross.status == "discard" and cross.description.startswith("inside the noise")
    assert "next trial" not in cross.description
    assert waiting(study) == [] and summary.queued_follow_ups == []


def test_follow_near_miss_off_queues_nothing(loop_workspace):
    _root, _pipeline, study, summary = run(loop_workspace, "follow_near_miss = false\n", trials=1)
    [near] = summary.outcomes
    assert near.description.startswith("inside the noise") and "next trial" not in near.description
    assert not near.crossover_next
    assert waiting(study) == []


def test_only_a_race_ended_inside_the_noise_and_not_a_follow_up_is_followed():
    study = optuna.create_study()
    trial = study.ask()
    for stage in ("screen", "confirm", "holdout", "kept"):
        assert not follow(trial, stage, "producer.md", "text", ["crossover"])
    assert not follow(trial, "bound", "producer.md", "text", ["rephrase"])  # no crossover in the search space
    assert study.get_trials(states=(optuna.trial.TrialState.WAITING,)) == []
    assert follow(trial, "bound", "producer.md", "Answer. Mark it!", ["rephrase", "crossover"])
    [queued] = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert queued.system_attrs["fixed_params"] == {"file": "producer.md", "operator": "crossover", "parent": 0}
    follow_up = study.ask()
    # The queued trial carries the near-miss's text: in a shared study another worker may run it.
    assert followed(follow_up) == NearMiss(trial.number, "Answer. Mark it!")
    assert followed(trial) is None
    assert not follow(follow_up, "bound", "producer.md", "Answer.\nMark it!", ["crossover"])


def test_a_queued_follow_up_outlives_the_run_that_queued_it(loop_workspace):
    # The run stops after the near-miss (its trial budget spent): the next run's first trial is the follow-up.
    root, pipeline, _study, summary = run(loop_workspace, trials=1)
    [near] = summary.outcomes
    assert near.description.endswith("; its crossover with the incumbent is the next trial")
    assert summary.queued_follow_ups == [1]  # the summary tells the user the follow-up waits for the next run
    again = Study(load_workspace(root), backend_factory=pipeline.factory, seed=2, backoff_s=0)
    resumed = again.optimize(n_trials=1)
    [cross] = resumed.outcomes
    assert resumed.queued_follow_ups == []
    assert cross.operator == "crossover" and cross.description.endswith(
        "[rule] crossover: added 1 sentence(s) from the other parent (trial 1, which ended inside the noise)")
    assert pipeline.calls_by_role["proposer"] == 1  # the near-miss's; the crossover is a rule


def test_in_a_shared_study_another_worker_runs_the_follow_up_from_the_queued_trial_alone(loop_workspace, tmp_path):
    # Worker B's store has none of A's trials: the near-miss's text can only come from the queued trial.
    _remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2, search_tasks=3, extra=SPACE)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    [near] = worker(a_root, ScriptedPipeline(variants=[NEAR_MISS], score=mixed), storage).optimize(n_trials=1).outcomes
    assert near.description.endswith("; its crossover with the incumbent is the next trial")
    b_pipeline = ScriptedPipeline(variants=["Answer plainly.\n"], score=mixed)
    [cross] = worker(b_root, b_pipeline, storage).optimize(n_trials=1).outcomes
    assert cross.operator == "crossover" and cross.description.endswith(
        "[rule] crossover: added 1 sentence(s) from the other parent (trial 1, which ended inside the noise)")
    assert b_pipeline.calls_by_role.get("proposer", 0) == 0
    [row] = [r for r in Store.for_workspace(b_root / "runs").trials(STUDY) if r["operator"] == "crossover"]
    assert row["variant_text"] == "Answer.\nMark it!\n"
