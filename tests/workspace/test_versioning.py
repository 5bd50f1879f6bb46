"""InstructionRepo against a remote: a study branch fetched, or known to be missing, whatever git's language."""

from __future__ import annotations

import subprocess

import git
import pytest

from autoresearch.errors import WorkspaceError
from autoresearch.workspace.versioning import InstructionRepo


def _git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def clone(tmp_path):
    remote = tmp_path / "remote.git"
    _git(tmp_path, "init", "-q", "--bare", str(remote))
    _git(tmp_path, "clone", "-q", str(remote), "ws")
    ws = tmp_path / "ws"
    (ws / "instructions").mkdir()
    (ws / "instructions" / "producer.md").write_text("Answer.\n")
    _git(ws, "add", ".")
    _git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    _git(ws, "push", "-q", "origin", "HEAD:refs/heads/main")
    return InstructionRepo(ws, ["instructions/producer.md"])


def test_fetch_branch_gives_the_remotes_tip_or_none_when_the_remote_lacks_it(clone):
    assert clone.fetch_branch("origin", "main") == clone.head_sha()
    assert clone.fetch_branch("origin", "autoresearch/nightly") is None  # a new shared study: no branch there yet


def test_a_missing_branch_is_told_apart_in_any_language(clone, monkeypatch):
    # The missing branch was recognised by git's English words, "couldn't find remote ref": with git speaking
    # German the first worker of a new shared study was refused ("cannot fetch").
    def fetch_in_german(*args, **kwargs):
        raise git.GitCommandError(["git", "fetch"], 128,
                                  "fatal: Konnte Remote-Referenz refs/heads/autoresearch/nightly nicht finden")

    monkeypatch.setattr(git.cmd.Git, "fetch", fetch_in_german, raising=False)  # every repo's git, this test only
    assert clone.fetch_branch("origin", "autoresearch/nightly") is None


def test_a_remote_that_cannot_be_reached_is_an_error_naming_it(clone, tmp_path):
    _git(clone.root, "remote", "add", "gone", str(tmp_path / "no-such-remote.git"))
    with pytest.raises(WorkspaceError, match="cannot fetch autoresearch/nightly from remote gone: "):
        clone.fetch_branch("gone", "autoresearch/nightly")
