"""Stopping a run: Ctrl-C (finish, or abandon the trial), timeout, and the CLI's `run` end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState
from scripted import (
    ONLY_PRODUCER,
    ScriptedPipeline,
    git,
    producer_only,
    scripted_run,
    wait_for_running_trial,
)

from autoresearch.cli.main import main
from autoresearch.errors import ConfigError
from autoresearch.lm import preflight
from autoresearch.pipeline import harness
from autoresearch.search.recovery import deferred_signals, optuna_outcome
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace


def test_request_stop_finishes_the_current_trial_then_stops(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!!\n", "Answer!!!\n"])
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)

    def observer(kind, data):
        if kind == "trial_started" and data["trial"] == 1:
            study.request_stop()  # as the CLI does on the first Ctrl-C

    study.observer = observer
    summary = study.optimize(n_trials=5)
    assert summary.stop_reason == "stopped"
    assert [o.number for o in summary.outcomes] == [1]
    # Finished, not abandoned: "Answer!" beats the baseline's "Answer." (judge 1 vs 0), so it is kept and committed.
    assert summary.outcomes[0].status == "keep" and summary.outcomes[0].commit
    assert summary.outcomes[0].delta == pytest.approx(0.7)


def test_interrupt_abandons_the_trial_cleanly_and_resume_goes_on(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    head_text = (root / "instructions" / "producer.md").read_bytes()
    state = {"judged": 0}

    def score(answer, task):
        state["judged"] += 1
        if state["judged"] == 4:  # the second search task of trial 1 (baseline judged 2 search + 1 holdout)
            raise KeyboardInterrupt
        return answer.count("!")

    pipeline = ScriptedPipeline(variants=["Answer!!\n", "Answer!!!\n"], score=score)
    summary = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=3)
    assert summary.stop_reason == "interrupted"
    assert [o.status for o in summary.outcomes] == []  # the abandoned trial is not a finished outcome
    store = Store.for_workspace(root / "runs")
    assert store.trial(summary.study, 1)["status"] == "interrupted"
    assert (root / "instructions" / "producer.md").read_bytes() == head_text
    assert git(root, "status", "--porcelain") == ""
    resumed = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=1)
    assert [o.number for o in resumed.outcomes] == [2]
    assert [r["status"] for r in store.trials(summary.study)][:2] == ["baseline", "interrupted"]


def test_timeout_stops_before_starting_a_trial(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=["Answer!\n"])
    summary = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(timeout_s=0)
    assert summary.stop_reason == "timeout"
    assert summary.outcomes == []
    assert summary.counts == {"baseline": 1}


def test_cli_run_prints_a_summary_and_commits_the_keep(loop_workspace, monkeypatch):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=["Answer!!!\n"])
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    result = CliRunner().invoke(main, ["run", "-w", str(root), "--trials", "1", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "trials (whole study): baseline 1  keep 1" in result.output
    assert "composite  3.000 → 5.100" in result.output
    # Not a terminal: a line as each trial and each of its stages starts, before the line of how it ended.
    lines = result.output.splitlines()
    started = [i for i, line in enumerate(lines) if line.startswith((
        "trial   0 started    baseline", "trial   0 …          holdout tasks", "trial   1 started    producer.md · "))]
    finished = [i for i, line in enumerate(lines) if line.startswith(("trial   0 baseline", "trial   1 keep"))]
    assert len(started) == 3 and len(finished) == 2, result.output
    assert started[0] < started[1] < finished[0] < started[2] < finished[1]
    assert "autoresearch: producer.md +2.10 over 2 tasks × 1 seed (75% bound +2.10)" in result.output
    assert git(root, "log", "-1", "--format=%s").strip() == "autoresearch: producer.md +2.10 over 2 tasks × 1 seed (75% bound +2.10)"


def test_cli_run_requires_a_stop_condition_and_refuses_dirty_files(loop_workspace, monkeypatch):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline()
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    result = CliRunner().invoke(main, ["run", "-w", str(root)])
    assert result.exit_code == 2 and "--trials" in result.output
    (root / "instructions" / "producer.md").write_text("edited\n")
    result = CliRunner().invoke(main, ["run", "-w", str(root), "--trials", "1"])
    assert result.exit_code == 2
    assert "producer.md: uncommitted changes" in result.output
    assert not (root / "runs" / "autoresearch.db").exists()


def test_a_run_that_could_keep_nothing_is_refused_with_exit_code_2_and_nothing_written(loop_workspace, monkeypatch):
    # 2 search tasks × 1 seed set (noise_repeats 1) are 2 differences; a 95% bound needs 5: no call is worth it.
    root = producer_only(loop_workspace(confidence=0.95, extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=["Answer!!!\n"])
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    result = CliRunner().invoke(main, ["run", "-w", str(root), "--trials", "3", "--seed", "1"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"error: {root / 'autoresearch.toml'}: scoring.confidence: nothing could be kept: a keep's bound rests on "
        "at most 2 independent differences (2 search tasks × 1 seed set ([search] noise_repeats)), and a 95% bound "
        "needs 5; add search tasks, raise noise_repeats or lower [scoring] confidence")
    assert pipeline.calls_by_role == {}  # not even the baseline
    assert sorted(p.name for p in (root / "runs").iterdir()) == [".gitkeep"]  # no store, no Optuna study


def greedy(root):
    """Every pipeline role at temperature 0: greedy decoding, the seeds change no reply."""
    config = root / "autoresearch.toml"
    config.write_text(config.read_text().replace("temperature = 0.2\n", "temperature = 0.0\n")
                      .replace("temperature = 0.3\n", "temperature = 0.0\n"))
    git(root, "commit", "-qam", "greedy")
    return root


def test_a_greedy_portfolio_on_too_few_tasks_is_refused(loop_workspace):
    # 4 seed sets × 2 tasks would be 8 differences, but at temperature 0 every seed set copies the first: 2 tasks,
    # each counted once, under the 5 a 95% bound needs.
    extra = ONLY_PRODUCER.replace("noise_repeats = 1", "noise_repeats = 4")
    root = greedy(producer_only(loop_workspace(confidence=0.95, extra=extra)))
    with pytest.raises(ConfigError) as refused:
        Study(load_workspace(root), backend_factory=ScriptedPipeline().factory, seed=1, backoff_s=0)
    assert refused.value.field == "scoring.confidence"
    assert "(its 2 search tasks, each counted once as the seeds change no reply)" in refused.value.message
    assert "give the producer a temperature above 0" in refused.value.message


def test_a_bound_required_across_too_few_tasks_is_refused_naming_across_tasks(loop_workspace):
    # 4 search tasks × 4 seed sets are 16 differences over pairs, but with across_tasks the bound over the 4 tasks'
    # means must clear zero too, and 4 means all one way is chance 1 in 16: over 95%'s 1 in 20.
    root = producer_only(loop_workspace(search_tasks=4, confidence=0.95,
                                        extra=ONLY_PRODUCER.replace("noise_repeats = 1", "noise_repeats = 4")))
    config = root / "autoresearch.toml"
    config.write_text(config.read_text().replace("across_tasks = false", "across_tasks = true"))
    git(root, "commit", "-qam", "across tasks")
    with pytest.raises(ConfigError) as refused:
        Study(load_workspace(root), backend_factory=ScriptedPipeline().factory, seed=1, backoff_s=0)
    assert refused.value.field == "scoring.across_tasks"
    assert "rests on at most 4 search tasks, and a 95% bound needs 5" in refused.value.message


def test_a_searched_producer_temperature_may_make_the_seeds_matter_so_the_run_goes_on(loop_workspace):
    extra = ONLY_PRODUCER.replace("noise_repeats = 1", "noise_repeats = 4\nproducer_temperatures = [0.0, 0.5]")
    root = greedy(producer_only(loop_workspace(confidence=0.95, extra=extra)))
    summary = Study(load_workspace(root), backend_factory=ScriptedPipeline(variants=["Answer!!!\n"]).factory,
                    seed=1, backoff_s=0).optimize(n_trials=1)
    assert summary.stop_reason == "trials" and len(summary.outcomes) == 1


def test_sigterm_abandons_the_trial_in_progress_prints_the_summary_and_ends_by_the_signal(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    run = scripted_run(root, "--trials", "500", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running = wait_for_running_trial(run, root)  # a trial after the first few: a SIGTERM then lands mid-trial
    assert running, f"no trial was running: {run.communicate()}"
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == -signal.SIGTERM, (run.returncode, out, err)  # ended by the signal, after the cleanup
    assert "stopped by SIGTERM, the trial in progress abandoned" in out and err == ""
    assert not (root / "runs" / "run.lock").exists()
    assert not (root / "runs" / "autoresearch.db-wal").exists()  # the store was closed, its log checkpointed
    store = Store.for_workspace(root / "runs")
    study = store.conn.execute("SELECT name FROM studies").fetchone()[0]
    rows = store.trials(study)
    assert "running" not in {r["status"] for r in rows}
    assert rows[-1]["status"] == "interrupted" and rows[-1]["number"] >= running
    assert store.conn.execute("SELECT COUNT(*) FROM evaluations WHERE status = 'running'").fetchone()[0] == 0
    trials = optuna.load_study(study_name=study, storage=f"sqlite:///{root / 'runs' / 'optuna.db'}").trials
    assert TrialState.RUNNING not in {t.state for t in trials}
    assert git(root, "status", "--porcelain") == ""

    resumed = scripted_run(root, "--trials", "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert "stale lock" not in out  # the stopped run closed itself: nothing to repair


def test_a_sigterm_during_a_keep_is_held_until_the_keep_is_made():
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with deferred_signals():  # as around a keep's commit and its record
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # an unheld signal's handler would have run by now
            assert received == []
        assert received == [signal.SIGTERM]  # delivered to the handler that was there before
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_full_disk_stops_the_run_with_one_line_and_the_same_command_resumes(loop_workspace, monkeypatch):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!!\n", "Answer!!!\n", "Answer!!!!\n"])
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    record_task, written = Store.record_task, []

    def fills_up(self, evaluation_id, result):
        if len(written) == 8:  # the baseline's 2 + 1 tasks and its noise set's 2, then trial 1 and into trial 2
            raise sqlite3.OperationalError("database or disk is full")
        written.append(result)
        return record_task(self, evaluation_id, result)

    monkeypatch.setattr(Store, "record_task", fills_up)
    result = CliRunner().invoke(main, ["run", "-w", str(root), "--trials", "4", "--seed", "1"])
    assert result.exit_code == 1, result.output
    line, = result.stderr.splitlines()  # SQLite's words name no file: the line names the workspace's disk
    free = re.fullmatch(rf"error: the disk is full \(database or disk is full; the workspace {re.escape(str(root))} is "
                        r"on a disk with (\d+(\.\d)? (bytes|KB|MB|GB)) free\); free some space and run the same "
                        r"command \(a run resumes from its finished trials\)", line)
    assert free is not None, line
    store = Store.for_workspace(root / "runs")
    study = store.conn.execute("SELECT name FROM studies").fetchone()[0]
    before = [(r["number"], r["status"]) for r in store.trials(study)]
    assert before[:2] == [(0, "baseline"), (1, "keep")]  # finished before the disk filled
    # The trial the disk stopped: abandoned (or left running, where the disk refused that too) for the next start.
    assert before[-1][1] in ("interrupted", "running") and all(status != "running" for _, status in before[:-1])

    monkeypatch.setattr(Store, "record_task", record_task)  # space freed
    result = CliRunner().invoke(main, ["run", "-w", str(root), "--trials", "1", "--seed", "1"])
    assert result.exit_code == 0, result.output
    after = [(r["number"], r["status"]) for r in store.trials(study)]
    assert after[:len(before)] == before[:-1] + [(before[-1][0], "interrupted")]  # finished trials as they were
    assert len(after) == len(before) + 1 and after[-1][1] != "running"
    rows = (root / "runs" / "results.tsv").read_text().splitlines()[1:]
    assert [int(row.split("\t")[0]) for row in rows] == [number for number, _ in after]
    assert git(root, "status", "--porcelain") == ""


def test_a_deleted_optuna_database_is_given_its_trials_back_from_the_store(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=[f"Answer {'!' * n}\n" for n in range(1, 9)])
    first = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=3)
    (root / "runs" / "optuna.db").unlink()  # a user "resetting the sampler", or runs/ copied without it
    resumed = Study(load_workspace(root), backend_factory=pipeline.factory, seed=2, backoff_s=0).optimize(n_trials=2)
    assert [o.number for o in resumed.outcomes] == [4, 5]  # numbers go on where the store's left off
    assert resumed.notes == [f"Optuna's record of this study lacked trials 0–3 ({root / 'runs' / 'optuna.db'} "
                             "deleted or replaced?): given back from the store, so the sampler learns from them again"]
    store = Store.for_workspace(root / "runs")
    rows = store.trials(first.study)
    trials = optuna.load_study(study_name=first.study, storage=f"sqlite:///{root / 'runs' / 'optuna.db'}").trials
    assert [t.number for t in trials] == [r["number"] for r in rows] == list(range(6))
    for t, row in zip(trials[:4], rows):  # the given-back trials: each as the store recorded it
        state, value = optuna_outcome(row)
        assert (t.state, t.value) == (state, value)
        assert t.params == json.loads(row["params_json"])
    screens = [t for t in trials[:4] if t.state == TrialState.COMPLETE]
    assert screens and all(len(t.intermediate_values) == 2 for t in screens)  # 2 search tasks, told the pruner


@pytest.mark.parametrize("holdout_tasks", [0, 1])
def test_a_suite_without_holdout_tasks_says_its_keeps_are_unchecked(loop_workspace, holdout_tasks):
    # A run on search tasks alone kept variants with no word that nothing checked them on unseen tasks.
    said = ("no holdout tasks in rubrics/tasks.toml: a keep is judged on the search tasks alone, with no check on "
            'tasks the search never saw (mark some `split = "holdout"`)')
    root = producer_only(loop_workspace(holdout_tasks=holdout_tasks, extra=ONLY_PRODUCER))
    summary = Study(load_workspace(root), backend_factory=ScriptedPipeline(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    assert (said in summary.notes) is (holdout_tasks == 0)
