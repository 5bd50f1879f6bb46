"""[scoring] energy_weight: the loop keeps on composite − weight × kJ per task; with weight 0, nothing changes.

The producer runs on a "served" fake backend (energy = wall time × server_watts), and takes SLOW_S of the
engine's clock for each "slow" in its instructions, so wordier instructions cost energy at the same quality.
The clock is advanced, not slept on: a busy machine's scheduling delays cannot move the joules compared.
"""

from __future__ import annotations

import dataclasses
import json
import time
from types import SimpleNamespace

import optuna
import pytest
from scripted import ONLY_PRODUCER, ScriptedPipeline, git

from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace, text_hash

SLOW_S = 0.1
WATTS = 60.0  # the starter's server_watts


class EngineClock:
    """The engine's wall clock, standing still except where a test advances it (its CPU clock stays real)."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class SlowProducer(ScriptedPipeline):
    """A served model whose producer takes SLOW_S of the engine's clock per "slow" in its instructions."""

    def __init__(self, variants, clock: EngineClock):
        super().__init__(variants=variants)
        self.backend.in_process = False  # estimated as wall time × server_watts
        self.clock = clock

    def respond(self, request):
        before = self.calls_by_role.get("producer", 0)
        reply = super().respond(request)
        if self.calls_by_role.get("producer", 0) > before:
            self.clock.now += SLOW_S * request.messages[0].content.count("slow")
        return reply


@pytest.fixture
def clock(monkeypatch):
    engine_clock = EngineClock()
    monkeypatch.setattr("autoresearch.lm.engine.time",
                        SimpleNamespace(perf_counter=engine_clock.perf_counter, process_time=time.process_time,
                                        sleep=time.sleep))
    return engine_clock


@pytest.fixture
def workspace(loop_workspace, no_counters):
    def make(baseline: str, weight: float | None):
        root = loop_workspace(extra=ONLY_PRODUCER)
        text = (root / "autoresearch.toml").read_text()
        text = text.replace('optimizable = ["producer.md", "planner.md"]', 'optimizable = ["producer.md"]')
        if weight is not None:
            text = text.replace("energy_weight = 0.0", f"energy_weight = {weight}")  # the starter's line
        # The scripted producer echoes its instructions: a copy, whose judge score the degenerate guard would zero.
        text = text.replace("degenerate_guard = true", "degenerate_guard = false")
        (root / "autoresearch.toml").write_text(text)
        (root / "instructions" / "producer.md").write_text(baseline)
        git(root, "commit", "-qam", "energy settings")
        return root
    return make


def run(root, variants, clock, n_trials=1):
    pipeline = SlowProducer(variants, clock)
    return Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(
        n_trials=n_trials)


def rows(root, summary):
    return Store.for_workspace(root / "runs").trials(summary.study)


def test_a_better_but_much_costlier_variant_is_discarded(workspace, clock):
    root = workspace("Answer.\n", weight=50)
    head = git(root, "rev-parse", "HEAD")
    # One '!' is +0.7 composite; five "slow" are +0.5 s × 60 W = +30 J per task: −1.5 at weight 50.
    summary = run(root, ["Answer! slow slow slow slow slow\n"], clock)
    assert [o.status for o in summary.outcomes] == ["discard"]
    baseline, trial = rows(root, summary)
    assert trial["composite"] == pytest.approx(baseline["composite"] + 0.7)  # better quality...
    assert trial["objective"] < baseline["objective"]  # ...lower objective
    assert trial["incumbent_before"] == pytest.approx(baseline["objective"])
    assert trial["delta"] == pytest.approx(trial["objective"] - baseline["objective"])
    assert trial["delta"] == pytest.approx(0.7 - 1.5)
    store = Store.for_workspace(root / "runs")
    evaluation = store.evaluation(trial["evaluation_id"])
    assert trial["objective"] == pytest.approx(trial["composite"] - 50 * evaluation["joules"] / 2 / 1000)
    assert git(root, "rev-parse", "HEAD") == head
    # Optuna was told the objective, and the pruner saw each task's value less its energy term.
    study = optuna.load_study(study_name=summary.study, storage=f"sqlite:///{root / 'runs' / 'optuna.db'}")
    told = {t.number: t for t in study.trials}
    assert told[1].value == pytest.approx(trial["objective"])
    tasks = store.task_results(trial["evaluation_id"])
    for step, task in enumerate(tasks):
        quality = 0.7 * task["score_r1"] + 0.3 * task["criteria_passed"] / task["criteria_total"] * 10
        assert told[1].intermediate_values[step] == pytest.approx(quality - 50 * task["joules"] / 1000)


