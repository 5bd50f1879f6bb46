"""How the CLI's commands stop on a signal: SIGTERM as a Ctrl-C that abandons what is in progress, and an end
by the signal once the command has said what it did."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

from ..errors import Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[list[int]]:
    """SIGTERM raises Terminated once (a KeyboardInterrupt), so what a Ctrl-C stops cleanly stops so here too;
    yields the list that records it, for end_by_signal once the command has said what it did."""
    received: list[int] = []

    def on_sigterm(signum, frame):
        if received:
            return  # already stopping
        received.append(signum)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def end_by_signal(signum: int) -> None:
    """End the process by the signal that stopped it, once the run closed cleanly: a shell then reports 128 + N
    and systemd a clean stop, as for any program that a signal ended."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # where the signal's default does not end the process


def end_stopped(store, terminated: list[int]) -> None:
    """End a command that Ctrl-C or SIGTERM stopped, once it said what it had done: as the signal would have."""
    if terminated:
        store.close()  # the process ends without exit handlers: the store's write-ahead log merged first
        end_by_signal(terminated[0])
    sys.exit(130)  # Ctrl-C: as a shell reports a program that SIGINT ended
