"""`log`, `show` on a kept commit and `report` from the CLI right after `autoresearch run`: fake and real model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from scripted import ScriptedPipeline, git

from autoresearch.cli.main import main
from autoresearch.lm import preflight
from autoresearch.pipeline import harness
from autoresearch.workspace.workspace import init_workspace


def small_workspace(base: Path) -> Path:
    """The starter workspace cut to two search tasks and one holdout task, as the loop's embedded test does."""
    root = init_workspace(base / "ws")
    tasks = []
    for i, split in enumerate(("search", "search", "holdout")):
        tasks.append(f'[[tasks]]\nid = "t{i}"\nsplit = "{split}"\nprompt = "List two tips for task {i}."\n'
                     'criteria = [{ kind = "max_words", value = 60 }, { kind = "min_numbered", value = 2 }]\n')
    (root / "rubrics" / "tasks.toml").write_text("\n".join(tasks))
    config = (root / "autoresearch.toml").read_text().replace("max_revision_rounds = 1", "max_revision_rounds = 0")
    (root / "autoresearch.toml").write_text(config)
    subprocess.run(["git", "commit", "-qam", "small suite"], cwd=root, check=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})
    return root


def review_after_run(root: Path, trials: int, seed: int) -> int:
    """Run the loop from the CLI, check that every review command works on what it left; return the keeps."""
    cli = CliRunner()
    run = cli.invoke(main, ["run", "-w", str(root), "--trials", str(trials), "--seed", str(seed)])
    assert run.exit_code == 0, run.output
    log = cli.invoke(main, ["log", "-w", str(root), "--json"])
    assert log.exit_code == 0, log.output
    entries = json.loads(log.output)["entries"]
    kept = [line.split("\t") for line in (root / "runs" / "results.tsv").read_text().splitlines()[1:]
            if line.split("\t")[5] == "keep"]
    assert len(entries) == len(kept)
    assert cli.invoke(main, ["log", "-w", str(root)]).exit_code == 0
    if entries:  # show the newest kept commit, by its short sha
        shown = cli.invoke(main, ["show", "-w", str(root), entries[0]["commit"][:10]])
        assert shown.exit_code == 0, shown.output
        assert shown.output.startswith(f"Trial {entries[0]['trial']} · KEEP · commit {entries[0]['commit'][:10]}")
        assert "Tasks, before → after" in shown.output and "producer output" in shown.output
    else:  # nothing kept: the first trial still shows, labelled with how it ended
        shown = cli.invoke(main, ["show", "-w", str(root), "1"])
        assert shown.exit_code == 0, shown.output
        assert shown.output.startswith("Trial 1 · ")
    report = cli.invoke(main, ["report", "-w", str(root), "--open-path-only"])
    assert report.exit_code == 0, report.output
    page = Path(report.output.strip()).read_text(encoding="utf-8")
    assert page.count('<svg class="chart"') >= 5 and "Composite by trial" in page
    assert git(root, "status", "--porcelain") == ""  # reviewing changed nothing git can see
    return len(entries)


def test_review_commands_after_a_cli_run_on_the_fake_backend(tmp_path, monkeypatch):
    root = small_workspace(tmp_path)
    pipeline = ScriptedPipeline(variants=["Answer!!\n", "Answer!!!!\n"])
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    assert review_after_run(root, trials=2, seed=1) >= 1  # the kept-commit path of `show` was exercised


@pytest.mark.embedded
def test_review_commands_after_a_real_run_on_the_embedded_model(tmp_path):
    # About a minute and a half on 2 cores, like the loop's own embedded test.
    review_after_run(small_workspace(tmp_path), trials=2, seed=3)
