"""The command group's last resort: a full disk met anywhere is one line that says where to free space."""

from __future__ import annotations

import errno
from collections import namedtuple

from click.testing import CliRunner

from autoresearch.cli import main as main_module
from autoresearch.cli.main import main

Usage = namedtuple("Usage", "total used free")


def _log_fails_with(monkeypatch, exc: Exception) -> None:
    def fails(*args, **kwargs):
        raise exc

    monkeypatch.setattr(main_module, "_review_target", fails)  # `log`'s first step


def test_a_full_disk_that_names_no_file_names_the_workspace_and_its_free_space(workspace_dir, monkeypatch):
    import sqlite3

    _log_fails_with(monkeypatch, sqlite3.OperationalError("database or disk is full"))
    asked = []
    monkeypatch.setattr(main_module.shutil, "disk_usage", lambda path: asked.append(path) or Usage(10**9, 0, 3 * 1024))
    monkeypatch.chdir(workspace_dir.parent)
    result = CliRunner().invoke(main, ["log", "-w", workspace_dir.name])
    assert result.exit_code == 1
    assert result.stderr == (f"error: the disk is full (database or disk is full; the workspace {workspace_dir} is on "
                             "a disk with 3 KB free); free some space and run the same command (a run resumes from "
                             "its finished trials)\n")
    assert asked == [workspace_dir]  # -w as given, relative, made absolute


def test_a_full_disk_that_names_its_file_says_only_that(workspace_dir, monkeypatch):
    full = OSError(errno.ENOSPC, "No space left on device", str(workspace_dir / "runs" / "results.tsv"))
    _log_fails_with(monkeypatch, full)
    result = CliRunner().invoke(main, ["log", "-w", str(workspace_dir)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: the disk is full (writing {workspace_dir}/runs/results.tsv: No space "
                                     "left on device); free some space")


def test_sizes_read_as_people_read_them():
    assert [main_module._size(n) for n in (512, 4096, 120 * 1024**2, int(3.2 * 1024**3))] == \
        ["512 bytes", "4 KB", "120 MB", "3.2 GB"]
