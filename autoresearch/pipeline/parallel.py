"""Work over a sequence of items up to N at a time, its results (and the calls each item made) handed back
in item order from the caller's thread: how a suite's tasks run concurrently against a server that serves
requests in parallel, while the pruner and the store see them as if run one by one."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from ..lm.calls import CallRecorder

Item = TypeVar("Item")
Result = TypeVar("Result")


def in_order(work: Callable[[Item, CallRecorder], Result], items: Sequence[Item], recorder: CallRecorder,
             concurrency: int) -> Iterator[Result]:
    """work(item, its own recorder) for each item, up to `concurrency` at once in threads; yields the results
    in item order, after handing each item's calls to recorder from this thread.

    Each thread runs in a copy of the caller's context (the active DSPy settings and call recorder), so the
    work sees what a sequential call would. Closing the iterator early cancels the items not started and
    waits for the running ones, whose calls reach recorder too.
    """
    if concurrency <= 1:
        for item in items:
            own = CallRecorder(forward_to=recorder)
            yield work(item, own)
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="autoresearch-task") as pool:
        pending: list[tuple[CallRecorder, Future]] = []
        for item in items:
            own = CallRecorder()
            pending.append((own, pool.submit(contextvars.copy_context().run, work, item, own)))
        handed = 0
        try:
            for own, future in pending:
                result = future.result()
                handed += 1
                for call in own.calls:
                    recorder.add(call)
                yield result
        finally:
            for own, future in pending[handed:]:
                future.cancel()
            for own, future in pending[handed:]:
                if future.cancelled():
                    continue
                future.exception()  # waits; a running item's error is not this early stop's concern
                for call in own.calls:
                    recorder.add(call)
