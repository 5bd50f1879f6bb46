"""Knobs are versioned: a study that searches knob values commits them beside the instructions, so a
knob-only keep is a normal commit and a study started from the branch reads them back."""

from __future__ import annotations

import json

from scripted import ScriptedPipeline, git, producer_only

from autoresearch.search.study import Study
from autoresearch.workspace.workspace import load_workspace

KNOBS = ('\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\nnoise_repeats = 1\n'
         'revision_rounds = [0, 1]\n')


def test_a_keep_commits_its_knob_values_beside_the_instructions(loop_workspace):
    root = producer_only(loop_workspace(extra=KNOBS))
    summary = Study(load_workspace(root), backend_factory=ScriptedPipeline(variants=["Answer!\n"]).factory,
                    seed=1, backoff_s=0).optimize(n_trials=1)
    (keep,) = summary.outcomes
    assert keep.status == "keep"
    changed = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert changed == ["instructions/knobs.json", "instructions/producer.md"]
    knobs = json.loads((root / "instructions" / "knobs.json").read_text())
    assert set(knobs) == {"revision_rounds"} and knobs["revision_rounds"] in (0, 1)
    assert f"Autoresearch-Knobs: revision_rounds={knobs['revision_rounds']}" in git(root, "log", "-1", "--format=%B")


def test_a_knob_only_keep_is_a_commit_of_the_knobs_file_alone(loop_workspace):
    root = producer_only(loop_workspace(extra=KNOBS))
    ws = load_workspace(root)
    study = Study(ws, backend_factory=ScriptedPipeline().factory, seed=1, backoff_s=0)
    study.optimize(n_trials=0)  # the baseline
    from autoresearch.search.knobs import knob_files

    text = (root / "instructions" / "producer.md").read_text()
    sha = study.repo.commit_instruction("instructions/producer.md", text, "autoresearch: knobs only", {},
                                        knob_files({"revision_rounds": 1}))
    assert git(root, "show", "--name-only", "--format=", sha.sha).split() == ["instructions/knobs.json"]


def test_a_study_started_from_the_branch_reads_the_knobs_back(loop_workspace, tmp_path):
    root = producer_only(loop_workspace(extra=KNOBS))
    (root / "instructions" / "knobs.json").write_text('{"revision_rounds": 1}\n')
    git(root, "add", "instructions/knobs.json")
    git(root, "commit", "-qm", "knobs from an earlier study")
    summary = Study(load_workspace(root), backend_factory=ScriptedPipeline().factory, seed=1,
                    backoff_s=0).optimize(n_trials=0)
    assert summary.counts == {"baseline": 1}
    import sqlite3
    params = sqlite3.connect(root / "runs" / "autoresearch.db").execute(
        "SELECT params_json FROM trials WHERE number=0").fetchone()[0]
    assert json.loads(params) == {"revision_rounds": 1}
    revisions = sqlite3.connect(root / "runs" / "autoresearch.db").execute(
        "SELECT MAX(revisions) FROM task_results").fetchone()[0]
    assert revisions == 1  # the baseline ran with the committed knob, not the workspace's default (0)
