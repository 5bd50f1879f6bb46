"""A real `autoresearch run` on the embedded SmolLM2 model: commits only keeps, leaves git clean, and the review
commands read what it left (one real run for both: it is the suite's longest test)."""

from __future__ import annotations

import re
import sqlite3

import pytest
from click.testing import CliRunner
from review_checks import check_review
from scripted import git

from autoresearch.cli.main import main


@pytest.mark.embedded
def test_real_run_commits_each_keep_and_nothing_else_and_the_review_commands_read_it(loop_workspace, kit):
    # Two search tasks, one holdout and the incumbent's noise from 2 seed sets (not 4) keep this to about a
    # minute on 2 cores: what is under test is the git and review side of a real run. (With seed 2 on the Intel
    # build the first trial ends at the screen, -0.10, and the second, +0.75 on search, is vetoed by the holdout.
    # 2 tasks × 2 seeds are at most 4 independent differences, under the 5 a 95% bound needs: at 95% the run
    # would stop before its baseline (cannot_keep), so it runs at 90%, where 4 suffice. A trial whose seeds
    # changed no score is 2 differences and still no keep: the keep's commit is the fake-backend tests', and here
    # what is asserted is that a real run leaves no commit but its keeps, and what the review commands read.)
    root = loop_workspace(search_tasks=2, holdout_tasks=1, confidence=0.9, extra="\n[search]\nnoise_repeats = 2\n")
    tasks = (root / "rubrics" / "tasks.toml").read_text()
    (root / "rubrics" / "tasks.toml").write_text(tasks.replace(
        'criteria = [{ kind = "max_words", value = 400 }]',
        'criteria = [{ kind = "max_words", value = 60 }, { kind = "min_numbered", value = 2 }]'))
    # Answers of up to 120 tokens, not 280: the criteria allow 60 words. Plans of up to 64 (the planner filled its
    # 120 on every call; a cut-off plan's JSON is repaired). Judgements of up to 64, not 160: the scores come first
    # and are the same, the critique after them is cut (the judge's decode was half of the run's tokens).
    kit.shorten_replies(root / "autoresearch.toml", planner=64, producer=120, judge=64)
    git(root, "commit", "-qam", "tighter criteria, shorter answers")
    start = git(root, "rev-parse", "HEAD").strip()

    result = CliRunner().invoke(main, ["run", "-w", str(root), "--trials", "2", "--seed", "2"])

    assert result.exit_code == 0, result.output
    assert "trials (whole study):" in result.output
    rows = [line.split("\t") for line in (root / "runs" / "results.tsv").read_text().splitlines()[1:]]
    assert [r[5] for r in rows][0] == "baseline" and len(rows) == 3
    keeps = [r for r in rows if r[5] == "keep"]
    commits = git(root, "rev-list", f"{start}..HEAD").split()
    assert len(commits) == len(keeps)
    for sha in commits:
        files = git(root, "show", "--name-only", "--format=", sha).split()
        assert len(files) == 1 and re.fullmatch(r"instructions/(planner|producer)\.md", files[0])
    assert git(root, "status", "--porcelain") == ""
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    calls = db.execute("SELECT COUNT(*), MIN(completion_tokens), MIN(joules) FROM calls WHERE status='ok'").fetchone()
    assert calls[0] > 0 and calls[1] > 0 and calls[2] > 0
    check_review(root)
