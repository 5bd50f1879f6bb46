"""A run reuses its pipeline's replies for identical requests (lm/replies.py): a producer.md variant's planner calls
repeat the incumbent's, so they cost nothing, change no score, and count at their made cost in each task's figures
but not in what the run spent."""

from __future__ import annotations

import pytest
from rich.console import Console
from scripted import ONLY_PRODUCER, Identified, ScriptedPipeline, producer_only

from autoresearch.cli.live import print_summary
from autoresearch.review.report import html
from autoresearch.review.report.data import gather
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.store.queries import role_usage_rows
from autoresearch.workspace.workspace import load_workspace

VARIANTS = ["Answer!!\n", "Answer!\n", "Answer!!!!\n", "Answer.\n\n"]


def night(loop_workspace, reuse: bool, delay: tuple[float, float] | None = None):
    root = producer_only(loop_workspace(search_tasks=3, extra=ONLY_PRODUCER, reuse_replies=reuse,
                                        name="reuse" if reuse else "every-call"))
    pipeline = ScriptedPipeline(variants=VARIANTS, delay=delay)
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    try:
        return root, pipeline, study.optimize(n_trials=4)
    finally:
        study.close()


def outcomes(summary):
    return [(o.number, o.status, o.composite, o.delta) for o in summary.outcomes]


def test_a_producer_variant_reuses_the_incumbents_planner_replies_and_scores_the_same(loop_workspace):
    root, pipeline, summary = night(loop_workspace, reuse=True)
    _, every_call, without = night(loop_workspace, reuse=False)
    # The same trials, verdicts and scores: the reused replies are the ones the calls would have given.
    assert outcomes(summary) == outcomes(without) and len(summary.outcomes) == 4
    # The planner was asked only what the baseline asked it; every other planner request was answered from the cache.
    store = Store.for_workspace(root / "runs")
    try:
        rows = store.conn.execute("SELECT trial, role, reused, COUNT(*) AS n FROM calls WHERE study = ? "
                                  "GROUP BY trial, role, reused", (summary.study,)).fetchall()
        spent = store.call_totals(summary.study)
        report_line = html.summary(gather(store, root, summary.study))
        role_rows = role_usage_rows(store, summary.study)
        trial_joules = dict(store.conn.execute("SELECT trial, SUM(joules) FROM calls WHERE study = ? AND reused = 0 "
                                               "GROUP BY trial", (summary.study,)).fetchall())
    finally:
        store.close()
    by = {(r["trial"], r["role"], bool(r["reused"])): r["n"] for r in rows}
    baseline_planner = by[(0, "planner", False)]
    assert pipeline.calls_by_role["planner"] == baseline_planner
    assert every_call.calls_by_role["planner"] > baseline_planner
    assert all(not reused for (trial, role, reused) in by if role != "planner")  # each variant's own producer calls
    reused = sum(n for (trial, role, was_reused), n in by.items() if was_reused)
    assert reused > 0 and all(trial >= 1 for (trial, role, was_reused) in by if was_reused)
    # What the run spent counts the calls made, and says how many replies it reused.
    made = sum(n for (trial, role, was_reused), n in by.items() if not was_reused)
    assert (summary.calls, summary.reused) == (made, reused) == (spent[0], spent[2])
    assert spent[1] == pytest.approx(summary.joules)
    assert f"{made} model calls · {reused} replies reused for requests identical to earlier ones" in report_line
    assert summary.calls + summary.reused == without.calls
    assert sum(r["calls"] for r in summary.roles) == summary.calls == sum(r["calls"] for r in role_rows)
    assert all(o.joules == trial_joules[o.number] for o in summary.outcomes)  # each trial's line: what it spent
    console = Console(record=True, width=300)
    print_summary(console, summary, load_workspace(root))
    assert (f"for {summary.calls} model calls and {summary.joules:,.0f} J (estimated); {reused} replies reused for "
            "requests identical to earlier ones, instead of calls") in console.export_text()


def test_a_tasks_figures_count_its_reused_reply_at_what_it_cost_when_made(loop_workspace):
    root, _, summary = night(loop_workspace, reuse=True, delay=(0.05, 0.05))
    store = Store.for_workspace(root / "runs")
    try:
        tasks = store.conn.execute(
            "SELECT t.seconds, t.joules, SUM(c.latency_s) AS latency, SUM(c.joules) AS call_joules, "
            "SUM(c.reused) AS reused FROM task_results t JOIN evaluations e ON t.evaluation_id = e.id "
            "JOIN calls c ON c.evaluation_id = e.id AND c.task_id = t.task_id WHERE e.study = ? AND e.trial >= 1 "
            "GROUP BY t.id", (summary.study,)).fetchall()
    finally:
        store.close()
    assert tasks and all(t["reused"] == 1 for t in tasks)  # each task's one planner reply
    for task in tasks:
        # Its calls follow one another: the task took at least their seconds, the reused one's included.
        assert task["seconds"] >= task["latency"]
        assert task["joules"] == task["call_joules"] > 0


def resumed(loop_workspace, identity: str | None):
    """A night of 2 trials, then a second run of the same study, in a new process's place (a new Study and an empty
    reply cache), trying 2 other producer.md variants; the second run's pipeline and summary. identity: what the
    scripted model says it is (None: it cannot tell, as llama-cpp-python's server)."""
    root = producer_only(loop_workspace(search_tasks=3, extra=ONLY_PRODUCER, name=f"resumed-{identity}"))

    def run(variants):
        pipeline = ScriptedPipeline(variants=variants)
        factory = pipeline.factory if identity is None else (
            lambda config, backends: Identified(pipeline.backend, identity))
        study = Study(load_workspace(root), backend_factory=factory, seed=1, backoff_s=0)
        try:
            return pipeline, study.optimize(n_trials=2)
        finally:
            study.close()

    first, night = run(VARIANTS[:2])
    second, again = run(VARIANTS[2:])
    assert night.study == again.study and [o.number for o in again.outcomes] == [3, 4]  # the study went on
    return first, second, again


def test_a_resumed_study_asks_its_planner_nothing_its_store_has_answered(loop_workspace):
    first, second, again = resumed(loop_workspace, "model A")
    _, asked, unknown = resumed(loop_workspace, None)
    # Its variants' planner requests are the baseline's, answered in the first run: found in the store, not asked.
    assert first.calls_by_role["planner"] > 0 and second.calls_by_role.get("planner", 0) == 0
    assert asked.calls_by_role["planner"] > 0  # a model that cannot tell which it is lends nothing across runs
    assert outcomes(again) == outcomes(unknown)  # the lent replies are the ones the calls gave
    assert again.calls == unknown.calls - asked.calls_by_role["planner"] and again.reused > unknown.reused
