"""evaluate_tasks: one evaluation row, every call and task result in the store, pruning and interrupts."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from autoresearch.errors import ModelNotFound
from autoresearch.evaluation import score_suite
from autoresearch.pipeline.harness import Harness
from autoresearch.pipeline.runner import evaluate_tasks, staged_blocks, task_score
from autoresearch.store import Store

pytestmark = pytest.mark.usefixtures("no_counters")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "runs" / "autoresearch.db")
    yield s
    s.close()


def make_harness(workspace, kit, script):
    factory = kit.FakeFactory({"planner": script, "producer": script, "evaluator": script}, in_process=False)
    return Harness(workspace, kit.distinct_portfolio(), backend_factory=factory, backoff_s=0.0), factory


def run(workspace, harness, store, tasks, **kwargs):
    return evaluate_tasks(workspace, harness, store, tasks, kind="eval", portfolio="default",
                          instructions=workspace.instructions, split="search", **kwargs)


def test_evaluation_is_complete_with_composite_and_every_call_stored(workspace, kit, store):
    rubric = workspace.rubric
    script = kit.Script(rubric, judge=[kit.judge_reply(rubric, 4), kit.judge_reply(rubric, 9), kit.judge_reply(rubric, 8)])
    h, factory = make_harness(workspace, kit, script)
    tasks = workspace.suite.split("search")[:3]
    result = run(workspace, h, store, tasks)

    assert result.status == "complete" and len(result.tasks) == 3
    expected = score_suite([task_score(t) for t in result.tasks], workspace.settings.scoring)
    assert result.composite == pytest.approx(expected.composite)
    assert result.score.judge_mean == pytest.approx((4 + 8 + 8) / 3)  # first-pass scores, not post-revision

    row = store.evaluation(result.evaluation_id)
    assert (row["status"], row["kind"], row["split"], row["portfolio"]) == ("complete", "eval", "search", "default")
    assert row["composite"] == pytest.approx(expected.composite)
    assert row["judge_mean"] == pytest.approx(expected.judge_mean)
    assert row["criteria_rate"] == pytest.approx(expected.criteria_rate)
    assert row["evaluation_hash"] == workspace.evaluation_hash()
    assert row["instructions_hash"] == workspace.instructions_hash()
    assert row["joules"] == pytest.approx(result.joules) and row["joules"] > 0
    assert row["energy_source"] == "estimate" and row["finished_at"] is not None
    assert store.conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 1

    calls = store.calls(result.evaluation_id)
    sent = sum(len(f.requests) for f in factory.fakes.values())
    assert len(calls) == sent == len(result.calls) == 3 * 3 + 2  # first task revised once: +revise +judge
    assert store.conn.execute("SELECT COUNT(*) FROM calls WHERE evaluation_id IS NOT ?",
                              (result.evaluation_id,)).fetchone()[0] == 0
    assert all(c["prompt_tokens"] > 0 and c["completion_tokens"] > 0 and c["joules"] > 0 for c in calls)
    assert [c["task_id"] for c in calls][:5] == [tasks[0].id] * 5

    stored = store.task_results(result.evaluation_id)
    assert [r["task_id"] for r in stored] == [t.id for t in tasks]
    assert [r["revisions"] for r in stored] == [1, 0, 0]
    assert stored[0]["score_r1"] == 4.0 and stored[0]["score_final"] == 9.0


def test_failed_task_counts_as_zero_in_the_composite(workspace, kit, store):
    rubric = workspace.rubric
    producer = [kit.COMMIT_TIPS_ANSWER, ModelNotFound]
    script = kit.Script(rubric, producer=producer, judge=kit.judge_reply(rubric, 8))
    h, _ = make_harness(workspace, kit, script)
    result = run(workspace, h, store, workspace.suite.split("search")[:2])
    assert result.status == "complete"
    assert [t.failed for t in result.tasks] == [False, True]
    assert result.score.judge_mean == pytest.approx(4.0) and result.score.failed_tasks == 1
    (ok_row, failed_row) = store.task_results(result.evaluation_id)
    assert failed_row["failed"] == 1 and failed_row["failure_mode"] == "model_not_found"
    assert failed_row["criteria_passed"] == 0
    assert store.evaluation(result.evaluation_id)["composite"] == pytest.approx(result.composite)


def test_on_task_returning_false_prunes(workspace, kit, store):
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 9))
    h, _ = make_harness(workspace, kit, script)
    seen = []

    def on_task(index, result):
        seen.append((index, result.task_id))
        return index < 1  # stop after the second task

    tasks = workspace.suite.split("search")
    assert len(tasks) >= 3
    result = run(workspace, h, store, tasks, on_task=on_task)
    assert result.status == "pruned"
    assert seen == [(0, tasks[0].id), (1, tasks[1].id)]
    assert [t.task_id for t in result.tasks] == [tasks[0].id, tasks[1].id]
    row = store.evaluation(result.evaluation_id)
    assert row["status"] == "pruned" and row["composite"] == pytest.approx(result.composite)
    assert len(store.task_results(result.evaluation_id)) == 2
    assert script.counts["planner"] == 2  # the third task never ran


def test_a_stop_asked_for_after_the_last_task_leaves_the_evaluation_complete(workspace, kit, store):
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 9))
    h, _ = make_harness(workspace, kit, script)
    tasks = workspace.suite.split("search")[:2]
    seen = []

    def on_task(index, result):
        seen.append(index)
        return index != len(tasks) - 1  # Wilcoxon's pruner can say "prune" once every task has run

    result = run(workspace, h, store, tasks, on_task=on_task)
    assert seen == [0, 1] and result.status == "complete"
    assert store.evaluation(result.evaluation_id)["status"] == "complete"


def test_interrupt_mid_suite_marks_the_evaluation_interrupted_and_keeps_finished_tasks(workspace, kit, store):
    script = kit.Script(workspace.rubric, producer=[kit.COMMIT_TIPS_ANSWER, KeyboardInterrupt],
                        judge=kit.judge_reply(workspace.rubric, 9))
    h, _ = make_harness(workspace, kit, script)
    tasks = workspace.suite.split("search")[:3]
    with pytest.raises(KeyboardInterrupt):
        run(workspace, h, store, tasks)
    (row,) = store.conn.execute("SELECT * FROM evaluations").fetchall()
    assert row["status"] == "interrupted" and row["finished_at"] is not None
    results = store.task_results(row["id"])
    assert [r["task_id"] for r in results] == [tasks[0].id]
    assert row["composite"] is not None and row["judge_mean"] == pytest.approx(9.0)
    # The calls made before the interrupt were committed as they happened, the second task's planner call too.
    calls = store.calls(row["id"])
    assert [c["task_id"] for c in calls] == [tasks[0].id] * 3 + [tasks[1].id]


def test_interrupt_before_any_task_finishes_leaves_no_composite(workspace, kit, store):
    script = kit.Script(workspace.rubric, planner=KeyboardInterrupt)
    h, _ = make_harness(workspace, kit, script)
    with pytest.raises(KeyboardInterrupt):
        run(workspace, h, store, workspace.suite.split("search")[:2])
    (row,) = store.conn.execute("SELECT * FROM evaluations").fetchall()
    assert row["status"] == "interrupted" and row["composite"] is None
    assert store.task_results(row["id"]) == []


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt here, as in a terminal (a suite under nohup or a shell's background has it
    ignored), and another thread is alive, as the embedded model's are: the kernel hands a process's signal to
    any thread that does not block it, so holding it back in the main thread alone would not do."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    done = threading.Event()
    idle = threading.Thread(target=done.wait, daemon=True)
    idle.start()
    yield
    done.set()
    idle.join()
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_stop_while_the_evaluation_is_written_leaves_it_interrupted_not_running(workspace, kit, store, monkeypatch):
    # Seen under load: a SIGTERM that landed inside begin_evaluation (after its commit) left a row 'running'.
    begin = store.begin_evaluation

    def begin_then_stopped(**kwargs):
        evaluation_id = begin(**kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered before the id is returned
        return evaluation_id

    monkeypatch.setattr(store, "begin_evaluation", begin_then_stopped)
    h, factory = make_harness(workspace, kit, kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 9)))
    with pytest.raises(KeyboardInterrupt):
        run(workspace, h, store, workspace.suite.split("search")[:2])
    (row,) = store.conn.execute("SELECT * FROM evaluations").fetchall()
    assert row["status"] == "interrupted" and store.task_results(row["id"]) == []


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_stop_while_the_evaluation_is_finished_leaves_it_interrupted_not_running(workspace, kit, store, monkeypatch):
    # Seen under load: `eval --repeats` stopped while its last repeat's row was being finished left it 'running'.
    finish = store.finish_evaluation

    def stopped_then_finish(evaluation_id, **kwargs):
        if kwargs["status"] == "complete":
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, arriving before the row is written
        return finish(evaluation_id, **kwargs)

    monkeypatch.setattr(store, "finish_evaluation", stopped_then_finish)
    h, factory = make_harness(workspace, kit, kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 9)))
    with pytest.raises(KeyboardInterrupt):
        run(workspace, h, store, workspace.suite.split("search")[:2])
    (row,) = store.conn.execute("SELECT * FROM evaluations").fetchall()
    assert row["status"] == "interrupted" and len(store.task_results(row["id"])) == 2


def test_an_error_that_is_not_a_model_failure_marks_the_evaluation_failed(workspace, kit, store):
    script = kit.Script(workspace.rubric, producer=[kit.COMMIT_TIPS_ANSWER, RuntimeError("bug")],
                        judge=kit.judge_reply(workspace.rubric, 9))
    h, _ = make_harness(workspace, kit, script)
    with pytest.raises(Exception, match="bug"):
        run(workspace, h, store, workspace.suite.split("search")[:3])
    (row,) = store.conn.execute("SELECT * FROM evaluations").fetchall()
    assert row["status"] == "failed"
    assert len(store.task_results(row["id"])) == 1


@pytest.mark.parametrize("n, sizes", [(0, []), (1, [1]), (2, [2]), (3, [2, 1]), (4, [2, 2]), (8, [2, 2, 4]),
                                      (12, [2, 2, 4, 4]), (16, [2, 2, 4, 8])])
def test_staged_blocks_start_at_two_tasks_and_double_covering_the_suite(n, sizes):
    # A pruner can stop a staged screen after 2 tasks; later blocks double, so an 8-task suite swaps in 3 cycles.
    assert staged_blocks(n) == sizes and sum(staged_blocks(n)) == n
