"""A small finished study on the fake backend: baseline, two keeps, a discard, a pruned and a twin trial."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from scripted import ScriptedPipeline, git

from autoresearch.search.study import Study
from autoresearch.workspace.workspace import init_workspace, load_workspace

SEARCH_TASKS = 6  # enough for Optuna's WilcoxonPruner to prune a clearly worse variant after 4 tasks
# The scripted pipeline's seeds change no score, so the default paired pruner defers to its Wilcoxon fallback.
SETTINGS = '\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\nnoise_repeats = 3\n'
# Trial by trial: keep (one '!'), keep (three, and t0's "!!" criterion passes), discard (as good, not better),
# pruned (no '!': clearly worse on every task), the discarded variant again (not re-evaluated), and an empty
# proposal (failed: nothing to evaluate).
VARIANTS = ["Answer!\nBe brief.\n", "Answer!!!\nBe brief.\n", "Answer!!!\nBe short.\n", "Answer plainly.\n",
            "Answer!!!\nBe short.\n", ""]
STATUSES = ["baseline", "keep", "keep", "discard", "pruned", "discard", "failed"]


@dataclass(frozen=True)
class Overnight:
    root: Path
    study: str
    branch: str


def tasks_toml() -> str:
    rows = []
    for i in range(SEARCH_TASKS + 1):
        split = "search" if i < SEARCH_TASKS else "holdout"
        extra = ', { kind = "contains", value = "!!" }' if i == 0 else ""
        rows.append(f'[[tasks]]\nid = "t{i}"\nsplit = "{split}"\nprompt = "Task number {i}."\n'
                    f'criteria = [{{ kind = "max_words", value = 400 }}{extra}]\n')
    return "\n".join(rows)


def build_overnight(base: Path, variants: list[str] = VARIANTS) -> Overnight:
    """Create a workspace under base and run a scripted study of the variants (one trial each) on it."""
    root = init_workspace(base / "ws")
    (root / "rubrics" / "tasks.toml").write_text(tasks_toml())
    config = (root / "autoresearch.toml").read_text()
    config = config.replace("max_revision_rounds = 1", "max_revision_rounds = 0")
    config = config.replace('optimizable = ["producer.md", "planner.md"]', 'optimizable = ["producer.md"]')
    (root / "autoresearch.toml").write_text(config + SETTINGS)
    (root / "instructions" / "producer.md").write_text("Answer.\nBe brief.\n")
    subprocess.run(["git", "commit", "-qam", "review test settings"], cwd=root, check=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})
    pipeline = ScriptedPipeline(variants=variants)
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    summary = study.optimize(n_trials=len(variants))
    return Overnight(root, summary.study, summary.branch)


__all__ = ["Overnight", "build_overnight", "git", "STATUSES", "VARIANTS"]
