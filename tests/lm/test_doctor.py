"""doctor: backends and models, GPU counters, RAPL, and the meter each role will use."""

from __future__ import annotations

import json
import types

import pytest
from click.testing import CliRunner
from rich.console import Console

from autoresearch import energy
from autoresearch.cli.main import main
from autoresearch.cli.views import doctor_tables
from autoresearch.lm.doctor import diagnose
from autoresearch.workspace.config import (
    BackendsConfig,
    Portfolio,
    RoleConfig,
    Settings,
)
from autoresearch.workspace.workspace import load_workspace


class Nvml(types.SimpleNamespace):
    class NVMLError(Exception):
        pass

    def __init__(self, counters: list[bool]):
        super().__init__()
        self.counters = counters

    def nvmlInit(self):  # noqa: N802
        pass

    def nvmlDeviceGetCount(self):  # noqa: N802
        return len(self.counters)

    def nvmlDeviceGetHandleByIndex(self, i):  # noqa: N802
        return i

    def nvmlDeviceGetName(self, h):  # noqa: N802
        return b"NVIDIA H100"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):  # noqa: N802
        if not self.counters[h]:
            raise self.NVMLError("Not Supported")
        return 1000


def rapl_tree(root, packages=1):
    for i in range(packages):
        d = root / f"intel-rapl:{i}"
        d.mkdir(parents=True)
        (d / "name").write_text(f"package-{i}\n")
        (d / "energy_uj").write_text("1000\n")
        (d / "max_energy_range_uj").write_text("262143328850\n")
    return root


def settings_with(**roles: RoleConfig) -> Settings:
    return Settings(portfolios={"default": Portfolio(**roles)}, backends=BackendsConfig(
        ollama_url="http://127.0.0.1:9", openai_base_url="http://10.1.2.3:8000/v1", timeout_s=1))


def test_gpu_counters_rapl_and_meter_per_role(tmp_path):
    settings = settings_with(producer=RoleConfig(backend="ollama", model="qwen"),
                             evaluator=RoleConfig(backend="openai", model="m"))
    found = diagnose(settings, nvml=Nvml([True, False]), rapl_root=rapl_tree(tmp_path / "powercap"))
    assert [g.ok for g in found.gpus] == [True, False]
    assert "no energy counter" in found.gpus[1].detail
    assert found.rapl.ok and "1 package domain" in found.rapl.detail
    meters = {(r.role, r.backend): r.meter for r in found.roles}
    assert meters[("planner", "embedded")] == "rapl"  # a CPU model on a machine with RAPL
    # A local GPU server; GPU 1 lacks the counter, so a run samples power on both: so says doctor.
    assert meters[("producer", "ollama")] == "nvml-power"
    assert meters[("evaluator", "openai")] == "estimate"  # served on another machine


@pytest.mark.parametrize("counters", [[True, True], [True, False], [False]])
def test_doctor_names_the_meter_a_run_will_use(tmp_path, counters, monkeypatch):
    settings = settings_with(producer=RoleConfig(backend="ollama", model="qwen"))
    found = diagnose(settings, nvml=Nvml(counters), rapl_root=tmp_path / "none")
    doctor_says = {(r.role, r.backend): r.meter for r in found.roles}[("producer", "ollama")]
    monkeypatch.setattr(energy.NvmlMeter, "__init__", _nvml_init(Nvml(counters)))
    monkeypatch.setattr(energy.RaplMeter, "available", classmethod(lambda cls, *a: False))
    run_uses = energy.select_meter(in_process=False, local=True, gpu=True, cpu_watts_per_core=1, server_watts=1)
    assert run_uses.source == doctor_says == ("nvml" if all(counters) else "nvml-power")


def _nvml_init(fake):
    real = energy.NvmlMeter.__init__

    def init(self, nvml=None, gpus=None):
        real(self, fake, gpus)

    return init


def test_unreachable_server_is_reported_not_raised(tmp_path):
    settings = settings_with(producer=RoleConfig(backend="ollama", model="qwen"))
    found = diagnose(settings, nvml=Nvml([]), rapl_root=tmp_path / "none")
    ollama = next(f for f in found.backends if f.name.startswith("ollama"))
    assert not ollama.ok and "127.0.0.1:9" in ollama.name and ollama.detail.startswith("unreachable")
    assert not found.rapl.ok
    assert {r.meter for r in found.roles} == {"estimate"}


@pytest.fixture
def stubs():
    from backends.ollama_stub import OllamaStub
    from backends.openai_stub import OpenAIStub

    ollama, openai = OllamaStub().start(), OpenAIStub().start()
    yield ollama, openai
    ollama.stop()
    openai.stop()


