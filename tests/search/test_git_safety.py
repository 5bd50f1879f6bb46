"""Git safety: only the instruction file is committed, the user's other files are untouched, bad git
states are refused with one line, and runs/run.lock keeps two runs off one workspace."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner
from scripted import ONLY_PRODUCER, ScriptedPipeline, git, producer_only

from autoresearch.cli.main import main
from autoresearch.errors import WorkspaceError
from autoresearch.lm import preflight
from autoresearch.pipeline import harness
from autoresearch.search.study import Study
from autoresearch.workspace.lock import RunLock
from autoresearch.workspace.versioning import InstructionRepo, write_atomic
from autoresearch.workspace.workspace import load_workspace


def make_study(root, variants=("Answer!!\n",)):
    pipeline = ScriptedPipeline(variants=list(variants))
    return Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)


def cli_run(root, monkeypatch, *args):
    pipeline = ScriptedPipeline(variants=["Answer!!\n"])
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    return CliRunner().invoke(main, ["run", "-w", str(root), "--trials", "1", *args])


def test_a_keep_commits_the_instruction_file_alone_and_leaves_the_users_files(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    (root / "README.md").write_text("tracked\n")
    git(root, "add", "README.md")
    git(root, "commit", "-qm", "readme")
    (root / "README.md").write_text("tracked, edited and staged\n")
    git(root, "add", "README.md")
    (root / "rubrics" / "evaluator.md").write_text((root / "rubrics" / "evaluator.md").read_text())  # unchanged
    (root / "scratch.txt").write_text("untracked\n")
    (root / "instructions" / "planner.md").write_text("a planner edit the loop must not touch\n")  # not optimizable
    before = git(root, "status", "--porcelain")

    summary = make_study(root).optimize(n_trials=1)

    assert [o.status for o in summary.outcomes] == ["keep"]
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == ["instructions/producer.md"]
    assert git(root, "status", "--porcelain") == before  # staged stays staged, untracked stays untracked
    assert (root / "README.md").read_text() == "tracked, edited and staged\n"
    assert (root / "scratch.txt").read_text() == "untracked\n"
    assert (root / "instructions" / "planner.md").read_text() == "a planner edit the loop must not touch\n"
    assert git(root, "diff", "--cached", "--name-only").split() == ["README.md"]


def test_commit_message_and_trailers_name_the_trial_and_study(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    summary = make_study(root).optimize(n_trials=1)
    repo = InstructionRepo(root, ["instructions/producer.md"])
    assert repo.study_commits(summary.branch, summary.study) == {1: git(root, "rev-parse", "HEAD").strip()}
    assert repo.study_commits(summary.branch, "another-study") == {}


def test_refuses_a_non_git_workspace_with_one_line(loop_workspace, monkeypatch, tmp_path):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    plain = tmp_path / "plain"
    subprocess.run(["cp", "-r", str(root), str(plain)], check=True)
    subprocess.run(["rm", "-rf", str(plain / ".git")], check=True)
    result = cli_run(plain, monkeypatch)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "not a git repository" in result.stderr
    assert not (plain / "runs" / "autoresearch.db").exists()


def test_refuses_a_workspace_inside_a_projects_repository_with_one_line_that_says_what_to_do(
        loop_workspace, monkeypatch, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q", "-b", "main")
    workspace = project / "prompts" / "agent"
    workspace.parent.mkdir()
    subprocess.run(["cp", "-r", str(producer_only(loop_workspace(extra=ONLY_PRODUCER))), str(workspace)], check=True)
    subprocess.run(["rm", "-rf", str(workspace / ".git")], check=True)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "the project, its prompts in a folder")
    result = cli_run(workspace, monkeypatch)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"{workspace}: a folder of the git repository {project}, not a repository of its own" in result.stderr
    assert "`git init` here" in result.stderr and f"outside {project}" in result.stderr
    # The project was not touched: its branch, its branches, its files.
    assert git(project, "branch", "--format=%(refname:short)").split() == ["main"]
    assert git(project, "status", "--porcelain") == "" and not (workspace / "runs" / "autoresearch.db").exists()


def test_init_inside_a_projects_repository_says_how_to_keep_the_project_clean(tmp_path):
    git(tmp_path, "init", "-q")
    result = CliRunner().invoke(main, ["init", str(tmp_path / "prompts" / "agent")])
    assert result.exit_code == 0, result.output
    assert (f"note: it is a git repository of its own inside {tmp_path} (a run checks out its own branch, which "
            f"must not switch your project's): add prompts/agent/ to {tmp_path}/.gitignore") in result.output
    plain = CliRunner().invoke(main, ["init", str(tmp_path.parent / f"{tmp_path.name}-alone")])
    assert plain.exit_code == 0 and "note:" not in plain.output


def test_refuses_a_detached_head_with_one_line(loop_workspace, monkeypatch):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    git(root, "checkout", "-q", "--detach")
    result = cli_run(root, monkeypatch)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "HEAD is detached" in result.stderr
    assert not (root / "runs" / "autoresearch.db").exists()


@pytest.mark.parametrize("yours", ["autoresearch", "autoresearch/{study}/old"])
def test_refuses_a_branch_of_the_users_in_the_way_of_the_study_branch_with_one_line(loop_workspace, monkeypatch,
                                                                                    yours):
    # A branch named `autoresearch` (a clone of this project's own repository has one) made git refuse to create
    # `autoresearch/<study>`, and the run died in a traceback.
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    study = make_study(root).name
    git(root, "branch", yours.format(study=study))
    result = cli_run(root, monkeypatch)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: {root}: the study's branch autoresearch/{study} cannot be created beside your "
                             f"branch {yours.format(study=study)} (git cannot hold both); rename that one (`git branch "
                             f"-m {yours.format(study=study)} <new name>`) and run again\n")
    assert not (root / "runs" / "autoresearch.db").exists()
    git(root, "branch", "-m", yours.format(study=study), "mine")  # as it says
    assert cli_run(root, monkeypatch).exit_code == 0


@pytest.mark.parametrize("how", ["edited", "staged", "deleted"])
def test_refuses_dirty_instruction_files_with_one_line(loop_workspace, monkeypatch, how):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    path = root / "instructions" / "producer.md"
    if how == "deleted":
        path.unlink()
    else:
        path.write_text("my edit\n")
        if how == "staged":
            git(root, "add", str(path))
    result = cli_run(root, monkeypatch)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    if how == "deleted":  # refused when the workspace loads, before git is asked
        assert result.stderr.strip() == f"error: {path}: instruction file not found"
    else:
        assert result.stderr.strip() == ("error: instructions/producer.md: uncommitted changes to optimizable"
                                         " instructions; commit or stash them first")
    assert not (root / "runs" / "autoresearch.db").exists()
    assert not (root / "runs" / "run.lock").exists()
    if how != "deleted":
        assert path.read_text() == "my edit\n"


def test_a_file_edited_during_the_run_is_not_overwritten_by_a_keep(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    study = make_study(root)

    def observer(kind, data):
        if kind == "holdout":  # the keep is decided; its commit comes next
            (root / "instructions" / "producer.md").write_text("edited at 3 a.m.\n")

    study.observer = observer
    with pytest.raises(WorkspaceError, match="changed during the run"):
        study.optimize(n_trials=1)
    assert (root / "instructions" / "producer.md").read_text() == "edited at 3 a.m.\n"
    assert not (root / "runs" / "run.lock").exists()


def test_a_second_run_on_the_same_workspace_is_refused_naming_the_other(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    with RunLock(root / "runs"):
        with pytest.raises(WorkspaceError) as info:
            make_study(root).optimize(n_trials=1)
    message = str(info.value)
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message and "run.lock" in message
    assert not (root / "runs" / "autoresearch.db").exists()


def test_a_second_run_process_is_refused_through_the_cli(loop_workspace, monkeypatch, kit):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    with kit.run_lock_held(root / "runs") as holder:
        result = cli_run(root, monkeypatch)
        assert result.exit_code == 2
        assert f"pid {holder.pid} on {socket.gethostname()}" in result.stderr
        assert result.stderr.strip().count("\n") == 0
    # Killed: its lock is stale now, and the next run clears it with a note.
    result = cli_run(root, monkeypatch)
    assert result.exit_code == 0, result.output
    assert f"stale lock: the run of pid {holder.pid}" in result.output
    assert not (root / "runs" / "run.lock").exists()


def test_a_stale_lock_of_a_dead_process_is_cleared(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / "runs" / "run.lock").write_text(json.dumps(
        {"pid": dead.pid, "host": socket.gethostname(), "started": "2024-01-01T03:00:00+00:00"}))
    summary = make_study(root).optimize(n_trials=1)
    assert any(f"pid {dead.pid}" in n and "stale" in n for n in summary.notes)
    assert not (root / "runs" / "run.lock").exists()


def test_a_lock_from_another_host_is_not_assumed_stale(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    (root / "runs" / "run.lock").write_text(json.dumps({"pid": 4242, "host": "other-machine", "started": "x"}))
    with pytest.raises(WorkspaceError, match="pid 4242 on other-machine.*delete"):
        make_study(root).optimize(n_trials=1)
    assert (root / "runs" / "run.lock").exists()


def test_write_atomic_replaces_whole_files_and_keeps_the_mode(tmp_path):
    target = tmp_path / "producer.md"
    target.write_text("old\n")
    target.chmod(0o640)
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and (target.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["producer.md"]  # no temporary file left


def test_a_trial_stopped_by_an_error_is_closed_at_once(loop_workspace):
    from autoresearch.store import Store

    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    study = make_study(root)
    study.observer = lambda kind, data: (kind == "holdout" and (root / "instructions" / "producer.md")
                                         .write_text("edited at 3 a.m.\n"))
    with pytest.raises(WorkspaceError):
        study.optimize(n_trials=1)
    row = Store.for_workspace(root / "runs").trial(study.name, 1)
    assert row["status"] == "interrupted" and row["note"] == "stopped by an error: WorkspaceError"
    lines = (root / "runs" / "results.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = {line.split("\t")[0]: dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]}
    assert sorted(rows) == ["0", "1"]  # the baseline, then the trial the error stopped
    assert rows["1"]["status"] == "interrupted" and rows["1"]["commit"] == ""  # closed, nothing committed
    assert rows["1"]["description"].endswith("stopped by an error: WorkspaceError")


def _hostile_git(root):
    """Settings and hooks many developers' repositories have, each of which made a keep fail (or hang) hours into
    a run: commits signed (by a signing program that fails, as gpg does without an agent), and hooks that
    `--no-verify` does not skip, failing; a post-commit hook leaves a mark if it runs."""
    signer = root.parent / "gpg-that-fails"
    signer.write_text("#!/bin/sh\necho 'gpg: signing failed: No pinentry' >&2\nexit 2\n")
    signer.chmod(0o755)
    git(root, "config", "commit.gpgsign", "true")
    git(root, "config", "gpg.program", str(signer))
    hooks = root / ".git" / "hooks"
    for name, body in [("prepare-commit-msg", "echo 'commitizen: enter a type' >&2; exit 1"),
                       ("post-commit", f"touch {root.parent / 'post-commit-ran'}"),
                       ("pre-push", "echo 'running the test suite…' >&2; exit 1")]:
        (hooks / name).write_text(f"#!/bin/sh\n{body}\n")
        (hooks / name).chmod(0o755)


def test_a_keep_is_committed_unsigned_and_without_the_repositorys_hooks(loop_workspace):
    # With commit.gpgsign on, or a prepare-commit-msg hook, the first keep failed (`git commit failed: error: gpg
    # failed to sign the data`) and the run stopped, the keep lost.
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    _hostile_git(root)
    summary = make_study(root).optimize(n_trials=1)
    assert [o.status for o in summary.outcomes] == ["keep"]
    commit = git(root, "cat-file", "commit", "HEAD")
    assert "gpgsig" not in commit and "author autoresearch <autoresearch@localhost>" in commit
    assert not (root.parent / "post-commit-ran").exists()
    assert git(root, "config", "commit.gpgsign").strip() == "true"  # the user's settings are left as they were


def test_a_keep_waits_for_another_git_process_that_holds_the_index(loop_workspace):
    # An editor's `git status`, run as it sees the instruction file change, held .git/index.lock for a moment as
    # the keep committed: git failed at once, and the run stopped with the keep lost.
    import threading

    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    study = make_study(root)
    lock = root / ".git" / "index.lock"

    def observer(kind, data):
        if kind == "holdout" and data["trial"] == 1:  # the keep is decided; its commit comes next
            lock.write_text("")
            threading.Timer(0.3, lock.unlink).start()

    study.observer = observer
    summary = study.optimize(n_trials=1)
    assert [o.status for o in summary.outcomes] == ["keep"] and summary.outcomes[0].commit
    assert git(root, "status", "--porcelain") == ""


def test_an_index_lock_that_stays_is_one_line_naming_it(loop_workspace, monkeypatch):
    from autoresearch.workspace import versioning

    monkeypatch.setattr(versioning, "INDEX_WAIT_S", 0.2)
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    study = make_study(root)
    lock = root / ".git" / "index.lock"
    study.observer = lambda kind, data: kind == "holdout" and data["trial"] == 1 and lock.write_text("")
    with pytest.raises(WorkspaceError) as raised:
        study.optimize(n_trials=1)
    assert str(raised.value) == (f"{lock}: another git process has held git's index for 0.2 s; if none is running "
                                 "(one that crashed leaves this file), delete it and run the same command")
    assert (root / "instructions" / "producer.md").read_text() == "Answer.\n"  # the keep's text put back
    lock.unlink()
    assert git(root, "status", "--porcelain") == ""


def test_a_run_beside_a_run_in_another_workspace_says_they_share_the_machine(loop_workspace, monkeypatch, tmp_path,
                                                                               kit):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    other = tmp_path / "other"
    with kit.run_lock_held(other / "runs") as holder:
        result = cli_run(root, monkeypatch)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"note: `autoresearch run` (pid {holder.pid}, started " in text
    assert f"is running on this machine, in {other.resolve()}: the two share the machine" in text
