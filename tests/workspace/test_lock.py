"""The runs of this machine: each run lists itself while it holds its workspace's lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from autoresearch.workspace.lock import (
    RunLock,
    machine_runs_dir,
    process_start,
    running_here,
    runs_on_this_machine,
)


def test_a_run_is_listed_for_other_workspaces_while_it_holds_its_lock(tmp_path):
    a, b = tmp_path / "a" / "runs", tmp_path / "b" / "runs"
    with RunLock(a):
        assert runs_on_this_machine(b) == []  # this very process: not another run
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pathlib import Path; from autoresearch.workspace.lock import RunLock\n"
        f"lock = RunLock(Path({str(a)!r})); lock.acquire(); print('held', flush=True); sys.stdin.readline(); "
        "lock.release(); print('released', flush=True); sys.stdin.read()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        [run] = runs_on_this_machine(b)
        assert run["pid"] == holder.pid and run["workspace"] == str((tmp_path / "a").resolve())
        assert runs_on_this_machine(a) == []  # its own workspace: the lock says so, not this list
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert not (machine_runs_dir() / f"{holder.pid}.json").exists()  # unlisted by the run, still alive
        assert runs_on_this_machine(b) == []
    finally:
        holder.kill()


def test_a_killed_run_is_not_listed_and_its_entry_goes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    machine_runs_dir().mkdir(parents=True, exist_ok=True)
    entry = machine_runs_dir() / f"{dead.pid}.json"
    entry.write_text(json.dumps({"pid": dead.pid, "workspace": "/elsewhere", "started": "2026-12-04T23:04:00+00:00"}))
    assert runs_on_this_machine(tmp_path / "runs") == []
    assert not entry.exists()
    assert os.environ["XDG_RUNTIME_DIR"] in str(machine_runs_dir())  # the test's own list (tests/conftest.py)


def test_a_killed_runs_pid_handed_to_another_process_is_not_a_run(tmp_path):
    # After a kill -9 the run's entry and lock file stay; the kernel may give its pid to any later process.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = process_start(other.pid)
        assert started is not None  # Linux: read from /proc
        machine_runs_dir().mkdir(parents=True, exist_ok=True)
        entry = machine_runs_dir() / f"{other.pid}.json"
        killed_run = {"pid": other.pid, "pid_start": started - 1, "workspace": "/elsewhere", "started": "2026-12-04"}
        entry.write_text(json.dumps(killed_run))
        runs = tmp_path / "runs"
        runs.mkdir()
        (runs / "run.lock").write_text(json.dumps({**killed_run, "host": socket.gethostname()}))

        assert runs_on_this_machine(tmp_path / "other" / "runs") == []
        assert not entry.exists()
        assert running_here(runs) is None

        entry.write_text(json.dumps({**killed_run, "pid_start": started}))  # the process that wrote it: a run
        (runs / "run.lock").write_text(json.dumps({**killed_run, "pid_start": started, "host": socket.gethostname()}))
        assert [run["pid"] for run in runs_on_this_machine(tmp_path / "other" / "runs")] == [other.pid]
        assert running_here(runs)["pid"] == other.pid
    finally:
        other.kill()


def test_a_list_folder_someone_else_made_is_not_written_to(tmp_path, monkeypatch):
    # /tmp is shared: a folder of the list's name made by another user (here: a link to elsewhere) is not ours.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    machine_runs_dir().parent.mkdir(parents=True, exist_ok=True)
    machine_runs_dir().symlink_to(elsewhere)
    with RunLock(tmp_path / "ws" / "runs"):
        assert list(elsewhere.iterdir()) == []
