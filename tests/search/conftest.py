from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from autoresearch.workspace.workspace import init_workspace


@pytest.fixture
def loop_workspace(tmp_path: Path):
    """A fresh git workspace with fake-backend friendly settings: no revisions, known tasks."""
    init_workspace(tmp_path / "ws")

    def configure(search_tasks: int = 2, holdout_tasks: int = 1, keep_threshold: float = 0.1,
                  extra: str = "", confidence: float = 0.75, reuse_replies: bool = True, name: str = "ws") -> Path:
        root = tmp_path / name  # another name: a second workspace beside the first
        if not root.exists():
            init_workspace(root)
        tasks = []
        for i in range(search_tasks + holdout_tasks):
            split = "search" if i < search_tasks else "holdout"
            tasks.append(f'[[tasks]]\nid = "t{i}"\nsplit = "{split}"\nprompt = "Task number {i}."\n'
                         f'criteria = [{{ kind = "max_words", value = 400 }}]\n')
        (root / "rubrics" / "tasks.toml").write_text("\n".join(tasks))
        config = (root / "autoresearch.toml").read_text()
        config = config.replace("keep_threshold = 0.1", f"keep_threshold = {keep_threshold}")
        config = config.replace("max_revision_rounds = 1", "max_revision_rounds = 0")
        # The scripted pipeline moves every task by the same amount, so a keep's differences have no spread and
        # the rule asks a sign test over the tasks (evaluation/paired.py): at 75% two tasks all one way suffice;
        # the starter's 95% needs five.
        config = config.replace("confidence = 0.95", f"confidence = {confidence}")
        if not reuse_replies:  # every call made, as a test that counts a backend's calls or faults needs
            config = config.replace("reuse_replies = true", "reuse_replies = false")
        (root / "autoresearch.toml").write_text(config + extra)
        (root / "instructions" / "producer.md").write_text("Answer.\n")
        subprocess.run(["git", "commit", "-qam", "test settings"], cwd=root, check=True,
                       env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                            "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})
        return root

    return configure


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on loopback for this test session (see tests/search/postgres.py)."""
    import os

    from postgres import REQUIRE_ENV, PostgresServer, server_bin

    bindir = server_bin()
    if bindir is None:
        message = "PostgreSQL server not installed (scripts/ensure_postgres.sh installs Debian's package)"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bindir).start()
    yield server
    server.stop()