def test_a_cheaper_variant_of_equal_quality_is_kept(workspace, clock):
    root = workspace("Answer! slow slow slow\n", weight=50)
    summary = run(root, ["Answer! slow\n"], clock)  # the same '!': the same composite, 0.2 s × 60 W less per task
    assert [o.status for o in summary.outcomes] == ["keep"]
    baseline, trial = rows(root, summary)
    assert trial["composite"] == pytest.approx(baseline["composite"])
    assert trial["delta"] == pytest.approx(trial["objective"] - baseline["objective"])
    assert trial["delta"] == pytest.approx(0.6)  # 50 × (0.2 s × 60 W) / 1000 on each task
    assert summary.best_objective == pytest.approx(trial["objective"])
    assert summary.baseline_objective == pytest.approx(baseline["objective"])
    message = git(root, "log", "-1", "--format=%B")
    # Both tasks are exactly 0.6 cheaper on the engine's clock: the bound is the mean.
    assert message.splitlines()[0] == "autoresearch: producer.md +0.60 over 2 tasks × 1 seed (75% bound +0.60)"
    assert f"Autoresearch-Objective: {trial['objective']:.3f}" in message
    assert f"Autoresearch-Composite: {trial['composite']:.3f}" in message
    evaluation = Store.for_workspace(root / "runs").evaluation(trial["evaluation_id"])
    assert evaluation["joules"] == pytest.approx(2 * 0.1 * WATTS)  # one "slow" on each of 2 tasks
    assert "Autoresearch-Joules-Per-Task: 6.0 (estimate)" in message
    assert (root / "instructions" / "producer.md").read_text() == "Answer! slow\n"


def with_weight(ws, weight: float):
    scoring = ws.settings.scoring.model_copy(update={"energy_weight": weight})
    return dataclasses.replace(ws, settings=ws.settings.model_copy(update={"scoring": scoring}))


def test_weight_0_keeps_on_the_composite_as_before(workspace, clock):
    root = workspace("Answer.\n", weight=None)
    ws = load_workspace(root)
    assert ws.settings.scoring.energy_weight == 0.0
    # The hash as it was before energy_weight (and the keep rule's settings) existed: studies keep their names.
    scoring = ws.settings.scoring.model_dump(exclude={"energy_weight", "confidence", "holdout_gate", "across_tasks",
                                                       "early_keep"})
    before = text_hash(json.dumps([ws.rubric.model_dump(), ws.suite.model_dump(), ws.evaluator_instructions,
                                   scoring], sort_keys=True))
    assert ws.evaluation_hash() == with_weight(ws, 0.0).evaluation_hash() == before
    assert with_weight(ws, 2.5).evaluation_hash() != before  # a weight starts a new study
    summary = run(root, ["Answer! slow slow slow slow slow\n"], clock)
    assert [o.status for o in summary.outcomes] == ["keep"]  # the costlier, better variant wins
    baseline, trial = rows(root, summary)
    assert trial["objective"] == trial["composite"] and baseline["objective"] == baseline["composite"]
    assert trial["delta"] == pytest.approx(0.7)
    message = git(root, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == "autoresearch: producer.md +0.70 over 2 tasks × 1 seed (75% bound +0.70)"
    assert "Autoresearch-Objective" not in message and "Autoresearch-Joules-Per-Task" not in message


def test_recovery_recomputes_the_objective_of_a_keep_it_completes(workspace, clock):
    root = workspace("Answer! slow slow slow\n", weight=50)
    summary = run(root, ["Answer! slow\n"], clock)
    store = Store.for_workspace(root / "runs")
    kept = store.trial(summary.study, 1)
    # As if killed after the commit, before the figures were written: recovery takes them from the evaluation.
    store.update_trial(summary.study, 1, status="running", composite=None, objective=None, delta=None,
                       incumbent_before=None)
    again = run(root, ["Answer! slow slow\n"], clock)
    assert any("recorded as keep" in n for n in again.notes)
    row = store.trial(summary.study, 1)
    assert row["status"] == "keep"
    assert row["objective"] == pytest.approx(kept["objective"])
    assert row["delta"] == pytest.approx(kept["delta"])
    assert row["incumbent_before"] == pytest.approx(kept["incumbent_before"])
    # The next trial was judged against the recovered keep's objective.
    third = store.trial(summary.study, 2)
    assert third["incumbent_before"] == pytest.approx(kept["objective"])
    assert json.loads(third["instructions_json"])["producer.md"] == "Answer! slow slow\n"
