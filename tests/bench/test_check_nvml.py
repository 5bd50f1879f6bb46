"""scripts/check_nvml.py on a fake GPU: its phases run and compare the meter with the counter it reads."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A GPU drawing 300 W whose energy counter ticks every 50 ms (pynvml's units: mJ, mW), and a PyTorch whose
# matrix product takes 2 ms: enough for the script's phases, with figures that follow from the clock.
FAKE_PYNVML = '''
import time
T0 = time.perf_counter()
class NVMLError(Exception): pass
def nvmlInit(): pass
def nvmlDeviceGetCount(): return 1
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetName(h): return b"Fake GPU"
def nvmlSystemGetDriverVersion(): return "0.0"
def nvmlDeviceGetTotalEnergyConsumption(h):
    return int(int((time.perf_counter() - T0) / 0.05) * 0.05 * 300_000)
def nvmlDeviceGetPowerUsage(h): return 300_000
'''
FAKE_TORCH = '''
import time
bfloat16 = "bf16"
class Tensor:
    device = 0
    def __matmul__(self, other):
        time.sleep(0.002)
        return self
def randn(*shape, **options): return Tensor()
class cuda:
    @staticmethod
    def synchronize(device=None): pass
'''


def test_each_phase_sets_the_meter_beside_the_counter_and_they_agree(tmp_path):
    (tmp_path / "pynvml.py").write_text(FAKE_PYNVML)
    (tmp_path / "torch.py").write_text(FAKE_TORCH)
    out = tmp_path / "nvml.json"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_nvml.py"), "--seconds", "0.4",
                           "--json", str(out)], env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "GPUs: Fake GPU · driver 0.0 · NVML meter source: nvml" in done.stdout
    rows = {row["phase"]: row for row in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["idle", "load", "short", "overlapping"]
    assert rows["short"]["calls"] == 40 and rows["overlapping"]["calls"] > 8
    for name in ("idle", "load", "overlapping"):  # 300 W throughout: within a tick or two of the counter
        row = rows[name]
        assert row["meter_j"] == pytest.approx(row["counter_j"], abs=2 * 0.05 * 300), name
        assert row["counter_j"] == pytest.approx(300 * row["seconds"], abs=0.05 * 300), name
    assert "| overlapping |" in done.stdout and "device,shared:4" in done.stdout
    assert done.stdout.rstrip().endswith("every check held")


def test_a_meter_off_the_counter_or_a_store_outside_its_bounds_fails_the_check():
    module = _script()
    rows = [{"phase": "idle", "seconds": 5.0, "meter_j": 100.0, "counter_j": 100.0},
            {"phase": "short", "seconds": 5.0, "meter_j": 80.0, "counter_j": 100.0},
            {"phase": "overlapping", "seconds": 5.0, "meter_j": 85.0, "counter_j": 100.0}]
    cli = {"served_j": 768.0, "store_j": 653.7, "whole_j": 2000.0}  # the H200's first run, before the settlement
    failures = module.verdicts(rows, cli)
    assert [f.split(":")[0] for f in failures] == ["overlapping", "cli"]  # short's gaps are not the meter's
    assert module.verdicts(rows[:2], {**cli, "store_j": 906.1}) == []
    # A phase of 0.5 s is judged to two of the counter's ticks (0.2 s of its 200 W here), not to 5%
    assert module.verdicts([{**rows[2], "seconds": 0.5}], None) == []


def test_a_gpu_less_machine_gets_one_line_and_exit_1(tmp_path):
    (tmp_path / "pynvml.py").write_text("class NVMLError(Exception): pass\n"
                                        "def nvmlInit(): raise NVMLError('Driver Not Loaded')\n")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_nvml.py")],
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == "no NVIDIA GPU readable through NVML here (no pynvml, no driver or no GPU)"


def _script():
    spec = importlib.util.spec_from_file_location("check_nvml", ROOT / "scripts" / "check_nvml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_busy_time_merges_requests_that_overlap_and_skips_the_gaps():
    module = _script()
    # readings are (time, mJ, W): requests over 0–2 s and 1–3 s overlap; 5–6 s stands apart
    spans = [((1.0, 1_000, 0), (3.0, 3_000, 0)), ((0.0, 0, 0), (2.0, 2_000, 0)), ((5.0, 9_000, 0), (6.0, 9_500, 0))]
    joules, seconds = module.ScriptedGpuServer.busy_joules(SimpleNamespace(spans=spans))
    assert (joules, seconds) == (pytest.approx(3.5), pytest.approx(4.0))
