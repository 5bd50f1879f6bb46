"""SharedMeter: one device counter shared by overlapping calls, its energy split among them by tokens."""

from __future__ import annotations

import math
import random
import threading
import time
import types

import pytest

from autoresearch import energy
from autoresearch.energy import EstimateMeter, NvmlMeter, RaplMeter
from autoresearch.lm.backends import (
    ChatMessage,
    Completion,
    CompletionRequest,
    FakeBackend,
)
from autoresearch.lm.calls import CallRecorder, recording
from autoresearch.lm.engine import BackendEngine
from autoresearch.shared_meter import SharedMeter, shared
from autoresearch.store import Store
from autoresearch.workspace.config import RoleConfig


class FakeCounter:
    """A device counter the test moves by hand; every reading is logged."""

    source = "rapl"

    def __init__(self, joules: float = 1000.0):
        self.joules = joules
        self.readings: list[float] = []

    def key(self) -> tuple[str, ...]:
        return ("fake", str(id(self)))

    def read(self) -> float:
        self.readings.append(self.joules)
        return self.joules

    def between(self, before: float, after: float) -> float:
        return after - before


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig():
    counter, clock = FakeCounter(), Clock()
    return counter, clock, SharedMeter(counter, clock=clock)


def advance(counter: FakeCounter, clock: Clock, seconds: float, joules: float) -> None:
    clock.now += seconds
    counter.joules += joules


def test_a_lone_call_gets_the_whole_delta_and_is_marked_device_wide(rig):
    counter, clock, meter = rig
    token = meter.start("producer")
    advance(counter, clock, 2.0, 30.0)
    reading = meter.stop(token, tokens=10)
    assert reading.joules == pytest.approx(30.0)
    assert reading.attribution == "device" and reading.source == "rapl"


def test_energy_while_no_call_runs_is_nobodys(rig):
    counter, clock, meter = rig
    advance(counter, clock, 5.0, 500.0)  # idle: before any call
    token = meter.start()
    advance(counter, clock, 1.0, 7.0)
    assert meter.stop(token, tokens=1).joules == pytest.approx(7.0)


def test_two_overlapping_calls_with_1_to_3_tokens_split_the_interval_1_to_3(rig):
    counter, clock, meter = rig
    # Each stream's rate is known from a call it made alone: a at 1 token/s, b at 3 tokens/s.
    for stream, tokens in (("a", 10), ("b", 30)):
        token = meter.start(stream)
        advance(counter, clock, 10.0, 100.0)
        assert meter.stop(token, tokens=tokens).attribution == "device"
    a, b = meter.start("a"), meter.start("b")
    advance(counter, clock, 10.0, 40.0)  # both run through the whole interval
    first = meter.stop(a, tokens=10)  # 1 token/s: a quarter of the tokens generated in the interval
    second = meter.stop(b, tokens=30)
    assert (first.joules, second.joules) == (pytest.approx(10.0), pytest.approx(30.0))
    assert first.attribution == second.attribution == "device,shared:2"


def test_partly_overlapping_calls_share_only_the_overlap_and_add_up_to_the_counter(rig):
    counter, clock, meter = rig
    start = counter.joules
    a = meter.start("a")
    advance(counter, clock, 5.0, 50.0)  # a alone
    b = meter.start("b")
    advance(counter, clock, 5.0, 100.0)  # a and b
    ra = meter.stop(a, tokens=10)
    advance(counter, clock, 5.0, 50.0)  # b alone
    rb = meter.stop(b, tokens=30)
    # No rate is known for b while it runs: a's share of the overlap is its elapsed-time share (half);
    # b, the last to stop, takes what is left.
    assert ra.joules == pytest.approx(50.0 + 50.0)
    assert rb.joules == pytest.approx(50.0 + 50.0)
    assert ra.joules + rb.joules == pytest.approx(counter.joules - start)
    assert ra.attribution == rb.attribution == "device,shared:2"


def test_a_stopping_calls_rate_against_a_running_streams_last_rate(rig):
    counter, clock, meter = rig
    warm = meter.start("b")
    advance(counter, clock, 10.0, 10.0)
    meter.stop(warm, tokens=30)  # b: 3 tokens/s
    a = meter.start("a")
    advance(counter, clock, 5.0, 50.0)
    b = meter.start("b")
    advance(counter, clock, 5.0, 100.0)
    ra = meter.stop(a, tokens=10)  # 1 token/s over its 10 s
    advance(counter, clock, 5.0, 50.0)
    rb = meter.stop(b, tokens=30)
    assert ra.joules == pytest.approx(50.0 + 100.0 * 1 / 4)
    assert rb.joules == pytest.approx(100.0 * 3 / 4 + 50.0)


def test_three_calls_report_the_most_that_overlapped(rig):
    counter, clock, meter = rig
    start = counter.joules
    tokens = [meter.start(s) for s in ("x", "y", "z")]
    advance(counter, clock, 3.0, 90.0)
    readings = [meter.stop(t, tokens=n) for t, n in zip(tokens, (0, 5, 5))]  # a failed call has no tokens
    assert {r.attribution for r in readings} == {"device,shared:3"}
    assert sum(r.joules for r in readings) == pytest.approx(counter.joules - start)
    assert all(r.joules >= 0 for r in readings)


