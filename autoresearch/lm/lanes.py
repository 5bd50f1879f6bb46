"""Lanes: the threads that run a suite's tasks together, as a batching backend sees them.

A backend that decodes several calls in one batch (lm/backends/batch_decode.py) could step as soon as one
call is waiting, but then which calls share a batch would depend on thread timing, and llama.cpp's
arithmetic depends on the batch: the same seeds would give other replies from run to run. So the threads
of one suite form a Lanes group, and the backend steps only when every live lane of a group whose calls
it holds is blocked in a batching backend; a lane that is parsing a reply or waiting on a server holds the
step back. The batches, and so the replies, then depend on the tasks and seeds only.

One condition variable guards every group and every batching backend's queue: a lane's state and a
backend's readiness change together.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CONDITION = threading.Condition()


class Lanes:
    """A group of threads working one sequence of items; `live` of them still have work."""

    def __init__(self, live: int):
        self.live = live
        self.blocked = 0  # lanes now waiting for a batching backend's reply
        self.stopped = False  # the caller wants no more results: model calls not yet started are not made

    def leave(self) -> None:
        """This lane has no more work: the others need not wait for it."""
        with CONDITION:
            self.live -= 1
            CONDITION.notify_all()

    @property
    def all_blocked(self) -> bool:
        return self.blocked >= self.live


_CURRENT: contextvars.ContextVar[Lanes | None] = contextvars.ContextVar("autoresearch_lanes", default=None)
_INDEX: contextvars.ContextVar[int | None] = contextvars.ContextVar("autoresearch_lane_index", default=None)


def current() -> Lanes | None:
    """The group of the calling thread, or None for a thread that works alone."""
    return _CURRENT.get()


def stopped() -> bool:
    """Whether the calling thread's group was stopped: its next model call would be work thrown away."""
    group = _CURRENT.get()
    return group is not None and group.stopped


def index() -> int | None:
    """Which lane of its group the calling thread is (0, 1, …), or None for a thread that works alone."""
    return _INDEX.get()


@contextmanager
def lane(group: Lanes, number: int = 0) -> Iterator[None]:
    """Run the body as lane `number` of group (in the calling thread's context); leave the group at the end."""
    reset, reset_index = _CURRENT.set(group), _INDEX.set(number)
    try:
        yield
    finally:
        _CURRENT.reset(reset)
        _INDEX.reset(reset_index)
        group.leave()
