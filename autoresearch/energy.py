"""Energy meters: NVML and RAPL counters where readable, else an estimate that says so.

Every figure is an EnergyReading whose `source` says how it was obtained: "nvml" or "rapl" (a hardware
energy counter: measured), "nvml-power" (a GPU without the counter: its power sampled at the call's start
and end, times the time between: sampled), or "estimate" (time × configured watts: estimated). Its
`attribution` says whom the figure covers: "exclusive" (the call alone: an estimate from its own time),
"device" (the call was this process's only one on the counter, but a device counter also counts every
other process on that device), or "device,shared:N" (it overlapped other calls of this process on the
counter, N at most at once, and got a share: see shared_meter.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

NVML, NVML_POWER, RAPL, ESTIMATE = "nvml", "nvml-power", "rapl", "estimate"
RAPL_ROOT = Path("/sys/class/powercap")
# NVML's energy counter refreshes every 20–100 ms; below this a counter delta can read as 0 J.
COUNTER_PERIOD_S = 0.1


EXCLUSIVE = "exclusive"
DEVICE = "device"  # a device-wide counter: other processes on the device are in the figure too


@dataclass(frozen=True)
class EnergyReading:
    joules: float
    source: str
    attribution: str = EXCLUSIVE  # or "device", "device,shared:N": see the module's docstring

    @property
    def measured(self) -> bool:
        """From a hardware energy counter (not power samples, not an estimate)."""
        return self.source in (NVML, RAPL)


class Meter(Protocol):
    """Reads a monotonic quantity at start() and turns the delta into joules at stop()."""

    source: str

    def start(self) -> Any: ...

    def stop(self, token: Any, *, wall_s: float, cpu_s: float) -> EnergyReading: ...


class EstimateMeter:
    """Joules from CPU time (in-process models) or wall time (served models) times configured watts."""

    source = ESTIMATE

    def __init__(self, *, in_process: bool, cpu_watts_per_core: float, server_watts: float):
        self.in_process = in_process
        self.cpu_watts_per_core = cpu_watts_per_core
        self.server_watts = server_watts

    def start(self) -> None:
        return None

    def stop(self, token: Any, *, wall_s: float, cpu_s: float) -> EnergyReading:
        joules = cpu_s * self.cpu_watts_per_core if self.in_process else wall_s * self.server_watts
        return EnergyReading(max(joules, 0.0), ESTIMATE)


class RaplMeter:
    """Sums the package domains' energy_uj counters, handling wrap-around at max_energy_range_uj."""

    source = RAPL

    def __init__(self, root: Path = RAPL_ROOT):
        # Top-level packages only (intel-rapl:0, not intel-rapl:0:0): sub-domains are inside them. A top-level
        # "psys" domain (the whole platform, on many laptops) already contains the packages: counting it too
        # would count their energy twice.
        self.domains = sorted(
            p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1 and _domain_name(p) != "psys"
        )
        self.ranges = [int((d / "max_energy_range_uj").read_text()) for d in self.domains]

    @classmethod
    def available(cls, root: Path = RAPL_ROOT) -> bool:
        try:
            meter = cls(root)
            meter.start()
            return bool(meter.domains)
        except (OSError, ValueError):
            return False

    def key(self) -> tuple[str, ...]:
        """Which counter this reads: meters with the same key read the same energy."""
        return (RAPL, *(str(d) for d in self.domains))

    def read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def between(self, before: list[int], after: list[int]) -> float:
        """Joules between two readings (one wrap-around per domain at most)."""
        total_uj = 0
        for b, a, wrap in zip(before, after, self.ranges):
            total_uj += a - b if a >= b else a + wrap - b
        return total_uj / 1e6

    def start(self) -> list[int]:
        return self.read()

    def stop(self, token: list[int], *, wall_s: float, cpu_s: float) -> EnergyReading:
        return EnergyReading(self.between(token, self.read()), RAPL, DEVICE)


def _domain_name(domain: Path) -> str:
    try:
        return (domain / "name").read_text().strip()
    except OSError:
        return ""


class NoSuchGpu(ValueError):
    """[energy] gpus names a GPU index NVML does not have."""


