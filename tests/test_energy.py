"""Energy meters: the estimate's arithmetic, RAPL on a fake powercap tree, NVML on a fake pynvml."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from autoresearch import energy
from autoresearch.energy import (
    ESTIMATE,
    NVML,
    RAPL,
    EnergyReading,
    EstimateMeter,
    NvmlMeter,
    ProcessCpuClock,
    RaplMeter,
    select_meter,
)

# --- estimate ---------------------------------------------------------------------------------------


def test_estimate_in_process_uses_cpu_time_times_watts_per_core():
    meter = EstimateMeter(in_process=True, cpu_watts_per_core=12.0, server_watts=60.0)
    reading = meter.stop(meter.start(), wall_s=10.0, cpu_s=2.5)
    assert reading == EnergyReading(30.0, "estimate")
    assert reading.source == ESTIMATE and not reading.measured


def test_estimate_served_uses_wall_time_times_server_watts():
    meter = EstimateMeter(in_process=False, cpu_watts_per_core=12.0, server_watts=60.0)
    reading = meter.stop(meter.start(), wall_s=1.5, cpu_s=0.01)
    assert reading.joules == pytest.approx(90.0) and reading.source == "estimate"


def test_estimate_is_never_negative():
    meter = EstimateMeter(in_process=True, cpu_watts_per_core=12.0, server_watts=60.0)
    assert meter.stop(None, wall_s=0.0, cpu_s=-0.001).joules == 0.0


# --- RAPL -------------------------------------------------------------------------------------------

MAX_RANGE = 262_143_328_850


def write_domain(root: Path, name: str, energy_uj: int, max_range: int = MAX_RANGE, label: str = "package") -> Path:
    domain = root / name
    domain.mkdir(parents=True, exist_ok=True)
    (domain / "energy_uj").write_text(f"{energy_uj}\n")
    (domain / "max_energy_range_uj").write_text(f"{max_range}\n")
    (domain / "name").write_text(f"{label}\n")
    return domain


def set_energy(root: Path, name: str, energy_uj: int) -> None:
    (root / name / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """Two packages, each with a core sub-domain, as /sys/class/powercap lays them out."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type itself: no counter of its own
    write_domain(root, "intel-rapl:0", 5_000_000, label="package-0")
    write_domain(root, "intel-rapl:0:0", 1_000_000, label="core")
    write_domain(root, "intel-rapl:1", MAX_RANGE - 1_000_000, label="package-1")
    write_domain(root, "intel-rapl:1:0", 2_000_000, label="core")
    return root


def test_rapl_sums_packages_ignores_sub_domains_and_handles_wrap_around(powercap):
    meter = RaplMeter(powercap)
    assert [d.name for d in meter.domains] == ["intel-rapl:0", "intel-rapl:1"]
    token = meter.start()
    set_energy(powercap, "intel-rapl:0", 7_500_000)  # +2.5 J
    set_energy(powercap, "intel-rapl:1", 500_000)  # wrapped: +1.0 J to the top, +0.5 J after
    set_energy(powercap, "intel-rapl:0:0", 900_000_000)  # a sub-domain: already inside package 0
    set_energy(powercap, "intel-rapl:1:0", 900_000_000)
    reading = meter.stop(token, wall_s=1.0, cpu_s=1.0)
    assert reading.source == RAPL and reading.measured
    assert reading.joules == pytest.approx(2.5 + 1.5)


