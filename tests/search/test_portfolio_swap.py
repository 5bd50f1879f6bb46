"""Swapping the portfolio: a new study, warm-started from the previous portfolio's best instructions,
and a summary that compares the two portfolios' composite, energy and latency."""

from __future__ import annotations

import json
import multiprocessing
import os
import re

import pytest
from rich.console import Console
from scripted import ScriptedPipeline, git

from autoresearch.cli.live import print_summary
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.versioning import InstructionRepo
from autoresearch.workspace.workspace import load_workspace

EXTRA = ('\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\n'
         '\n[portfolios.other.producer]\nmax_tokens = 100\n')
KILLED = 9


@pytest.fixture
def root(loop_workspace):
    root = loop_workspace(extra=EXTRA)
    text = (root / "autoresearch.toml").read_text()
    (root / "autoresearch.toml").write_text(text.replace(
        'optimizable = ["producer.md", "planner.md"]', 'optimizable = ["producer.md"]'))
    git(root, "commit", "-qam", "only producer; a second portfolio")
    return root


def run(root, variants, portfolio=None, n_trials=1, **kw):
    pipeline = ScriptedPipeline(variants=variants)
    return Study(load_workspace(root), portfolio=portfolio, backend_factory=pipeline.factory, seed=1,
                 backoff_s=0, **kw).optimize(n_trials=n_trials)


def warm_starts(root, branch):
    return [line for line in git(root, "log", branch, "--format=%s").splitlines() if "warm start" in line]


def study_a(root):
    """Study A on the default portfolio keeps "Answer!!", then the user goes back to main."""
    a = run(root, ["Answer!!\n"])
    assert [o.status for o in a.outcomes] == ["keep"]
    git(root, "checkout", "-q", "main")
    assert (root / "instructions" / "producer.md").read_text() == "Answer.\n"
    return a


def test_a_new_portfolio_starts_from_the_previous_portfolios_best(root):
    a = study_a(root)
    b = run(root, ["Answer!!!\n"], portfolio="other")
    assert b.study != a.study and b.branch != a.branch
    # The warm start: one commit, on B's branch, of A's incumbent; no trial trailer.
    (subject,) = warm_starts(root, b.branch)
    assert subject == f"autoresearch: warm start producer.md from study {a.study} (trial 1)"
    sha = git(root, "log", b.branch, "--format=%H", "--grep=warm start").split()[0]
    body = git(root, "log", "-1", "--format=%B", sha)
    assert f"Autoresearch-Warm-Start: {a.study}" in body and "Autoresearch-Trial" not in body
    assert git(root, "show", "--name-only", "--format=", sha).split() == ["instructions/producer.md"]
    assert any("warm start: producer.md" in n for n in b.notes)
    store = Store.for_workspace(root / "runs")
    baseline = store.trial(b.study, 0)
    assert json.loads(baseline["instructions_json"])["producer.md"] == "Answer!!\n"
    assert baseline["commit_sha"] == sha
    assert store.study(b.study)["warm_start"] == a.study
    assert b.baseline_composite == pytest.approx(a.best_composite)  # the same instructions, the same scores
    assert warm_starts(root, a.branch) == []  # A's branch is untouched

    # The summary compares the two portfolios' best.
    this, previous = b.comparison
    assert (this.portfolio, this.study, previous.portfolio, previous.study) == ("other", b.study, "default", a.study)
    assert (previous.trial, previous.best_composite, previous.best_holdout) == (1, a.best_composite, a.best_holdout)
    assert this.best_composite == b.best_composite and this.best_holdout == b.best_holdout
    for row in (this, previous):
        best = store.trial(row.study, row.trial)
        evaluation = store.evaluation(best["evaluation_id"])
        tasks = store.task_results(best["evaluation_id"])
        producer = [c for c in store.calls(best["evaluation_id"]) if c["role"] == "producer" and c["status"] == "ok"]
        assert len(tasks) == 2
        assert row.joules_per_task == pytest.approx(evaluation["joules"] / 2)
        assert row.seconds_per_task == pytest.approx(evaluation["seconds"] / 2)
        assert row.producer_tokens_per_task == pytest.approx(sum(c["completion_tokens"] for c in producer) / 2)
        assert row.producer_tokens_per_task > 0
    console = Console(record=True, width=240)
    print_summary(console, b, load_workspace(root))
    text = console.export_text()
    assert "Portfolios compared" in text
    assert re.search(rf"other\s+{re.escape(b.study)}\s+{this.trial}\s+{this.best_composite:.3f}", text)
    assert re.search(rf"default\s+{re.escape(a.study)}\s+1\s+{a.best_composite:.3f}", text)


def test_resuming_does_not_warm_start_again(root):
    a = study_a(root)
    b = run(root, ["Answer!\n"], portfolio="other")
    again = run(root, ["Answer!!!!\n"], portfolio="other")
    assert again.study == b.study
    assert len(warm_starts(root, b.branch)) == 1
    assert not any("warm start" in n for n in again.notes)
    assert [r.study for r in again.comparison] == [b.study, a.study]


def test_from_the_previous_studys_branch_no_commit_is_needed(root):
    a = run(root, ["Answer!!\n"])  # still on A's branch, whose HEAD is A's best
    b = run(root, ["Answer!\n"], portfolio="other")
    assert warm_starts(root, b.branch) == []
    store = Store.for_workspace(root / "runs")
    assert json.loads(store.trial(b.study, 0)["instructions_json"])["producer.md"] == "Answer!!\n"
    assert store.study(b.study)["warm_start"] == a.study


def test_no_warm_start_starts_from_head(root):
    a = study_a(root)
    b = run(root, ["Answer!\n"], portfolio="other", warm_start=False)
    assert warm_starts(root, b.branch) == []
    store = Store.for_workspace(root / "runs")
    assert json.loads(store.trial(b.study, 0)["instructions_json"])["producer.md"] == "Answer.\n"
    assert [r.study for r in b.comparison] == [b.study, a.study]  # still compared


def test_the_first_study_has_nothing_to_compare(root):
    a = run(root, ["Answer!!\n"])
    assert [r.study for r in a.comparison] == [a.study]
    assert warm_starts(root, a.branch) == []


def _die_in_child(root, arm):
    def child():
        arm()
        run(root, ["Answer!!!\n"], portfolio="other")
        os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(120)
    assert process.exitcode == KILLED, "the child did not reach the kill point"


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_a_warm_start_killed_midway_is_completed_once(root, point):
    a = study_a(root)

    def arm():
        if point == "before-commit":  # the file is written, its commit not made
            InstructionRepo._git_commit = lambda self, rel, subject, body: os._exit(KILLED)
        else:  # the commit landed; the baseline never started
            Study._baseline = lambda self: os._exit(KILLED)

    _die_in_child(root, arm)
    b = run(root, ["Answer!!!\n"], portfolio="other")
    assert len(warm_starts(root, b.branch)) == 1
    if point == "before-commit":
        assert any("restored instructions/producer.md" in n for n in b.notes)
    store = Store.for_workspace(root / "runs")
    rows = store.trials(b.study)
    assert [r["status"] for r in rows][:1] == ["baseline"]
    assert json.loads(rows[0]["instructions_json"])["producer.md"] == "Answer!!\n"
    assert git(root, "status", "--porcelain", "--", "instructions") == ""
    assert store.study(b.study)["warm_start"] == a.study
