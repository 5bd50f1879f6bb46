"""The study's noise read from its evaluations: the baseline's search composite under each seed set evaluated
whole, in order; not a kept variant's sets, a partial re-run, a failed baseline or a set past a missing one."""

from __future__ import annotations

from autoresearch.pipeline.harness import TaskResult
from autoresearch.store import STORE_NAME, Store
from autoresearch.store.queries import measured_noise, noise_composites

STUDY = "s1"
TASKS = ("t1", "t2", "t3")


def evaluation(store: Store, *, trial: int, kind: str, repeat: int, composite: float, tasks=TASKS,
               variant: str = "base", status: str = "complete", split: str = "search") -> int:
    """One finished evaluation of `variant` with a task result per task."""
    eid = store.begin_evaluation(kind=kind, portfolio="default", portfolio_json="{}", instructions_hash="ih",
                                 evaluation_hash="eh", split=split, study=STUDY, trial=trial,
                                 variant_hash=variant, repeat=repeat)
    for task in tasks:
        store.record_task(eid, TaskResult(task_id=task, split=split, score_r1=5.0, score_final=5.0, dimensions={},
                                          checks=(), critique="", plan="", output_r1="", output="", revisions=0,
                                          seconds=0.1, calls=()))
    store.finish_evaluation(eid, status=status, composite=composite, judge_mean=5.0, criteria_rate=0.0,
                            joules=0.0, energy_source="estimate", seconds=0.1)
    return eid


def study_store(tmp_path) -> Store:
    store = Store(tmp_path / STORE_NAME)
    store.ensure_study(name=STUDY, workspace="ws", portfolio="default", portfolio_json="{}", evaluation_hash="eh",
                       branch="autoresearch/s1", storage="sqlite")
    return store


def trial(store: Store, number: int, status: str) -> None:
    store.begin_trial(STUDY, number)
    store.finish_trial(STUDY, number, status)


def test_the_noise_is_the_baselines_whole_seed_sets_in_order_and_nothing_else(tmp_path):
    store = study_store(tmp_path)
    trial(store, 0, "failed")  # a baseline that failed (too many tasks failed): not the study's baseline
    evaluation(store, trial=0, kind="baseline", repeat=0, composite=1.0)
    trial(store, 1, "baseline")
    evaluation(store, trial=1, kind="baseline", repeat=0, composite=4.0)
    evaluation(store, trial=1, kind="holdout", repeat=0, composite=3.0, split="holdout")
    evaluation(store, trial=1, kind="noise", repeat=1, composite=3.5)
    trial(store, 2, "keep")
    evaluation(store, trial=2, kind="trial", repeat=0, composite=6.0, variant="kept")
    evaluation(store, trial=3, kind="incumbent", repeat=2, composite=6.5, variant="kept")  # a kept variant's set
    evaluation(store, trial=3, kind="incumbent", repeat=2, composite=9.0, tasks=("t2",))  # a re-run of one task
    evaluation(store, trial=3, kind="incumbent", repeat=2, composite=8.0, status="interrupted")
    evaluation(store, trial=4, kind="incumbent", repeat=3, composite=3.9)  # past the missing set 2
    assert noise_composites(store, STUDY) == [4.0, 3.5]

    evaluation(store, trial=5, kind="incumbent", repeat=2, composite=3.7)  # a contender paid for set 2
    evaluation(store, trial=5, kind="incumbent", repeat=2, composite=3.6)  # a second worker's: the first counts
    assert noise_composites(store, STUDY) == [4.0, 3.5, 3.7, 3.9]
    assert measured_noise(store, STUDY).values == (4.0, 3.5, 3.7, 3.9)


def test_one_seed_set_is_no_noise_and_an_older_stores_noise_json_is_still_read(tmp_path):
    store = study_store(tmp_path)
    trial(store, 0, "baseline")
    evaluation(store, trial=0, kind="baseline", repeat=0, composite=4.0)
    assert noise_composites(store, STUDY) == [4.0] and measured_noise(store, STUDY) is None
    with store.conn:  # what an autoresearch before this query wrote, its evaluations without repeat or variant
        store.conn.execute("UPDATE evaluations SET variant_hash = NULL")
        store.conn.execute("UPDATE studies SET noise_json = '{\"values\": [4.0, 3.0], \"seeds\": [{}, {}]}'")
    assert noise_composites(store, STUDY) == [] and measured_noise(store, STUDY).values == (4.0, 3.0)


def test_a_worker_without_the_baseline_reads_the_noise_from_its_own_evaluations_of_the_baselines_instructions(
        tmp_path):
    store = study_store(tmp_path)  # a shared study's second worker: another worker ran the baseline
    evaluation(store, trial=3, kind="incumbent", repeat=0, composite=9.0, variant="other")  # a later incumbent
    evaluation(store, trial=4, kind="trial", repeat=0, composite=2.0)  # a contender identical to the baseline
    evaluation(store, trial=5, kind="incumbent", repeat=0, composite=4.0)
    evaluation(store, trial=5, kind="incumbent", repeat=1, composite=3.5)
    evaluation(store, trial=6, kind="incumbent", repeat=0, composite=4.4)  # a later re-evaluation: the first counts
    assert noise_composites(store, STUDY) == []  # no baseline trial here, and none recorded
    store.record_study_baseline(STUDY, {"trial": 0, "worker": "a", "composite": 4.1, "holdout_composite": None,
                                        "objective": 4.1, "variant_hash": "other"})
    assert measured_noise(store, STUDY) is None  # one set of the recorded variant is no noise
    store.record_study_baseline(STUDY, {"trial": 0, "worker": "a", "composite": 4.1, "holdout_composite": None,
                                        "objective": 4.1, "variant_hash": "base"})
    assert noise_composites(store, STUDY) == [4.0, 3.5]  # this worker's own measurement, not the ledger's 4.1

    trial(store, 7, "baseline")  # a baseline trial of its own (it started first): that one is the noise
    evaluation(store, trial=7, kind="baseline", repeat=0, composite=5.0, variant="own")
    evaluation(store, trial=7, kind="noise", repeat=1, composite=5.5, variant="own")
    assert noise_composites(store, STUDY) == [5.0, 5.5]
