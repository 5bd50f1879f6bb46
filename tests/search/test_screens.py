"""Parents from a per-task Pareto front: a variant best on some task stays a possible parent."""

from __future__ import annotations

from scripted import ONLY_PRODUCER, ScriptedPipeline, producer_only

from autoresearch.search.screens import pareto_front, screen_scores
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.store.queries import screen_task_rows
from autoresearch.workspace.config import ScoringConfig
from autoresearch.workspace.workspace import load_workspace


def test_the_front_holds_every_trial_best_on_some_task_most_wins_first():
    scores = {0: {"a": 5, "b": 5, "c": 5}, 1: {"a": 7, "b": 2, "c": 2}, 2: {"a": 4, "b": 4, "c": 4},
              3: {"a": 6, "b": 6, "c": 6}, 4: {"a": 1, "b": 1, "c": 6}}
    # 1 wins a; 3 wins b and ties c with 4; 0 and 2 win nothing (2 is beaten everywhere by 3).
    assert pareto_front(scores) == [3, 1, 4]
    assert pareto_front({}) == []


def row(number, task, score, failed=0):
    return {"number": number, "task_id": task, "score_r1": score, "criteria_passed": 1, "criteria_total": 1,
            "failed": failed}


def test_only_whole_faultless_screens_are_compared():
    rows = [row(0, "a", 5), row(0, "b", 5), row(1, "a", 9),  # 1: pruned after one task
            row(2, "a", 9), row(2, "b", 0, failed=1)]  # 2: a task failed (no evidence)
    assert set(screen_scores(rows, ["a", "b"], ScoringConfig())) == {0}


def test_a_discarded_variant_best_on_one_task_becomes_a_parent(loop_workspace):
    extra = ONLY_PRODUCER + 'pruner = "none"\n'
    root = producer_only(loop_workspace(search_tasks=2, holdout_tasks=1, extra=extra))

    def score(answer, task):  # the variant is brilliant on task 0 and poor on task 1: a discard overall
        if "special" in answer:
            return 9 if "number 0" in task else 1
        return 6

    pipeline = ScriptedPipeline(variants=["Answer, special.\n"], score=score)
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    summary = study.optimize(n_trials=1)
    assert [o.status for o in summary.outcomes] == ["discard"]
    store = Store.for_workspace(root / "runs")
    front = pareto_front(screen_scores(screen_task_rows(store, summary.study), ["t0", "t1"],
                                       study.settings.scoring))
    assert front == [0, 1]  # each wins one task; the baseline's mean is higher
    parents = study.incumbents.parents(study.incumbents.current(), 3, front)
    assert [p.trial for p in parents] == [0, 1]
    assert parents[1].instructions["producer.md"] == "Answer, special.\n"


def test_tasks_that_vary_most_between_variants_run_first():
    from autoresearch.search.screens import informative_order

    scores = {0: {"a": 5, "b": 5, "c": 4}, 1: {"a": 5, "b": 1, "c": 5}, 2: {"a": 5, "b": 9, "c": 4}}
    assert informative_order(scores, ["a", "b", "c"]) == ["b", "c", "a"]
    assert informative_order({0: {"a": 1, "b": 9}}, ["a", "b"]) == ["a", "b"]  # one screen: no spread yet


def test_a_screen_runs_its_most_telling_task_first_and_reports_it_at_its_suite_step(loop_workspace):
    import optuna

    extra = ONLY_PRODUCER + 'pruner = "none"\n'
    root = producer_only(loop_workspace(search_tasks=2, holdout_tasks=1, extra=extra))
    # Task t0 scores 5 whatever the instructions; t1 follows the number of '!' in them.
    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!!!!\n", "Answer!!\n"],
                                score=lambda answer, task: 5 if "number 0" in task else 2 + answer.count("!"))
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    summary = study.optimize(n_trials=3)
    store = Store.for_workspace(root / "runs")
    ran = [[r["task_id"] for r in store.task_results(store.trial(summary.study, n)["evaluation_id"])]
           for n in (0, 1, 3)]
    assert ran[0] == ["t0", "t1"] and ran[1] == ["t0", "t1"]  # fewer than two screens: the suite's order
    assert ran[2] == ["t1", "t0"]  # by then t1 has told the variants apart, t0 never has
    trial = optuna.load_study(study_name=summary.study, storage=study.storage).trials[3]
    # Each task at its suite index, whatever ran first: t0 (judged 5) at step 0 above t1 (judged 2 + 2 marks).
    assert sorted(trial.intermediate_values) == [0, 1]
    assert trial.intermediate_values[0] > trial.intermediate_values[1]
