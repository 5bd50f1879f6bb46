"""`log`, `show` on a kept commit and `report` from the CLI right after `autoresearch run` on the fake backend."""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner
from review_checks import check_review
from scripted import ScriptedPipeline

from autoresearch.cli.main import main
from autoresearch.lm import preflight
from autoresearch.pipeline import harness
from autoresearch.workspace.workspace import init_workspace


def small_workspace(base: Path, search_tasks: int = 2) -> Path:
    """The starter workspace cut to two search tasks and one holdout task, as the loop's embedded test does."""
    root = init_workspace(base / "ws")
    tasks = []
    for i, split in enumerate(["search"] * search_tasks + ["holdout"]):
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
    run = CliRunner().invoke(main, ["run", "-w", str(root), "--trials", str(trials), "--seed", str(seed)])
    assert run.exit_code == 0, run.output
    return check_review(root)


def test_review_commands_after_a_cli_run_on_the_fake_backend(tmp_path, monkeypatch):
    # The scripted pipeline moves every task alike and the seeds change nothing: a keep at 95% needs the sign
    # test over five tasks (evaluation/paired.py).
    root = small_workspace(tmp_path, search_tasks=5)
    pipeline = ScriptedPipeline(variants=["Answer!!\n", "Answer!!!!\n"])
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    assert review_after_run(root, trials=2, seed=1) >= 1  # the kept-commit path of `show` was exercised


# The review commands after a real run on the embedded model: tests/search/test_embedded_run.py (one run for both).
