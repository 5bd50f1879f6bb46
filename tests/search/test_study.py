"""The loop on the fake backend with a scripted score: keep, discard, prune, plateau, resume, dedupe, refuse."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console
from scripted import ONLY_PRODUCER, ScriptedPipeline, git

from autoresearch.cli.review_views import log_renderables, print_all, show_renderables
from autoresearch.errors import WorkspaceError
from autoresearch.review.report.data import gather
from autoresearch.review.report.html import commits_section, composite_chart, summary
from autoresearch.review.study_log import study_log
from autoresearch.review.trial_detail import trial_detail
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace as load


def make_study(root, pipeline, **kw):
    ws = load(root)
    text = (root / "autoresearch.toml").read_text()
    if 'optimizable = ["producer.md", "planner.md"]' in text:
        (root / "autoresearch.toml").write_text(text.replace(
            'optimizable = ["producer.md", "planner.md"]', 'optimizable = ["producer.md"]'))
        git(root, "commit", "-qam", "only producer")
        ws = load(root)
    return Study(ws, backend_factory=pipeline.factory, seed=1, backoff_s=0, **kw)


def test_keep_commits_only_the_instruction_file_with_trailers(loop_workspace):
    root = loop_workspace(extra=ONLY_PRODUCER)
    pipeline = ScriptedPipeline(variants=["Answer!!!\n"])
    before = git(root, "rev-list", "--count", "HEAD")
    summary = make_study(root, pipeline).optimize(n_trials=1)
    assert [o.status for o in summary.outcomes] == ["keep"]
    assert summary.best_composite > summary.baseline_composite
    assert int(git(root, "rev-list", "--count", "HEAD")) == int(before) + 2  # config tweak + the keep
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == ["instructions/producer.md"]
    message = git(root, "log", "-1", "--format=%B")
    assert message.startswith("autoresearch: producer.md +")
    assert "Autoresearch-Trial: 1" in message and "Autoresearch-Holdout-Composite:" in message
    assert (root / "instructions" / "producer.md").read_text() == "Answer!!!\n"
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == summary.branch
    rows = (root / "runs" / "results.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:3] == ["trial", "commit", "composite"]
    assert rows[-1].split("\t")[5] == "keep"


@pytest.mark.parametrize("variant", ["Answer, please.\n", "Answer with care!\n"])
def test_discard_at_or_below_threshold_leaves_files_identical_to_head(loop_workspace, variant):
    # One '!' adds 0.7 to the composite: with a threshold of 0.7 that is "at", none is "below".
    root = loop_workspace(keep_threshold=0.7, extra=ONLY_PRODUCER)
    study = make_study(root, ScriptedPipeline(variants=[variant]))
    head = git(root, "rev-parse", "HEAD")
    before = (root / "instructions" / "producer.md").read_bytes()
    summary = study.optimize(n_trials=1)
    assert [o.status for o in summary.outcomes] == ["discard"]
    assert (root / "instructions" / "producer.md").read_bytes() == before
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "diff", "--cached", "HEAD", "--", "instructions") == ""
    assert git(root, "rev-parse", "HEAD") == head  # the study branch starts at HEAD and gains no commit


def test_hopeless_variant_is_pruned_before_all_tasks_run(loop_workspace):
    # The scripted pipeline measures no seed noise (noise_repeats 1): the default paired pruner leaves the
    # decision to its Wilcoxon fallback, which stops the variant clearly worse than the baseline on every task.
    root = loop_workspace(search_tasks=8, holdout_tasks=0, extra=ONLY_PRODUCER)
    (root / "instructions" / "producer.md").write_text("Answer!!!!!!!!\n")
    git(root, "commit", "-qam", "strong baseline")
    pipeline = ScriptedPipeline(variants=["Answer plainly.\n"])
    study = make_study(root, pipeline)
    summary = study.optimize(n_trials=1)
    assert [o.status for o in summary.outcomes] == ["pruned"]
    store = Store.for_workspace(root / "runs")
    trial = store.trial(summary.study, 1)
    evaluation = store.evaluation(trial["evaluation_id"])
    assert evaluation["status"] == "pruned"
    assert len(store.task_results(trial["evaluation_id"])) < 8


def test_plateau_stops_after_n_trials_without_a_keep(loop_workspace):
    root = loop_workspace(extra=ONLY_PRODUCER)
    pipeline = ScriptedPipeline(variants=["Answer briefly.\n", "Answer fully.\n", "Answer now.\n", "x y z w v\n"])
    summary = make_study(root, pipeline).optimize(n_trials=10, plateau=2)
    assert summary.stop_reason == "plateau"
    assert len(summary.outcomes) == 2


def test_resume_continues_without_rerunning_finished_trials(loop_workspace):
    root = loop_workspace(extra=ONLY_PRODUCER)
    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!!!\n", "Answer!!!!!\n"])
    first = make_study(root, pipeline).optimize(n_trials=2)
    evaluator_calls = pipeline.calls_by_role["evaluator"]
    second = make_study(root, pipeline).optimize(n_trials=1)
    assert second.study == first.study
    assert [o.number for o in second.outcomes] == [3]
    store = Store.for_workspace(root / "runs")
    numbers = [r["number"] for r in store.trials(first.study)]
    assert numbers == [0, 1, 2, 3]  # the baseline ran once, each trial once
    # The resumed run evaluated only its one new trial (2 search tasks, plus holdout if kept).
    assert pipeline.calls_by_role["evaluator"] - evaluator_calls in (2, 3)


def test_the_users_own_commit_on_the_study_branch_becomes_the_incumbent_and_is_never_overwritten(loop_workspace):
    root = loop_workspace(extra=ONLY_PRODUCER)
    pipeline = ScriptedPipeline(propose=lambda parent: ("one more mark", parent.rstrip("\n") + "!\n"))
    first = make_study(root, pipeline).optimize(n_trials=2)
    assert [o.status for o in first.outcomes] == ["keep", "discard"]  # trial 1 kept "Answer.!"
    # The user reviews the night and writes their own instructions, better than the loop's, on the branch.
    (root / "instructions" / "producer.md").write_text("Answer with care!!!!!!\n")
    git(root, "commit", "-qam", "my own edit")
    second = make_study(root, pipeline).optimize(n_trials=2)
    assert second.notes[0] == (f'instructions/producer.md at HEAD ({git(root, "rev-parse", "HEAD~1")[:10]} "my own '
                               'edit") differs from the study\'s incumbent (trial 1): evaluated as a new baseline, '
                               'the incumbent from here on')
    rows = Store.for_workspace(root / "runs").trials(first.study)
    assert [(r["number"], r["status"]) for r in rows] == [(0, "baseline"), (1, "keep"), (2, "discard"),
                                                          (3, "baseline"), (4, "discard"), (5, "keep")]
    assert json.loads(rows[3]["instructions_json"])["producer.md"] == "Answer with care!!!!!!\n"
    assert rows[3]["composite"] > rows[1]["composite"]
    # What the loop kept after it builds on the user's text, against it; nothing reverted it.
    assert (root / "instructions" / "producer.md").read_text() == "Answer with care!!!!!!!\n"
    assert git(root, "log", "-2", "--format=%s").splitlines()[1] == "my own edit"
    # The morning's log shows where the deltas start again: the new baseline, between the keeps.
    log = study_log(Store.for_workspace(root / "runs"), first.study)
    assert [(r.trial, r.commit) for r in log.restarts] == [(3, git(root, "rev-parse", "HEAD~1").strip())]
    console = Console(record=True, width=300)
    print_all(console, log_renderables(log))
    shown = console.export_text()
    rows = [line for line in shown.splitlines() if "│" in line and line.split("│")[2].strip()]
    assert [line.split("│")[2].strip() for line in rows] == ["5", "3", "1"]
    assert "new baseline: HEAD held instructions of yours" in rows[1] and "1 new baseline" in shown
    report = commits_section(gather(Store.for_workspace(root / "runs"), root, first.study))  # the report's too
    assert re.findall(r">#(\d+)<", report)[:3] == ["5", "3", "1"] and "new baseline: HEAD held" in report
    third = make_study(root, pipeline).optimize(n_trials=1)  # HEAD is the incumbent again: no new baseline
    assert third.outcomes[0].status != "baseline" and not any("new baseline" in n for n in third.notes)


def test_a_run_started_on_another_branch_with_other_instructions_says_which_it_continues(loop_workspace):
    root = loop_workspace(extra=ONLY_PRODUCER)
    pipeline = ScriptedPipeline(propose=lambda parent: ("one more mark", parent.rstrip("\n") + "!\n"))
    first = make_study(root, pipeline).optimize(n_trials=1)
    git(root, "checkout", "-q", "main")
    (root / "notes.md").write_text("not an instruction file\n")
    git(root, "add", "notes.md")
    git(root, "commit", "-qm", "other work on main")
    quiet = make_study(root, pipeline).optimize(n_trials=1)  # only other files differ: nothing to say
    assert not any("changed on main" in note for note in quiet.notes)
    git(root, "checkout", "-q", "main")
    (root / "instructions" / "producer.md").write_text("Answer from main!!!\n")
    git(root, "commit", "-qam", "an edit on main")
    second = make_study(root, pipeline).optimize(n_trials=1)
    assert second.notes[0] == (f"instructions/producer.md changed on main since {first.branch}, the study's branch, "
                               "began there; this run continues that branch. To start from main's: `git checkout main "
                               "-- instructions/producer.md && git commit -m 'start from main'` on "
                               f"{first.branch}; the next run evaluates it as a new baseline")
    assert git(root, "show", "main:instructions/producer.md") == "Answer from main!!!\n"  # untouched
    git(root, "checkout", "main", "--", "instructions/producer.md")  # as the note says, on the study branch
    git(root, "commit", "-qm", "start from main")
    third = make_study(root, pipeline).optimize(n_trials=1)
    assert "differs from the study's incumbent" in third.notes[0]
    rebased = [r for r in Store.for_workspace(root / "runs").trials(first.study) if r["status"] == "baseline"][-1]
    assert json.loads(rebased["instructions_json"])["producer.md"] == "Answer from main!!!\n"
    assert rebased["composite"] > first.outcomes[0].composite  # main's "!!!" against the loop's kept "!"


def test_identical_variant_is_not_evaluated_twice(loop_workspace):
    # One parent, the incumbent: trial 1, best on every task, would otherwise be a parent from the Pareto front,
    # and a proposal equal to its parent is refused before the identical-variant check is reached.
    root = loop_workspace(keep_threshold=5.0, extra=ONLY_PRODUCER + "parents = 1\n")
    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!\n"])
    summary = make_study(root, pipeline).optimize(n_trials=2)
    first, second = summary.outcomes
    assert first.status == "discard" and second.status == "discard"
    assert "identical to trial 1" in second.description
    store = Store.for_workspace(root / "runs")
    assert store.trial(summary.study, 2)["evaluation_id"] is None
    assert second.composite == first.composite
    # Its delta is the race its twin ran against the same incumbent, not the screen's composite minus the incumbent's.
    assert second.delta == first.delta is not None
    assert store.trial(summary.study, 2)["delta"] == store.trial(summary.study, 1)["delta"]


def test_a_twin_reports_the_delta_its_race_measured_against_the_same_incumbent_only():
    from autoresearch.search.results import Incumbent
    from autoresearch.search.trial import twin_delta

    incumbent = Incumbent(0, 3.49, {}, {}, 1, None, objective=3.49)
    # Screened at 3.77 (+0.28), confirmed at +0.10 over more seeds: the twin says +0.10, what the race measured.
    raced = {"delta": 0.096, "incumbent_before": 3.49, "composite": 3.77, "objective": 3.77}
    assert twin_delta(raced, incumbent) == 0.096
    assert twin_delta({**raced, "incumbent_before": 3.20}, incumbent) is None  # raced an earlier incumbent
    assert twin_delta({"delta": 0.096, "composite": 3.77}, incumbent) is None  # a ledger row: against whom unknown
    assert twin_delta({**raced, "delta": None}, incumbent) is None


def test_refuses_to_start_with_dirty_instruction_files(loop_workspace):
    root = loop_workspace(extra=ONLY_PRODUCER)
    study = make_study(root, ScriptedPipeline(variants=["Answer!\n"]))
    (root / "instructions" / "producer.md").write_text("Answer, edited by hand.\n")
    with pytest.raises(WorkspaceError, match="producer.md"):
        study.optimize(n_trials=1)
    assert (root / "instructions" / "producer.md").read_text() == "Answer, edited by hand.\n"
    assert not (root / "runs" / "results.tsv").exists()


def test_every_trial_and_call_is_in_the_store(loop_workspace):
    root = loop_workspace(extra=ONLY_PRODUCER)
    summary = make_study(root, ScriptedPipeline(variants=["Answer!!\n"])).optimize(n_trials=1)
    store = Store.for_workspace(root / "runs")
    rows = store.trials(summary.study)
    assert [r["status"] for r in rows] == ["baseline", "keep"]
    assert json.loads(rows[1]["instructions_json"])["producer.md"] == "Answer!!\n"
    proposer_calls = store.conn.execute(
        "SELECT COUNT(*) FROM calls WHERE study=? AND trial=1 AND role='proposer'", (summary.study,)).fetchone()[0]
    assert proposer_calls == 1
    assert summary.calls == store.call_totals(summary.study)[0]


def test_the_proposers_drawn_seeds_follow_the_runs_seed(loop_workspace, tmp_path):
    """A proposer without a seed draws one per call, recorded; the same --seed draws the same ones."""
    import shutil
    import sqlite3

    from scripted import ScriptedPipeline

    from autoresearch.search.study import Study
    from autoresearch.workspace.workspace import load_workspace

    root = loop_workspace()
    assert load_workspace(root).portfolio("default").proposer.seed is None
    copies = [shutil.copytree(root, tmp_path / name) for name in ("a", "b", "c")]
    drawn = []
    for workspace, seed in zip(copies, (3, 3, 4)):
        pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!!\n"])
        Study(load_workspace(workspace), backend_factory=pipeline.factory, seed=seed).optimize(n_trials=2)
        rows = sqlite3.connect(workspace / "runs" / "autoresearch.db").execute(
            "SELECT seed FROM calls WHERE role='proposer' ORDER BY id").fetchall()
        drawn.append([s for (s,) in rows])
    assert len(drawn[0]) >= 2 and all(s is not None for s in drawn[0])  # planner.md's short variants are junk
    assert drawn[0] == drawn[1]  # the same --seed: the same proposer seeds
    assert drawn[2] != drawn[0]  # another --seed: others


def test_after_a_worse_edit_of_the_users_the_report_shows_it_as_the_incumbent_not_the_old_keep(loop_workspace):
    root = loop_workspace(extra=ONLY_PRODUCER)
    pipeline = ScriptedPipeline(propose=lambda parent: ("one more mark", parent.rstrip("\n") + "!\n"))
    first = make_study(root, pipeline).optimize(n_trials=1)
    assert [o.status for o in first.outcomes] == ["keep"]
    # The user prefers plainer instructions, which score lower than the keep, and commits them.
    (root / "instructions" / "producer.md").write_text("Answer plainly.\n")
    git(root, "commit", "-qam", "plainer")
    pipeline.propose = lambda parent: ("the same", parent)  # nothing new: no keep after the user's edit
    make_study(root, pipeline).optimize(n_trials=1)
    store = Store.for_workspace(root / "runs")
    rows = {r["number"]: r for r in store.trials(first.study)}
    assert rows[2]["status"] == "baseline" and rows[2]["composite"] < rows[1]["composite"]
    assert all(r["status"] != "keep" for n, r in rows.items() if n > 2)
    data = gather(store, root, first.study)
    cards = dict(re.findall(r'<div class="card">([^<]*)<b>([^<]*)</b>', summary(data)))
    assert cards["incumbent composite (new baseline, trial 2)"] == f"{rows[2]['composite']:.3f}"
    assert cards["holdout"].endswith(f"{rows[2]['holdout_composite']:.3f}")
    assert ">#2<" in composite_chart(data) and ">#1<" in composite_chart(data)  # the keep and the new baseline
    # `show 2`: the user's commit set beside the keep it replaced, with what it changed, as a trial is shown
    detail = trial_detail(store, root, first.study, 2)
    assert detail.before_trial == 1 and detail.diff[-2:] == ["-Answer.!", "+Answer plainly."]
    console = Console(record=True, width=200)
    print_all(console, show_renderables(detail))
    shown = console.export_text()
    assert "new baseline: HEAD held instructions of yours" in shown
    assert f"suite composite {rows[1]['composite']:.3f} → {rows[2]['composite']:.3f}" in shown
    assert trial_detail(store, root, first.study, 0).diff == []  # the study's first baseline: nothing before it