def test_threads_add_up_to_the_counters_delta():
    """Real threads and a real clock: whatever the interleaving, the counter's energy is handed out whole."""
    class PowerCounter(FakeCounter):
        def read(self) -> float:  # 100 W since the epoch
            value = 100.0 * time.perf_counter()
            self.readings.append(value)
            return value

    counter = PowerCounter()
    meter = SharedMeter(counter)
    barrier = threading.Barrier(4)
    results: list = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(3):
            token = meter.start(f"w{seed}")
            time.sleep(rng.uniform(0.001, 0.02))
            reading = meter.stop(token, tokens=rng.randint(0, 50))
            with lock:
                results.append(reading)

    holder = meter.start("holder")  # a call through the whole test, so no interval is idle
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.append(meter.stop(holder, tokens=1))
    assert len(results) == 13
    assert sum(r.joules for r in results) == pytest.approx(counter.readings[-1] - counter.readings[0], rel=1e-9)
    assert all(r.joules >= 0 and r.attribution.startswith("device,shared:") for r in results)


class TickingNvml(types.SimpleNamespace):
    """pynvml's slice NvmlMeter reads, on a test clock: a GPU drawing `true_w` whose energy counter (mJ)
    moves only every `tick_s`, and whose reported power is a lagging average, `averaged_w`."""

    class NVMLError(Exception):
        pass

    def __init__(self, clock: Clock, *, true_w: float, averaged_w: float, tick_s: float = 0.05):
        super().__init__(clock=clock, true_w=true_w, averaged_w=averaged_w, tick_s=tick_s)

    def nvmlInit(self) -> None:  # noqa: N802
        pass

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:  # noqa: N802
        return int(math.floor(self.clock.now / self.tick_s) * self.tick_s * self.true_w * 1000)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        return int(self.averaged_w * 1000)


@pytest.mark.parametrize("averaged_w", [100.0, 2000.0], ids=["power-lags-low", "power-reads-high"])
def test_many_short_overlapping_calls_on_a_coarse_counter_add_up_to_its_delta(monkeypatch, averaged_w):
    """Four streams of 20–60 ms calls on a GPU at 700 W: almost every interval between two events is shorter
    than the counter's tick, so power × time stands in for it; what that gets wrong is settled against the
    counter, and the calls add up to the counter's delta over the busy time, to within one tick."""
    clock = Clock()
    monkeypatch.setattr(energy, "time", types.SimpleNamespace(perf_counter=clock))
    nvml = TickingNvml(clock, true_w=700.0, averaged_w=averaged_w)
    meter = SharedMeter(NvmlMeter(nvml), clock=clock)
    rng = random.Random(3)
    events: list[tuple[float, str, str]] = []  # (time, "start"/"stop", stream)
    for stream in "abcd":
        t = rng.uniform(0.0, 0.02)
        while t < 3.0:
            duration = rng.uniform(0.02, 0.06)
            events += [(t, "start", stream), (t + duration, "stop", stream)]
            t += duration + rng.uniform(0.0, 0.005)
    tokens: dict[str, int] = {}
    readings = []
    for when, kind, stream in sorted(events, key=lambda e: (e[0], e[1] == "start")):
        clock.now = 10.0 + when
        if kind == "start":
            tokens[stream] = meter.start(stream)
        else:
            readings.append(meter.stop(tokens.pop(stream), tokens=rng.randint(5, 40)))
    first, last = 10.0 + min(e[0] for e in events), 10.0 + max(e[0] for e in events)
    counter_j = (nvml.nvmlDeviceGetTotalEnergyConsumption(0) - int(
        math.floor(first / nvml.tick_s) * nvml.tick_s * nvml.true_w * 1000)) / 1000.0
    assert counter_j == pytest.approx(700.0 * (last - first), abs=700.0 * nvml.tick_s)
    assert sum(r.joules for r in readings) == pytest.approx(counter_j, abs=700.0 * nvml.tick_s)
    assert all(r.joules >= 0 for r in readings)


def test_engines_record_shared_attribution_in_calls_and_the_store(tmp_path):
    counter = FakeCounter()
    meter = SharedMeter(counter)
    inside = threading.Barrier(2)

    def respond(request: CompletionRequest) -> Completion:
        inside.wait()  # both calls are running at once
        counter.joules += 60.0
        text = "one two three" if request.model == "big" else "one"
        return Completion(text, 3, len(text.split()), latency_s=0.01)

    recorder = CallRecorder()

    def run(model: str) -> None:
        engine = BackendEngine("producer", RoleConfig(backend="fake", model=model),
                               FakeBackend(respond, models=[model]), meter.view(model), backoff_s=0.0)
        with recording(recorder):
            engine.call(CompletionRequest(model=model, messages=(ChatMessage("user", "Hi."),)))

    threads = [threading.Thread(target=run, args=(m,)) for m in ("big", "small")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c.attribution for c in recorder.calls) == ["device,shared:2", "device,shared:2"]
    assert sum(c.joules for c in recorder.calls) == pytest.approx(120.0)
    store = Store(tmp_path / "runs" / "autoresearch.db")  # SQLite wants its own thread: recorded here
    for call in recorder.calls:
        store.record_call(None, call)
    rows = store.conn.execute("SELECT attribution, joules FROM calls").fetchall()
    assert sorted(r["attribution"] for r in rows) == ["device,shared:2", "device,shared:2"]
    assert sum(r["joules"] for r in rows) == pytest.approx(120.0)
    store.close()


