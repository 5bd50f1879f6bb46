"""Energy meters: NVML and RAPL counters where readable, else an estimate that says so.

Every figure is an EnergyReading whose `source` is "nvml", "rapl" or "estimate".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

NVML, RAPL, ESTIMATE = "nvml", "rapl", "estimate"
RAPL_ROOT = Path("/sys/class/powercap")
# NVML's energy counter refreshes every 20–100 ms; below this a counter delta can read as 0 J.
COUNTER_PERIOD_S = 0.1


@dataclass(frozen=True)
class EnergyReading:
    joules: float
    source: str

    @property
    def measured(self) -> bool:
        return self.source != ESTIMATE


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

    def start(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def stop(self, token: list[int], *, wall_s: float, cpu_s: float) -> EnergyReading:
        total_uj = 0
        for before, after, wrap in zip(token, self.start(), self.ranges):
            total_uj += after - before if after >= before else after + wrap - before
        return EnergyReading(total_uj / 1e6, RAPL)


def _domain_name(domain: Path) -> str:
    try:
        return (domain / "name").read_text().strip()
    except OSError:
        return ""


class NvmlMeter:
    """Total-energy counter of every GPU (millijoules); power × time where the counter is too coarse."""

    source = NVML

    def __init__(self, nvml: Any = None):
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py
        self.nvml = nvml
        nvml.nvmlInit()
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        self.counter_supported = all(self._counter_works(h) for h in self.handles)

    @classmethod
    def available(cls, nvml: Any = None) -> bool:
        try:
            return bool(cls(nvml).handles)
        except Exception:  # no library, no driver, no GPU: all mean "not available"
            return False

    def _counter_works(self, handle: Any) -> bool:
        try:
            self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return True
        except self.nvml.NVMLError:
            return False

    def _power_w(self) -> float:
        return sum(self.nvml.nvmlDeviceGetPowerUsage(h) for h in self.handles) / 1000.0

    def start(self) -> tuple[float, float, float]:
        mj = sum(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) if self.counter_supported else 0
        return (time.perf_counter(), mj, self._power_w())

    def stop(self, token: tuple[float, float, float], *, wall_s: float, cpu_s: float) -> EnergyReading:
        t0, mj0, p0 = token
        elapsed = time.perf_counter() - t0
        power_joules = (p0 + self._power_w()) / 2 * elapsed
        if not self.counter_supported:
            return EnergyReading(power_joules, NVML)
        joules = (sum(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) - mj0) / 1000.0
        # A call shorter than the counter's refresh can see no tick at all: fall back to power × time.
        if elapsed < COUNTER_PERIOD_S or joules <= 0:
            joules = power_joules
        return EnergyReading(joules, NVML)


def select_meter(
    *, in_process: bool, local: bool, gpu: bool, cpu_watts_per_core: float, server_watts: float
) -> Meter:
    """The best meter for calls served on this machine; remote servers can only be estimated."""
    source = meter_source(local=local, gpu=gpu, nvml=local and gpu and NvmlMeter.available(),
                          rapl=local and RaplMeter.available())
    if source == NVML:
        return NvmlMeter()
    if source == RAPL:
        return RaplMeter()
    return EstimateMeter(in_process=in_process, cpu_watts_per_core=cpu_watts_per_core, server_watts=server_watts)


def meter_source(*, local: bool, gpu: bool, nvml: bool, rapl: bool) -> str:
    """Which meter a call gets: NVML for a local GPU model, RAPL for a local CPU one, else an estimate."""
    if local and gpu and nvml:
        return NVML
    if local and rapl:
        return RAPL
    return ESTIMATE
