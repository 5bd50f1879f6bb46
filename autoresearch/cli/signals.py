"""How the CLI's commands stop on a signal: SIGTERM as a Ctrl-C that abandons what is in progress, SIGHUP (the
terminal closed) likewise or, for a run, as a first Ctrl-C, and an end by the signal once the command has said
what it did."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import Terminated

TERMINAL_FDS = (1, 2)  # stdout, stderr


@contextmanager
def stop_signals(on_hangup: Callable[[], None] | None = None) -> Iterator[list[int]]:
    """SIGTERM raises Terminated once (a KeyboardInterrupt), so what a Ctrl-C stops cleanly stops so here too.

    SIGHUP, the terminal closing (an ssh session dropped, a terminal window shut), does the same, or calls
    `on_hangup` instead where the command can finish what it is doing first; either way what went to the
    terminal goes to /dev/null from then on, since every write to a hung-up terminal fails. Under nohup (SIGHUP
    ignored) a hangup changes nothing. Yields the signals received, in order, for end_by_signal once the
    command has said what it did."""
    received: list[int] = []
    # Which outputs are the terminal must be known now: once it hangs up, isatty() fails on it too.
    terminal = [fd for fd in TERMINAL_FDS if os.isatty(fd)]

    def on_sigterm(signum, frame):
        if signal.SIGTERM in received:
            return  # already abandoning
        received.append(signum)
        raise Terminated()

    def on_sighup(signum, frame):
        _detach(terminal)
        if received:
            return  # already stopping
        received.append(signum)
        if on_hangup is None:
            raise Terminated()
        on_hangup()

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_sigterm)}
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:  # nohup's: the user asked the command to outlive the terminal
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_sighup)
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _detach(fds: list[int]) -> None:
    """Point the terminal's outputs at /dev/null, as nohup points them at a file: the command goes on quietly."""
    if not fds:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    fds.clear()


def end_by_signal(signum: int) -> None:
    """End the process by the signal that stopped it, once the run closed cleanly: a shell then reports 128 + N
    and systemd a clean stop, as for any program that a signal ended."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # where the signal's default does not end the process


def end_stopped(store, received: list[int]) -> None:
    """End a command that Ctrl-C, SIGTERM or SIGHUP stopped, once it said what it had done: as the signal would
    have."""
    if received:
        store.close()  # the process ends without exit handlers: the store's write-ahead log merged first
        end_by_signal(received[-1])
    sys.exit(130)  # Ctrl-C: as a shell reports a program that SIGINT ended