def test_counters_are_shared_per_device_and_estimates_are_not(tmp_path):
    domain = tmp_path / "powercap" / "intel-rapl:0"
    domain.mkdir(parents=True)
    (domain / "energy_uj").write_text("1000\n")
    (domain / "max_energy_range_uj").write_text("100000000\n")
    (domain / "name").write_text("package-0\n")
    first = shared(RaplMeter(tmp_path / "powercap"), "planner:m")
    second = shared(RaplMeter(tmp_path / "powercap"), "producer:m")
    assert first.shared is second.shared and first.stream != second.stream
    estimate = EstimateMeter(in_process=True, cpu_watts_per_core=1.0, server_watts=1.0)
    assert shared(estimate, "producer:m") is estimate


def test_m004_gives_old_calls_exclusive_and_old_trials_no_objective(tmp_path, monkeypatch):
    from autoresearch.store import migrations

    path = tmp_path / "runs" / "autoresearch.db"
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:3])  # a store made before m004
        old = Store(path)
        old.conn.execute("INSERT INTO calls (role, backend, model, prompt_hash, energy_source, status, created_at)"
                         " VALUES ('planner', 'ollama', 'm', 'h', 'estimate', 'ok', 'now')")
        old.ensure_study(name="s", workspace="w", portfolio="p", portfolio_json="{}", evaluation_hash="e",
                         branch="b", storage="x")
        old.begin_trial("s", 0)
        old.close()
    store = Store(path)
    assert store.conn.execute("SELECT attribution FROM calls").fetchone()[0] == "exclusive"
    assert store.trial("s", 0)["objective"] is None and store.study("s")["warm_start"] is None
    store.close()


def test_a_call_that_raises_is_closed_on_the_meter(rig):
    counter, clock, meter = rig

    def boom(request):
        raise RuntimeError("a bug, not a model failure")

    engine = BackendEngine("producer", RoleConfig(backend="fake", model="m"), FakeBackend(boom), meter.view("p"),
                           backoff_s=0.0)
    with pytest.raises(RuntimeError):
        engine.call(CompletionRequest(model="m", messages=(ChatMessage("user", "Hi."),)))
    token = meter.start("q")  # the next call is alone: the failed one is not left running
    advance(counter, clock, 1.0, 5.0)
    assert meter.stop(token, tokens=1).attribution == "device"


def test_a_servers_estimated_power_is_split_among_overlapping_calls_not_counted_per_call():
    from autoresearch.energy import ServerPowerClock

    clock = Clock()
    meter = SharedMeter(ServerPowerClock("http://gpu-box:8080/v1", 60.0, clock=clock), clock=clock)
    first = meter.start("planner")
    clock.now = 1.0
    second = meter.start("producer")
    clock.now = 2.0
    a = meter.stop(first, tokens=10)
    clock.now = 3.0
    b = meter.stop(second, tokens=10)
    # Busy from 0 to 3 s at 60 W: 180 J in all, where per-call estimates would say 2 × 120 J.
    assert a.joules + b.joules == pytest.approx(180.0)
    assert a.joules == pytest.approx(60.0 + 30.0) and b.joules == pytest.approx(30.0 + 60.0)
    assert (a.source, a.attribution, b.attribution) == ("estimate", "shared:2", "shared:2")
    alone = meter.start("evaluator")
    clock.now = 5.0
    assert meter.stop(alone, tokens=5).attribution == "exclusive"  # the server's own power, not a device's


def test_an_in_process_models_cpu_time_is_split_among_calls_decoded_together():
    from autoresearch.energy import ProcessCpuClock

    cpu, wall = Clock(), Clock()
    meter = SharedMeter(ProcessCpuClock(12.0, clock=cpu), clock=wall)
    first = meter.start("planner")
    cpu.now, wall.now = 2.0, 1.0  # both calls in one batch: the process's CPU seconds cover the two
    second = meter.start("evaluator")
    cpu.now, wall.now = 6.0, 3.0
    a = meter.stop(first, tokens=30)
    b = meter.stop(second, tokens=10)
    # 6 CPU seconds × 12 W in all; each call's own CPU delta would have counted 72 J and 48 J (120 J).
    assert a.joules + b.joules == pytest.approx(72.0)
    # The first had the CPU to itself for 24 J; the shared 48 J split evenly (the second's rate unknown yet).
    assert a.joules == pytest.approx(24.0 + 24.0) and b.joules == pytest.approx(24.0)
    assert (a.source, a.attribution) == ("estimate", "shared:2")
    alone = meter.start("producer")
    cpu.now, wall.now = 7.0, 4.0
    assert meter.stop(alone, tokens=3).attribution == "exclusive"
