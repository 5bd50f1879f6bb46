"""One energy counter shared by every call of a process: its energy split among the calls that overlap.

A counter (NVML, RAPL; or an estimate's clock, energy.ServerPowerClock and ProcessCpuClock) measures a whole
device or server, so two calls that overlap would each see the other's energy too. shared() gives each
engine a view of the one SharedMeter of its device.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .energy import DEVICE, EXCLUSIVE, EnergyReading, Meter


class Counter(Protocol):
    """A monotonic energy counter (RaplMeter, NvmlMeter): raw readings, and joules between two of them."""

    source: str

    def key(self) -> tuple[str, ...]: ...

    def read(self) -> Any: ...

    def between(self, before: Any, after: Any) -> float: ...


@dataclass
class _Interval:
    """The time between two consecutive call starts/stops, while at least one call ran."""

    joules: float  # not yet handed out: calls take their share as they stop
    members: set[int]  # the calls that ran through it and have not taken their share yet


@dataclass
class _Call:
    stream: str | None
    started: float
    intervals: list[_Interval] = field(default_factory=list)
    peak: int = 1  # the most calls (itself included) that ran at once while it ran


class SharedMeter:
    """One energy counter shared by every engine of a process, its energy split among overlapping calls.

    A counter (NVML, RAPL) measures the whole device, so two calls that overlap (a server with parallel
    slots, several workers) would each see the other's energy too. This meter reads the counter at
    every call start and stop; the energy of each interval between two such events belongs to the
    calls that ran through it, split in proportion to the tokens each generated in it. A call's token
    rate is taken as uniform over the call (tokens × interval / duration), so within an interval the
    shares are proportional to the calls' rates.

    A call's joules are final when it stops, when the calls still running have not said how many
    tokens they generate: a running call's rate is estimated as the last rate of its stream (its
    engine), and, with no history, as the mean rate of the others (that is, an elapsed-time share).
    It then takes that share; whatever the estimate gets wrong goes to the call that stops last in the
    interval, which takes what is left. So the joules of all calls add up to the counter's delta over
    the time any call ran. A call with no tokens (a failure, a preload) is weighted like a running call
    without history. Calls alone on the counter are unchanged: exclusive, they get the counter's delta
    over their whole run. Energy while no call runs is nobody's.

    A coarse counter (NVML's ticks every 20–100 ms) cannot tell the energy of an interval shorter than a
    tick, and with many calls at once most intervals are that short. A stand-in takes their place: the
    power the counter showed at its last settlement × the interval's time (before any, the power NVML
    reports × time, as for a short call alone). On an H200 serving bursts the reported power (averaged over
    about 1 s) lagged the load, and such stand-ins added up to 0.85 of the counter's delta
    (scripts/check_nvml.py). So the stand-ins are settled against the counter as soon as the busy time since
    the last settlement is long enough for it to tell (counted() gives a figure): that interval gets the
    counter's delta since then less what the stand-ins handed out (where they handed out more, it gets
    nothing and the next settlements take the rest off). So the calls add up to the counter's delta over
    the busy time, but for the last tick of a busy stretch, whose stand-ins stay as they are.
    """

    attributes_by_tokens = True  # BackendEngine passes stop() the call's output tokens

    def __init__(self, counter: Counter, *, clock: Callable[[], float] = time.perf_counter):
        self.counter = counter
        self.source = counter.source
        self._clock = clock
        self._lock = threading.Lock()
        self._active: dict[int, _Call] = {}
        self._next = 0
        self._last_reading: Any = None
        self._last_t = 0.0
        # A coarse counter's settlement (NvmlMeter.counted; see the docstring): the reading up to which its
        # delta has been handed out and when it was read, the stand-ins' joules handed out since, the surplus
        # handed out before it (taken off the next settlements), and the power the counter showed over the
        # last settled stretch (None before the first).
        self._settled: Any = None
        self._settled_t = 0.0
        self._handed = self._surplus = 0.0
        self._power_w: float | None = None
        self._rates: dict[str, float] = {}  # stream → tokens per second of its last call with tokens

    def view(self, stream: str | None) -> "SharedMeterView":
        """A Meter for one engine: its calls form one stream (their rates estimate its running calls')."""
        return SharedMeterView(self, stream)

    def start(self, stream: str | None = None) -> int:
        with self._lock:
            self._advance()
            token, self._next = self._next, self._next + 1
            self._active[token] = _Call(stream, self._last_t)
            n = len(self._active)
            for call in self._active.values():
                call.peak = max(call.peak, n)
            return token

    def stop(self, token: int, *, wall_s: float = 0.0, cpu_s: float = 0.0, tokens: int | None = None) -> EnergyReading:
        with self._lock:
            self._advance()
            call = self._active.pop(token)
            duration = self._last_t - call.started
            rate = tokens / duration if tokens and duration > 0 else None
            joules = sum(self._take(interval, token, rate) for interval in call.intervals)
            if rate is not None and call.stream is not None:
                self._rates[call.stream] = rate
            scope = [DEVICE] if getattr(self.counter, "device_wide", True) else []
            if call.peak > 1:
                scope.append(f"shared:{call.peak}")
            return EnergyReading(joules, self.source, ",".join(scope) or EXCLUSIVE)

    def _advance(self) -> None:
        """Read the counter; the energy since the last event is an interval of the calls running now."""
        reading, now = self.counter.read(), self._clock()
        if self._active and self._last_reading is not None:
            interval = _Interval(self._joules_to(reading, now), set(self._active))
            for call in self._active.values():
                call.intervals.append(interval)
        else:  # idle until now: a busy stretch starts, and nothing before it is owed
            self._settled, self._settled_t = reading, now
            self._handed = self._surplus = 0.0
        self._last_reading, self._last_t = reading, now

    def _joules_to(self, reading: Any, now: float) -> float:
        """The energy since the last event: the counter's delta, settled against it where it is coarse."""
        counted = getattr(self.counter, "counted", None)
        if counted is None:  # a counter exact over any interval (RAPL, an estimate's clock)
            return max(self.counter.between(self._last_reading, reading), 0.0)
        since_settled = counted(self._settled, reading)
        if since_settled is None:  # too short for the counter to tell: a stand-in
            if self._power_w is None:
                stand_in = max(self.counter.between(self._last_reading, reading), 0.0)
            else:
                stand_in = self._power_w * max(now - self._last_t, 0.0)
            self._handed += stand_in
            return stand_in
        owed = since_settled - self._handed - self._surplus
        if now > self._settled_t:
            self._power_w = since_settled / (now - self._settled_t)
        self._settled, self._settled_t = reading, now
        self._handed, self._surplus = 0.0, max(-owed, 0.0)
        return max(owed, 0.0)

    def _take(self, interval: _Interval, token: int, rate: float | None) -> float:
        """The stopping call's share of an interval; every other member is still running."""
        interval.members.discard(token)
        if not interval.members:  # the last of its calls: what is left is its own
            share = interval.joules
        else:
            estimates = [self._rates.get(self._active[m].stream) if self._active[m].stream is not None else None
                         for m in interval.members]
            known = [r for r in (rate, *estimates) if r is not None]
            mean = sum(known) / len(known) if known else 1.0
            mine = rate if rate is not None else mean
            total = mine + sum(mean if e is None else e for e in estimates)
            share = interval.joules * mine / total if total > 0 else interval.joules / (len(estimates) + 1)
        interval.joules -= share
        return share


class SharedMeterView:
    """The Meter an engine holds: a SharedMeter's start/stop, tagged with the engine's stream."""

    attributes_by_tokens = True

    def __init__(self, shared: SharedMeter, stream: str | None):
        self.shared = shared
        self.stream = stream
        self.source = shared.source

    def start(self) -> int:
        return self.shared.start(self.stream)

    def stop(self, token: int, *, wall_s: float, cpu_s: float, tokens: int | None = None) -> EnergyReading:
        return self.shared.stop(token, wall_s=wall_s, cpu_s=cpu_s, tokens=tokens)


_shared_meters: dict[tuple[str, ...], SharedMeter] = {}
_shared_lock = threading.Lock()


def shared(meter: Meter | Counter, stream: str | None = None) -> Meter:
    """The process-wide SharedMeter of a counter's device (or server), seen by one stream; a per-call
    estimate (EstimateMeter: an in-process model's CPU time × watts) as is."""
    if not all(hasattr(meter, name) for name in ("key", "read", "between")):
        return meter
    with _shared_lock:
        shared_meter = _shared_meters.setdefault(meter.key(), SharedMeter(meter))  # type: ignore[arg-type]
    return shared_meter.view(stream)
