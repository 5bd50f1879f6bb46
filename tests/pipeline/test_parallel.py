"""in_order: items run by lanes of one group, results and calls handed back in item order."""

from __future__ import annotations

import threading
import time

import pytest

from autoresearch.lm import lanes
from autoresearch.lm.calls import CallRecorder
from autoresearch.pipeline.parallel import in_order


class Call:
    """Stands in for a model call record: in_order only hands these from one recorder to another."""

    def __init__(self, item: int):
        self.item = item


def test_results_come_back_in_item_order_whatever_order_they_finish_in():
    def work(item: int, own: CallRecorder) -> int:
        time.sleep(0.02 * (5 - item))  # the last items finish first
        own.add(Call(item))
        return item * 10

    recorder = CallRecorder()
    assert list(in_order(work, list(range(5)), recorder, 3)) == [0, 10, 20, 30, 40]
    assert [call.item for call in recorder.calls] == [0, 1, 2, 3, 4]


def test_every_item_runs_in_a_lane_of_one_group_that_shrinks_as_lanes_run_out_of_work():
    seen: list[tuple[int, int, str]] = []
    group_of: dict[int, lanes.Lanes | None] = {}

    def work(item: int, own: CallRecorder) -> int:
        group = lanes.current()
        group_of[item] = group
        seen.append((item, group.live if group else -1, threading.current_thread().name))
        return item

    assert list(in_order(work, list(range(6)), CallRecorder(), 4)) == list(range(6))
    groups = set(map(id, group_of.values()))
    assert len(groups) == 1 and None not in group_of.values()
    (group,) = {id(g): g for g in group_of.values()}.values()
    assert group.live == 0  # every lane left when the items ran out
    assert len({name for _, _, name in seen}) <= 4 and all(name != "MainThread" for _, _, name in seen)
    assert lanes.current() is None  # the caller's own context never joined the group


def test_one_at_a_time_runs_in_the_callers_thread_without_a_group():
    def work(item: int, own: CallRecorder) -> tuple[str, object]:
        return threading.current_thread().name, lanes.current()

    assert list(in_order(work, [1, 2], CallRecorder(), 1)) == [("MainThread", None)] * 2


def test_closing_early_hands_out_no_more_items_and_keeps_the_running_ones_calls():
    started: list[int] = []
    release = threading.Event()

    def work(item: int, own: CallRecorder) -> int:
        started.append(item)
        if item > 0:
            release.wait(5)  # items 1 and 2 are still running when the caller stops after item 0
        own.add(Call(item))
        return item

    recorder = CallRecorder()
    results = in_order(work, list(range(8)), recorder, 3)
    assert next(results) == 0
    while len(started) < 3:
        time.sleep(0.01)
    threading.Timer(0.2, release.set).start()  # the running items finish only after the caller has stopped
    results.close()
    assert len(started) == len(set(started)) <= 4  # 3 lanes: items 1 and 2 running, item 3 at most taken
    assert sorted(call.item for call in recorder.calls) == sorted(started)


def test_an_items_error_is_raised_at_its_place_in_the_order():
    def work(item: int, own: CallRecorder) -> int:
        if item == 2:
            raise ValueError("item 2 failed")
        return item

    results = in_order(work, list(range(5)), CallRecorder(), 2)
    assert next(results) == 0 and next(results) == 1
    with pytest.raises(ValueError, match="item 2 failed"):
        next(results)


def test_closing_early_cancels_the_running_items_model_calls_not_yet_started():
    from autoresearch.energy import EstimateMeter
    from autoresearch.errors import Cancelled
    from autoresearch.lm.backends import ChatMessage, CompletionRequest, FakeBackend
    from autoresearch.lm.engine import BackendEngine
    from autoresearch.workspace.config import RoleConfig

    release, waiting = threading.Event(), threading.Event()
    fake = FakeBackend(lambda request: "ok")
    engine = BackendEngine("producer", RoleConfig(backend="fake", model="m"), fake,
                           EstimateMeter(in_process=False, cpu_watts_per_core=12.0, server_watts=60.0))
    outcomes: dict[int, list[str]] = {}

    def work(item: int, own: CallRecorder) -> int:
        # Three model calls per item, as a task's plan, draft and judgement; item 1 waits after its first.
        outcomes[item] = []
        for step in range(3):
            try:
                engine.call(CompletionRequest(model="m", messages=(ChatMessage("user", f"{item}.{step}"),)))
                outcomes[item].append("made")
            except Cancelled:
                outcomes[item].append("cancelled")
            if item == 1 and step == 0:
                waiting.set()
                release.wait(5)
        return item

    results = in_order(work, [0, 1], CallRecorder(), 2)
    assert next(results) == 0
    assert waiting.wait(5)
    threading.Timer(0.2, release.set).start()  # item 1 goes on only after the caller has stopped
    results.close()
    assert outcomes == {0: ["made"] * 3, 1: ["made", "cancelled", "cancelled"]}
    assert len(fake.requests) == 4  # the backend never saw the cancelled calls
    assert not lanes.stopped()  # the caller's own calls are never cancelled
