"""Work over a sequence of items up to N at a time, its results (and the calls each item made) handed back
in item order from the caller's thread: how a suite's tasks run concurrently against a server that serves
requests in parallel, or in one batch on the embedded model, while the pruner and the store see them as if
run one by one."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from ..lm import lanes
from ..lm.calls import CallRecorder

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Queue(Generic[Item]):
    """The items not yet taken, handed out in order to whichever lane asks first; closed: none left."""

    def __init__(self, items: Sequence[Item]):
        self._items = list(enumerate(items))
        self._next = 0
        self._lock = threading.Lock()
        self.closed = False

    def take(self) -> tuple[int, Item] | None:
        with self._lock:
            if self.closed or self._next >= len(self._items):
                return None
            self._next += 1
            return self._items[self._next - 1]

    def close(self) -> int:
        """Hand out nothing more; the index of the first item never taken."""
        with self._lock:
            self.closed = True
            return self._next


def in_order(work: Callable[[Item, CallRecorder], Result], items: Sequence[Item], recorder: CallRecorder,
             concurrency: int) -> Iterator[Result]:
    """work(item, its own recorder) for each item, up to `concurrency` at once in threads; yields the results
    in item order, after handing each item's calls to recorder from this thread.

    The threads are the lanes of one lm.lanes group (a batching backend waits for all of them before it
    steps) and each runs in a copy of the caller's context (the active DSPy settings and call recorder), so
    the work sees what a sequential call would. Closing the iterator early stops handing out items, cancels
    the running ones' model calls not yet started, and waits for them; the calls they made reach recorder too.
    """
    if concurrency <= 1 or len(items) <= 1:
        for item in items:
            own = CallRecorder(forward_to=recorder)
            yield work(item, own)
        return
    queue = _Queue(items)
    futures: list[Future] = [Future() for _ in items]
    owns = [CallRecorder() for _ in items]
    group = lanes.Lanes(min(concurrency, len(items)))

    def run_lane(number: int) -> None:
        with lanes.lane(group, number):
            while (taken := queue.take()) is not None:
                index, item = taken
                future = futures[index]
                future.set_running_or_notify_cancel()
                try:
                    future.set_result(work(item, owns[index]))
                except BaseException as exc:  # handed to the caller, who raises it in order
                    future.set_exception(exc)

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(run_lane, n), daemon=True,
                                name=f"autoresearch-task-{n}") for n in range(group.live)]
    for thread in threads:
        thread.start()
    handed = 0
    try:
        for own, future in zip(owns, futures):
            result = future.result()
            handed += 1
            for call in own.calls:
                recorder.add(call)
            yield result
    finally:
        group.stopped = True  # a running item's next model call is cancelled (engine.BackendEngine.call)
        untaken = queue.close()
        for thread in threads:
            thread.join()
        for own in owns[handed:untaken]:  # ran, or were running, when the caller stopped
            for call in own.calls:
                recorder.add(call)