class NvmlMeter:
    """Total-energy counter of every GPU (millijoules); power × time where the counter is too coarse.

    Its source is "nvml" when every GPU has the counter, "nvml-power" when one lacks it (then every figure
    is power sampled at a call's start and end, times the time between)."""

    def __init__(self, nvml: Any = None, gpus: Sequence[int] | None = None):
        """Over the GPUs of these NVML indices ([energy] gpus), or every GPU when None."""
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py
        self.nvml = nvml
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
        self.gpus = tuple(range(count)) if gpus is None else tuple(gpus)
        missing = [i for i in self.gpus if i >= count]
        if missing:
            seen = f"{count} GPU{'' if count == 1 else 's'}" + (f", numbered 0 to {count - 1}" if count else "")
            raise NoSuchGpu(f"NVML has no GPU {', '.join(map(str, missing))}: it sees {seen}")
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in self.gpus]
        self.counter_supported = all(self._counter_works(h) for h in self.handles)
        self.source = NVML if self.counter_supported else NVML_POWER

    @classmethod
    def open(cls, nvml: Any = None, gpus: Sequence[int] | None = None) -> "NvmlMeter | None":
        """A meter over this machine's GPUs (those of `gpus` where given), or None where there is none to read;
        NoSuchGpu where `gpus` names one NVML does not have (a setting to correct, not a machine without GPUs)."""
        try:
            meter = cls(nvml, gpus)
        except NoSuchGpu:
            raise
        except Exception:  # no library, no driver, no GPU: all mean "not available"
            return None
        return meter if meter.handles else None

    @classmethod
    def available(cls, nvml: Any = None) -> bool:
        return cls.open(nvml) is not None

    def _counter_works(self, handle: Any) -> bool:
        try:
            self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return True
        except self.nvml.NVMLError:
            return False

    def _power_w(self) -> float:
        return sum(self.nvml.nvmlDeviceGetPowerUsage(h) for h in self.handles) / 1000.0

    def key(self) -> tuple[str, ...]:
        return (NVML, str(id(self.nvml)), *map(str, self.gpus))

    def read(self) -> tuple[float, float, float]:
        """(time, total energy in mJ, power in W) over every GPU."""
        mj = sum(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) if self.counter_supported else 0
        return (time.perf_counter(), mj, self._power_w())

    def counted(self, before: tuple[float, float, float], after: tuple[float, float, float]) -> float | None:
        """The counter's joules between two readings; None where it cannot tell: no counter, or less time
        than its refresh period apart (or no tick yet), when its delta may be 0 or a whole tick."""
        elapsed, joules = after[0] - before[0], (after[1] - before[1]) / 1000.0
        if not self.counter_supported or elapsed < COUNTER_PERIOD_S or joules <= 0:
            return None
        return joules

    def between(self, before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
        """The counter's joules, or the mean of the two power readings × the time between them where it
        cannot tell (a call shorter than the counter's refresh would otherwise read 0 J)."""
        counted = self.counted(before, after)
        if counted is not None:
            return counted
        return (before[2] + after[2]) / 2 * (after[0] - before[0])

    def start(self) -> tuple[float, float, float]:
        return self.read()

    def stop(self, token: tuple[float, float, float], *, wall_s: float, cpu_s: float) -> EnergyReading:
        return EnergyReading(self.between(token, self.read()), self.source, DEVICE)


class _WattsClock:
    """An estimate as a counter: configured watts integrated over a clock's seconds. Shared through a
    SharedMeter, calls that overlap split what it counts by tokens instead of each counting all of it."""

    source = ESTIMATE
    device_wide = False  # what it estimates is this one consumer's power, whatever else runs there

    def __init__(self, name: str, watts: float, clock: Callable[[], float]):
        self.name = name
        self.watts = watts
        self._clock = clock

    def key(self) -> tuple[str, ...]:
        return ("estimate", self.name, f"{self.watts:g}")

    def read(self) -> float:
        return self._clock()

    def between(self, before: float, after: float) -> float:
        return (after - before) * self.watts


class ServerPowerClock(_WattsClock):
    """The estimate for a served model: the server's configured watts over wall time, one per server.

    A suite run N requests at a time still adds up to watts × the time the server was busy, not N times
    it. A call alone on the server gets watts × its duration, as EstimateMeter gives.
    """

    def __init__(self, server: str, watts: float, clock: Callable[[], float] = time.perf_counter):
        super().__init__(server, watts, clock)


class ProcessCpuClock(_WattsClock):
    """The estimate for an in-process model: this process's CPU seconds times watts per core.

    Calls decoded together (the embedded model's batches, lm/backends/batch_decode.py) split the CPU time
    they ran through, instead of each counting every thread's. A call alone gets its own CPU time × watts,
    as EstimateMeter gives.
    """

    def __init__(self, watts_per_core: float, clock: Callable[[], float] = time.process_time):
        super().__init__("process-cpu", watts_per_core, clock)


def select_meter(
    *, in_process: bool, local: bool, gpu: bool, cpu_watts_per_core: float, server_watts: float,
    server: str | None = None, gpus: Sequence[int] | None = None,
) -> Meter | ServerPowerClock | ProcessCpuClock:
    """The best meter for calls served on this machine; remote servers can only be estimated. An estimate
    is a clock (this process's CPU time, or a served model's server's power over time when its address is
    given) for shared_meter.shared() to split among overlapping calls. gpus: [energy] gpus."""
    # NVML initialised once, not to probe and again to use
    nvml = NvmlMeter.open(gpus=gpus) if local and gpu else None
    source = meter_source(local=local, gpu=gpu, gpu_found=nvml is not None,
                          gpu_counter=nvml is not None and nvml.counter_supported,
                          rapl=local and RaplMeter.available())
    if source in (NVML, NVML_POWER):
        return nvml  # type: ignore[return-value]
    if source == RAPL:
        return RaplMeter()
    if in_process:
        return ProcessCpuClock(cpu_watts_per_core)
    if server is not None:
        return ServerPowerClock(server, server_watts)
    return EstimateMeter(in_process=in_process, cpu_watts_per_core=cpu_watts_per_core, server_watts=server_watts)


def meter_source(*, local: bool, gpu: bool, gpu_found: bool, gpu_counter: bool, rapl: bool) -> str:
    """Which meter a call gets, the one decision `doctor` and a run share: a local GPU model its GPUs'
    energy counter ("nvml") or, without one, their power sampled ("nvml-power"); a local CPU model the RAPL
    package counters; anything else an estimate."""
    if local and gpu and gpu_found:
        return NVML if gpu_counter else NVML_POWER
    if local and rapl:
        return RAPL
    return ESTIMATE


def energy_label(source: str) -> str:
    """How a figure's joules were obtained, for people: "estimated", "sampled (nvml-power)" or "measured
    (nvml)" (a figure from several sources is labelled by its weakest)."""
    if "estimate" in source:
        return "estimated"
    if NVML_POWER in source:
        return f"sampled ({source})"
    return f"measured ({source})"