def test_rapl_availability(powercap, tmp_path):
    assert RaplMeter.available(powercap)
    assert not RaplMeter.available(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not RaplMeter.available(empty)
    (powercap / "intel-rapl:1" / "energy_uj").write_text("garbage\n")
    assert not RaplMeter.available(powercap)


# --- NVML -------------------------------------------------------------------------------------------


class FakeNvml(types.SimpleNamespace):
    """The slice of pynvml NvmlMeter uses, with the real units: energy in mJ, power in mW."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's own naming
        pass

    def __init__(self, energy_mj: list[int], power_mw: list[int], *, counter: bool = True):
        super().__init__()
        self.energy_mj = list(energy_mj)
        self.power_mw = list(power_mw)
        self.counter = counter
        self.initialised = 0

    def nvmlInit(self) -> None:  # noqa: N802
        self.initialised += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.energy_mj)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:  # noqa: N802
        if index >= len(self.energy_mj):
            raise self.NVMLError("Invalid Argument")
        return ("handle", index)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:  # noqa: N802
        if not self.counter:
            raise self.NVMLError_NotSupported("Not Supported")
        return self.energy_mj[handle[1]]

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:  # noqa: N802
        return self.power_mw[handle[1]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(energy, "time", types.SimpleNamespace(perf_counter=c))
    return c


def test_nvml_counter_delta_in_joules(clock):
    nvml = FakeNvml(energy_mj=[1_000_000, 2_000_000], power_mw=[300_000, 100_000])
    meter = NvmlMeter(nvml)
    assert nvml.initialised == 1 and meter.counter_supported
    token = meter.start()
    clock.now += 2.0
    nvml.energy_mj = [1_150_000, 2_050_000]  # +150 J and +50 J
    reading = meter.stop(token, wall_s=2.0, cpu_s=0.1)
    assert reading == EnergyReading(pytest.approx(200.0), NVML, "device")  # the whole GPUs' counter
    assert reading.measured


def test_nvml_short_call_without_a_counter_tick_falls_back_to_power_times_time(clock):
    nvml = FakeNvml(energy_mj=[5_000_000], power_mw=[80_000])
    meter = NvmlMeter(nvml)
    token = meter.start()
    clock.now += 0.03  # shorter than the counter's refresh period
    nvml.power_mw = [120_000]
    reading = meter.stop(token, wall_s=0.03, cpu_s=0.0)
    assert reading.source == NVML
    assert reading.joules == pytest.approx((80 + 120) / 2 * 0.03)  # mean power × time, not 0 J
    assert reading.joules > 0


def test_nvml_long_call_whose_counter_did_not_move_falls_back_to_power(clock):
    nvml = FakeNvml(energy_mj=[5_000_000], power_mw=[50_000])
    meter = NvmlMeter(nvml)
    token = meter.start()
    clock.now += 1.0
    assert meter.stop(token, wall_s=1.0, cpu_s=0.0).joules == pytest.approx(50.0)


def test_nvml_unsupported_counter_integrates_power(clock):
    nvml = FakeNvml(energy_mj=[0, 0], power_mw=[40_000, 60_000], counter=False)
    meter = NvmlMeter(nvml)
    assert not meter.counter_supported and meter.source == "nvml-power"
    token = meter.start()
    clock.now += 2.0
    reading = meter.stop(token, wall_s=2.0, cpu_s=0.0)
    # (40 W + 60 W) × 2 s: power sampled, labelled apart from a counter reading and not counted as measured
    assert reading == EnergyReading(pytest.approx(200.0), "nvml-power", "device") and not reading.measured
    assert energy.energy_label(reading.source) == "sampled (nvml-power)"


def test_nvml_availability():
    assert NvmlMeter.available(FakeNvml(energy_mj=[0], power_mw=[1]))
    assert not NvmlMeter.available(FakeNvml(energy_mj=[], power_mw=[]))  # a driver without GPUs

    class NoDriver(FakeNvml):
        def nvmlInit(self) -> None:  # noqa: N802
            raise self.NVMLError("Driver Not Loaded")

    assert not NvmlMeter.available(NoDriver(energy_mj=[0], power_mw=[1]))


# --- selection --------------------------------------------------------------------------------------


def test_select_meter_without_counters_is_an_estimate_of_the_right_kind(no_counters):
    meter = select_meter(in_process=True, local=True, gpu=False, cpu_watts_per_core=10.0, server_watts=50.0)
    assert isinstance(meter, ProcessCpuClock) and meter.source == "estimate"
    assert meter.between(1.0, 3.0) == pytest.approx(20.0)  # CPU seconds × watts per core
    served = select_meter(in_process=False, local=True, gpu=True, cpu_watts_per_core=10.0, server_watts=50.0)
    assert served.stop(served.start(), wall_s=3.0, cpu_s=2.0).joules == pytest.approx(150.0)


def test_no_counters_hides_a_gpu_that_is_there(no_counters, monkeypatch):
    """The fixture the fake-model tests use must hold on a GPU machine too (it once patched a method
    select_meter no longer called, and seven tests failed on an H200)."""
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(energy_mj=[1_000], power_mw=[100_000]))
    served = select_meter(in_process=False, local=True, gpu=True, cpu_watts_per_core=10.0, server_watts=50.0)
    assert served.source == "estimate"


def test_select_meter_prefers_rapl_locally_but_never_for_remote_servers(monkeypatch, powercap):
    monkeypatch.setattr(energy, "RAPL_ROOT", powercap)
    monkeypatch.setattr(NvmlMeter, "open", classmethod(lambda cls, *a: None))  # as on a machine without a GPU
    monkeypatch.setattr(RaplMeter, "available", classmethod(lambda cls, *a: True))
    monkeypatch.setattr(RaplMeter.__init__, "__defaults__", (powercap,))
    assert isinstance(select_meter(in_process=True, local=True, gpu=False, cpu_watts_per_core=1, server_watts=1), RaplMeter)
    remote = select_meter(in_process=False, local=False, gpu=True, cpu_watts_per_core=1, server_watts=1)
    assert isinstance(remote, EstimateMeter) and remote.source == "estimate"


def test_rapl_skips_a_top_level_psys_domain_that_contains_the_packages(powercap):
    write_domain(powercap, "intel-rapl:2", 10_000_000, label="psys")
    meter = RaplMeter(powercap)
    assert [d.name for d in meter.domains] == ["intel-rapl:0", "intel-rapl:1"]
    token = meter.start()
    set_energy(powercap, "intel-rapl:0", 6_000_000)  # +1 J
    set_energy(powercap, "intel-rapl:2", 13_000_000)  # the platform, package included: not added
    assert meter.stop(token, wall_s=1.0, cpu_s=1.0).joules == pytest.approx(1.0)


def test_nvml_meters_only_the_gpus_energy_gpus_names(clock):
    nvml = FakeNvml(energy_mj=[1_000_000, 2_000_000], power_mw=[300_000, 100_000])
    chosen = NvmlMeter(nvml, gpus=[1])
    every = NvmlMeter(nvml)
    token, all_token = chosen.start(), every.start()
    clock.now += 2.0
    nvml.energy_mj = [1_500_000, 2_050_000]  # GPU 0 busy with other work (+500 J), the model's GPU 1 +50 J
    assert chosen.stop(token, wall_s=2.0, cpu_s=0.0).joules == pytest.approx(50.0)
    assert every.stop(all_token, wall_s=2.0, cpu_s=0.0).joules == pytest.approx(550.0)
    assert chosen.key() != every.key()  # two selections, two shared meters


def test_a_gpu_index_nvml_lacks_is_an_error_not_a_machine_without_gpus():
    nvml = FakeNvml(energy_mj=[0, 0], power_mw=[1, 1])
    with pytest.raises(energy.NoSuchGpu, match=r"^NVML has no GPU 2, 5: it sees 2 GPUs, numbered 0 to 1$"):
        NvmlMeter.open(nvml, gpus=[0, 2, 5])

    class NoDriver(FakeNvml):
        def nvmlInit(self) -> None:  # noqa: N802
            raise self.NVMLError("Driver Not Loaded")

    assert NvmlMeter.open(NoDriver(energy_mj=[0], power_mw=[1]), gpus=[3]) is None  # nothing to meter: an estimate