def test_doctor_says_what_a_study_records_of_each_model_and_where_it_cannot(tmp_path, stubs):
    ollama_stub, openai_stub = stubs
    ollama_stub.models = ["qwen:latest"]
    settings = Settings(portfolios={"default": Portfolio(
        planner=RoleConfig(backend="ollama", model="qwen", base_url=ollama_stub.url),
        producer=RoleConfig(backend="openai", model="local-model", base_url=openai_stub.base_url),
        evaluator=RoleConfig(backend="ollama", model="judge", base_url="http://127.0.0.1:9"),
        proposer=RoleConfig(backend="openai", model="not-a-pipeline-role", base_url=openai_stub.base_url))})
    found = diagnose(settings, nvml=Nvml([]), rapl_root=tmp_path / "none")
    by_name = {f.name.split(" at ")[0]: f for f in found.identities}
    assert set(by_name) == {"ollama qwen", "openai local-model", "ollama judge"}  # the proposer scores nothing
    assert by_name["ollama qwen"].ok and by_name["ollama qwen"].detail.startswith("digest sha256:")
    assert not by_name["openai local-model"].ok and by_name["openai local-model"].detail.startswith(
        "the server gives the model's name only")  # the stub lists {"id", "object", "owned_by"}, as llama-cpp-python
    assert by_name["ollama judge"].detail == "cannot ask: the server did not answer (Backends, above)"
    shown = Console(record=True, width=200)
    for table in doctor_tables(found):
        shown.print(table)
    assert "What a study records of each model" in shown.export_text()


def test_cli_doctor_json_names_the_embedded_model(tmp_path, monkeypatch):
    from autoresearch.workspace import workspace

    root = workspace.init_workspace(tmp_path / "ws")
    result = CliRunner().invoke(main, ["doctor", "-w", str(root), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    embedded = data["backends"][0]
    assert embedded["name"] == "embedded" and embedded["ok"]
    assert any(m.startswith("smollm2-135m") for m in embedded["models"])
    assert len(data["roles"]) == 4 * len(load_workspace(root).settings.portfolios)  # each role of each portfolio


def test_doctor_meters_only_the_gpus_energy_gpus_names(tmp_path, monkeypatch):
    """GPU 0 has no energy counter, GPU 1 has: all of them are sampled power; GPU 1 alone is the counter."""
    settings = settings_with(producer=RoleConfig(backend="ollama", model="qwen"))
    chosen = settings.model_copy(update={"energy": settings.energy.model_copy(update={"gpus": [1]})})
    meters = {}
    for name, s in (("every", settings), ("chosen", chosen)):
        found = diagnose(s, nvml=Nvml([False, True]), rapl_root=tmp_path / "none")
        meters[name] = {(r.role, r.backend): r.meter for r in found.roles}[("producer", "ollama")]
    assert meters == {"every": "nvml-power", "chosen": "nvml"}
    assert [g.detail for g in found.gpus] == [
        "NVIDIA H100: no energy counter; power sampling only; not metered ([energy] gpus)",
        "NVIDIA H100: total-energy counter supported"]
    monkeypatch.setattr(energy.NvmlMeter, "__init__", _nvml_init(Nvml([False, True])))
    monkeypatch.setattr(energy.RaplMeter, "available", classmethod(lambda cls, *a: False))
    run_uses = energy.select_meter(in_process=False, local=True, gpu=True, cpu_watts_per_core=1, server_watts=1,
                                   gpus=[1])
    assert run_uses.source == "nvml"  # what doctor said the run would use
    missing = diagnose(chosen.model_copy(update={"energy": chosen.energy.model_copy(update={"gpus": [1, 4]})}),
                       nvml=Nvml([True, True]), rapl_root=tmp_path / "none")
    assert (missing.gpus[-1].name, missing.gpus[-1].ok) == ("[energy] gpus", False)


def test_doctor_with_a_gpu_index_nvml_lacks_says_runs_will_refuse_and_shows_the_brackets(tmp_path):
    settings = settings_with(producer=RoleConfig(backend="ollama", model="qwen"))
    wrong = settings.model_copy(update={"energy": settings.energy.model_copy(update={"gpus": [0, 5]})})
    found = diagnose(wrong, nvml=Nvml([True]), rapl_root=tmp_path / "none")
    why = {(r.role, r.backend): r.why for r in found.roles}
    assert why[("producer", "ollama")] == ("[energy] gpus names a GPU NVML does not have: eval and run refuse to "
                                            "start until it is corrected")
    assert "refuse" not in why[("planner", "embedded")]  # an in-process model is not metered on a GPU
    console = Console(record=True, width=250)
    for table in doctor_tables(found):
        console.print(table)
    shown = console.export_text()
    assert "│ [energy] gpus │ no " in shown and "[energy] gpus names a GPU" in shown  # not read as markup
