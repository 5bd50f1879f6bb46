"""A run killed (os._exit, as hard as kill -9) at each critical point, then resumed: git, store, results.tsv
and Optuna agree again, no finished trial is lost or re-run, and the study goes on.

Each test forks a child that runs the study and dies at one exact point; the parent resumes in process
and checks the workspace with the same checks as scripts/crash_test.py.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import sys
from pathlib import Path

import pytest
from scripted import ONLY_PRODUCER, ScriptedPipeline, git, producer_only

from autoresearch.search.recovery import Recovery
from autoresearch.search.results import ResultsFile
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.versioning import InstructionRepo
from autoresearch.workspace.workspace import load_workspace

KILLED = 9
_spec = importlib.util.spec_from_file_location(
    "crash_test", Path(__file__).resolve().parents[2] / "scripts" / "crash_test.py")
crash_test = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crash_test)


def die() -> None:
    sys.stdout.flush()
    os._exit(KILLED)


def run_and_die(root, variants, arm, n_trials=3, score=None) -> None:
    """Run the study in a forked child that arm() has set up to die at one point; assert it died there."""
    def child():
        arm()
        pipeline = ScriptedPipeline(variants=variants, score=score)
        Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=n_trials)
        os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(120)
    assert process.exitcode == KILLED, "the child did not reach the kill point"


def resume(root, variants, n_trials=1):
    pipeline = ScriptedPipeline(variants=variants)
    return Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(
        n_trials=n_trials)


def assert_consistent(root, before=None):
    assert crash_test.instant_violations(root) == []
    violations, snapshot = crash_test.settled_violations(root, before or {})
    assert violations == []
    return snapshot


def statuses(root, summary):
    return [r["status"] for r in Store.for_workspace(root / "runs").trials(summary.study)]


@pytest.fixture
def root(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    # The crash test's checks expect the user's file and a producer.md that starts as "Answer.".
    (root / "notes.txt").write_text("the user's own uncommitted file\n")
    return root


def test_killed_between_the_commit_and_its_record(root):
    def arm():
        real = Store.finish_trial

        def finish(self, study, number, status, **fields):
            if status == "keep":
                die()  # the commit exists; the store still says "running"
            return real(self, study, number, status, **fields)
        Store.finish_trial = finish

    run_and_die(root, ["Answer!!\n"], arm)
    assert "Autoresearch-Trial: 1" in git(root, "log", "-1", "--format=%B")
    summary = resume(root, ["Answer!!!\n"])
    assert statuses(root, summary) == ["baseline", "keep", "keep"]
    row = Store.for_workspace(root / "runs").trial(summary.study, 1)
    assert row["commit_sha"] == git(root, "rev-parse", "HEAD~1").strip()
    assert row["composite"] is not None and row["holdout_composite"] is not None
    assert any("recorded as keep" in n for n in summary.notes)
    assert any("stale lock" in n for n in summary.notes)
    assert_consistent(root)


def test_killed_after_writing_the_file_before_the_commit(root):
    def arm():
        InstructionRepo._git_commit = lambda self, rel, subject, body: die()

    run_and_die(root, ["Answer!!\n"], arm)
    assert (root / "instructions" / "producer.md").read_text() == "Answer!!\n"  # the file, not the commit
    summary = resume(root, ["Answer!!!\n"])
    assert statuses(root, summary) == ["baseline", "interrupted", "keep"]
    assert any("restored instructions/producer.md" in n for n in summary.notes)
    assert (root / "instructions" / "producer.md").read_text() == "Answer!!!\n"
    assert_consistent(root)


def test_killed_before_the_results_row(root):
    def arm():
        real = ResultsFile.write

        def write(self, row):
            if row["number"] == 1:
                die()
            return real(self, row)
        ResultsFile.write = write

    run_and_die(root, ["Answer, please.\n"], arm)  # a discard
    summary = resume(root, ["Answer!!\n"])
    assert statuses(root, summary) == ["baseline", "discard", "keep"]
    lines = (root / "runs" / "results.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines[1:]] == ["0", "1", "2"]
    assert_consistent(root)


def test_killed_before_optuna_is_told(root):
    def arm():
        real = Recovery.tell

        def tell(self, row):
            if row["number"] == 1:
                die()
            return real(self, row)
        Recovery.tell = tell

    run_and_die(root, ["Answer!!\n"], arm)
    summary = resume(root, ["Answer!!!\n"])
    assert statuses(root, summary) == ["baseline", "keep", "keep"]
    assert_consistent(root)


def test_killed_mid_evaluation_then_a_torn_results_row(root):
    judged = {"n": 0}

    def score(answer, task):
        judged["n"] += 1
        if judged["n"] == 4:  # the second search task of trial 1
            die()
        return answer.count("!")

    run_and_die(root, ["Answer!!\n"], lambda: None, score=score)
    with (root / "runs" / "results.tsv").open("a") as f:
        f.write("1\tabc\t3.1")  # as if a kill had cut a row short
    summary = resume(root, ["Answer!!!\n"])
    assert statuses(root, summary) == ["baseline", "interrupted", "keep"]
    assert [o.number for o in summary.outcomes] == [2]
    store = Store.for_workspace(root / "runs")
    assert [e["status"] for e in store.trial_evaluations(summary.study, 1)] == ["interrupted"]
    assert_consistent(root)


def test_killed_during_the_baseline(root):
    def score(answer, task):
        die()

    run_and_die(root, [], lambda: None, score=score)
    summary = resume(root, ["Answer!!\n"])
    assert statuses(root, summary) == ["interrupted", "baseline", "keep"]
    assert summary.baseline_composite is not None
    assert_consistent(root)


def test_killed_after_optuna_asked_before_the_store_knew(root):
    def arm():
        real = Store.begin_trial

        def begin(self, study, number, **fields):
            if number == 1:
                die()
            return real(self, study, number, **fields)
        Store.begin_trial = begin

    run_and_die(root, [], arm)
    summary = resume(root, ["Answer!!\n"])
    assert statuses(root, summary) == ["baseline", "interrupted", "keep"]
    assert_consistent(root)


def test_a_user_edit_is_never_taken_for_a_crash(root):
    def arm():
        InstructionRepo._git_commit = lambda self, rel, subject, body: die()

    run_and_die(root, ["Answer!!\n"], arm)
    (root / "instructions" / "producer.md").write_text("My own edit.\n")  # the user, after the crash
    from autoresearch.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match="producer.md: uncommitted changes"):
        resume(root, ["Answer!!!\n"])
    assert (root / "instructions" / "producer.md").read_text() == "My own edit.\n"


def test_a_keep_whose_commit_is_gone_becomes_interrupted(root):
    summary = resume(root, ["Answer!!\n"])
    assert statuses(root, summary) == ["baseline", "keep"]
    git(root, "reset", "-q", "--hard", "HEAD~1")  # the commit is no longer on the study branch
    (root / "notes.txt").write_text("the user's own uncommitted file\n")
    again = resume(root, ["Answer!!!\n"])
    assert statuses(root, again) == ["baseline", "interrupted", "keep"]
    assert any("not on" in n for n in again.notes)

