"""The terminal closing under a run (SIGHUP: an ssh session dropped, a terminal window shut): the trial in progress
finishes, the run closes cleanly and ends by the signal; under nohup nothing changes."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time

from scripted import (
    ONLY_PRODUCER,
    git,
    producer_only,
    scripted_run,
    wait_for_running_trial,
)

from autoresearch.search.recovery import deferred_signals
from autoresearch.store import Store
from autoresearch.testing import signals_of_a_terminal


def _trials(root):
    store = Store.for_workspace(root / "runs")
    study = store.conn.execute("SELECT name FROM studies").fetchone()[0]
    return [(r["number"], r["status"]) for r in store.trials(study)]


def _closed_cleanly(root) -> None:
    assert not (root / "runs" / "run.lock").exists()
    assert not (root / "runs" / "autoresearch.db-wal").exists()  # the store closed, its log checkpointed
    assert git(root, "status", "--porcelain") == ""


def test_a_closed_terminal_lets_the_trial_in_progress_finish_then_the_run_ends_by_the_hangup(loop_workspace):
    # It killed the run at once: the trial in progress left running and the lock left behind, for the next start
    # to repair. Here the run's terminal is a real pseudo-terminal, and closing its far end is the hangup.
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    terminal, far_end = os.openpty()

    def on_the_terminal():  # a session of its own, whose controlling terminal is the pseudo-terminal
        signals_of_a_terminal()
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    run = scripted_run(root, "--trials", "500", delay_s="0.05", stdin=far_end, stdout=far_end, stderr=far_end,
                       preexec_fn=on_the_terminal)
    os.close(far_end)
    shown, reading = bytearray(), threading.Event()
    reading.set()

    def read_the_screen():  # as a terminal does: the live view would block once the terminal's buffer filled
        while reading.is_set():
            if select.select([terminal], [], [], 0.01)[0]:
                shown.extend(os.read(terminal, 65536))

    reader = threading.Thread(target=read_the_screen)
    reader.start()
    running = wait_for_running_trial(run, root)
    reading.clear()
    reader.join()
    assert running, bytes(shown).decode(errors="replace")
    assert b"autoresearch run" in shown  # the live view was on the terminal
    os.close(terminal)  # the terminal hangs up: the kernel sends SIGHUP to the run, its session's leader
    assert run.wait(timeout=60) == -signal.SIGHUP  # ended by the signal after closing itself (a crash exits 1)
    _closed_cleanly(root)
    trials = _trials(root)
    assert trials[-1][0] == running and trials[-1][1] in ("keep", "discard", "pruned")  # finished, not abandoned
    assert "running" not in {status for _, status in trials} and "interrupted" not in {s for _, s in trials}


def test_a_run_logging_to_a_file_says_the_terminal_closed_and_how_to_keep_it_going(loop_workspace, tmp_path):
    # `autoresearch run > run.log &` without nohup: the shell passes its hangup on to the job when it exits.
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    with open(tmp_path / "run.log", "w") as log:
        run = scripted_run(root, "--trials", "500", delay_s="0.05", stdout=log, stderr=subprocess.STDOUT)
        running = wait_for_running_trial(run, root)
        assert running, (tmp_path / "run.log").read_text()
        run.send_signal(signal.SIGHUP)
        assert run.wait(timeout=60) == -signal.SIGHUP
    text = (tmp_path / "run.log").read_text()
    assert ("stopped after the trial in progress: the terminal closed (SIGHUP); start the run with nohup or in "
            "tmux to keep it going after you log out") in " ".join(text.split())
    assert "Traceback" not in text
    _closed_cleanly(root)
    number, status = _trials(root)[-1]
    assert number == running and status in ("keep", "discard", "pruned")  # finished, not abandoned


def test_under_nohup_a_hangup_changes_nothing(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    run = scripted_run(root, "--trials", "6", delay_s="0.05", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # as nohup does
    assert wait_for_running_trial(run, root, after=2)
    run.send_signal(signal.SIGHUP)
    assert run.wait(timeout=60) == 0, run.stderr.read()
    assert [number for number, _ in _trials(root)] == list(range(7))  # the baseline and all 6 trials


def test_a_hangup_is_held_through_a_keep_only_where_it_would_end_the_process():
    # With no handler, SIGHUP would end the process half-way through a commit: held, then delivered.
    code = ("import os, signal, time\nfrom autoresearch.search.recovery import deferred_signals\n"
            "with deferred_signals():\n    os.kill(os.getpid(), signal.SIGHUP)\n    time.sleep(0.05)\n"
            "    print('survived the block', flush=True)\nprint('after the block')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=signals_of_a_terminal)
    assert done.returncode == -signal.SIGHUP and done.stdout == "survived the block\n"
    # With the CLI's handler, which only moves output off the closed terminal and asks the run to stop after its
    # trial, it runs at once: writes to the closed terminal would fail in the meantime.
    received: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: received.append(signum))
    try:
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
            assert received == [signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, previous)
