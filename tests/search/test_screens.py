"""Parents from a per-task Pareto front: a variant best on some task stays a possible parent."""

from __future__ import annotations

import json

from scripted import ONLY_PRODUCER, ScriptedPipeline, producer_only

from autoresearch.search.screens import pareto_front, screen_scores
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.store.queries import screen_task_rows
from autoresearch.testing import DIMENSIONS
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


def test_tasks_with_the_least_seed_noise_run_first_and_unmeasured_ones_last():
    from autoresearch.search.screens import quiet_first

    assert quiet_first({"a": 0.9, "b": 0.1, "c": 0.4}, ["a", "b", "c"]) == ["b", "c", "a"]
    assert quiet_first({"c": 0.4, "b": 0.4}, ["a", "b", "c"]) == ["b", "c", "a"]  # ties in suite order; a unmeasured
    assert quiet_first({}, ["a", "b", "c"]) == ["a", "b", "c"]  # before the noise measurement: the suite's order


class SeedMovesT0(ScriptedPipeline):
    """The judge gives task t0 its seed mod 3 plus 5, task t1 a steady 5 plus the answer's '!' marks."""

    def respond(self, request):
        if self.role_of(request) != "evaluator":
            return super().respond(request)
        user = request.messages[-1].content
        value = 5 + (request.seed % 3 if "number 0" in user else user.count("!"))
        return json.dumps({**{d: value for d in DIMENSIONS}, "critique": "fine"})


def test_a_screen_runs_its_quietest_task_first_and_reports_it_at_its_suite_step(loop_workspace):
    import optuna

    extra = ONLY_PRODUCER.replace("noise_repeats = 1", "noise_repeats = 3") + 'pruner = "none"\n'
    root = producer_only(loop_workspace(search_tasks=2, holdout_tasks=1, extra=extra))
    study = Study(load_workspace(root), backend_factory=SeedMovesT0(variants=["Answer!!!\n"]).factory, seed=1,
                  backoff_s=0)
    summary = study.optimize(n_trials=1)
    store = Store.for_workspace(root / "runs")
    ran = [[r["task_id"] for r in store.task_results(store.trial(summary.study, n)["evaluation_id"])]
           for n in (0, 1)]
    assert ran[0] == ["t0", "t1"]  # the baseline, before any noise was measured: the suite's order
    assert ran[1] == ["t1", "t0"]  # the seeds moved t0 by a point each time, t1 not at all
    trial = optuna.load_study(study_name=summary.study, storage=study.storage).trials[1]
    # Each task at its suite index, whatever ran first: t1 (judged 5 + 3 marks) at step 1 above t0 (5 + 7 mod 3).
    assert sorted(trial.intermediate_values) == [0, 1]
    assert trial.intermediate_values[1] > trial.intermediate_values[0]

def test_show_says_whether_a_pareto_parent_held_the_incumbents_file(loop_workspace):
    from autoresearch.cli.review_views import header
    from autoresearch.review.trial_detail import trial_detail

    extra = ('\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\nnoise_repeats = 1\n'
             'pruner = "none"\n')
    root = loop_workspace(search_tasks=2, holdout_tasks=1, extra=extra)

    def score(answer, task):  # "special" is brilliant on task 0 and poor on task 1: a discard, on the front
        if "special" in answer:
            return 9 if "number 0" in task else 1
        return 6

    planner = "Plan two short steps, then check each against the task before the answer is written.\n"
    pipeline = ScriptedPipeline(variants=["Answer, special.\n", "Answer, special, twice.\n", planner], score=score)
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    study.optimize(n_trials=0)  # the baseline alone
    # Trial 1 from the baseline; trials 2 and 3 from trial 1 (the front's first after the incumbent).
    for file, parent in (("producer.md", 0), ("producer.md", 1), ("planner.md", 1)):
        study.optuna.enqueue_trial({"file": file, "operator": "rephrase", "parent": parent})
    summary = study.optimize(n_trials=3)
    assert [o.status for o in summary.outcomes] == ["discard", "discard", "discard"]
    store = Store.for_workspace(root / "runs")
    details = {n: trial_detail(store, root, summary.study, n) for n in (1, 2, 3)}
    assert [details[n].parent_trial for n in (2, 3)] == [1, 1] and details[3].before_trial == 0
    # Trial 2 rewrote trial 1's own producer.md: its diff against the incumbent holds trial 1's change too.
    assert details[2].parent_held_incumbents_file is False
    assert "rewrote trial 1's own producer.md, not the incumbent's" in header(details[2]).plain
    # Trial 3 rewrote planner.md, which trial 1 (it changed producer.md) held as the incumbent's.
    assert details[3].parent_held_incumbents_file is True
    assert "started from trial 1 (a Pareto parent), whose planner.md is the incumbent's" in header(details[3]).plain
    assert details[1].parent_held_incumbents_file is None  # its parent was the incumbent
