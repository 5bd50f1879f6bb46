"""Preflight: an unusable role fails before anything runs, with a ConfigError naming field and URL."""

from __future__ import annotations

import dataclasses
import socket
import sys

import pytest

from autoresearch.errors import BackendUnreachable, ConfigError, ModelNotFound
from autoresearch.lm import preflight
from autoresearch.lm.backends import FakeBackend
from autoresearch.lm.preflight import check_portfolio
from autoresearch.workspace.config import Portfolio, RoleConfig
from autoresearch.workspace.workspace import CONFIG_NAME

ROLES = ("planner", "producer", "evaluator", "proposer")


class Unreachable:
    name = "ollama"
    in_process = False

    def complete(self, request):
        raise AssertionError("preflight must not complete")

    def list_models(self):
        raise BackendUnreachable("connection refused", backend="ollama", model="m")


def factory_listing(*models: str):
    seen = []

    def factory(role_config, backends_config):
        seen.append(role_config)
        return FakeBackend("unused", models=models)

    factory.seen = seen
    return factory


def portfolio(**roles: RoleConfig) -> Portfolio:
    base = {role: RoleConfig(backend="fake", model="known") for role in ROLES}
    return Portfolio(**{**base, **roles})


def test_every_role_with_a_listed_model_passes(workspace):
    factory = factory_listing("known", "other")
    check_portfolio(workspace, "default", portfolio(), backend_factory=factory)
    assert len(factory.seen) == 4


def test_only_the_requested_roles_are_checked(workspace):
    factory = factory_listing("known")
    p = portfolio(proposer=RoleConfig(backend="fake", model="absent"))
    check_portfolio(workspace, "default", p, roles=("planner", "producer", "evaluator"), backend_factory=factory)
    assert len(factory.seen) == 3


@pytest.mark.parametrize("role", ["planner", "producer", "evaluator"])
def test_unknown_model_names_the_roles_model_field(workspace, role):
    p = portfolio(**{role: RoleConfig(backend="fake", model="missing-model")})
    with pytest.raises(ConfigError) as info:
        check_portfolio(workspace, "default", p, backend_factory=factory_listing("known"))
    error = info.value
    assert error.path == str(workspace.root / CONFIG_NAME)
    assert error.field == f"portfolios.default.{role}.model"
    assert "missing-model" in str(error) and "known" in str(error)  # says what is available


def test_ollama_tag_latest_counts_as_the_model(workspace):
    p = portfolio(planner=RoleConfig(backend="fake", model="llama3"))
    check_portfolio(workspace, "default", p, backend_factory=factory_listing("known", "llama3:latest"))


def test_model_not_found_from_the_backend_names_the_model_field(workspace):
    def factory(role_config, backends_config):
        backend = FakeBackend("unused")
        backend.list_models = lambda: (_ for _ in ()).throw(ModelNotFound("no GGUF file", backend="embedded"))
        return backend

    with pytest.raises(ConfigError) as info:
        check_portfolio(workspace, "default", portfolio(), backend_factory=factory)
    assert info.value.field == "portfolios.default.planner.model" and "no GGUF file" in str(info.value)


def test_unreachable_backend_names_the_backend_field_and_url(workspace):
    p = portfolio(producer=RoleConfig(backend="ollama", model="llama3", base_url="http://10.1.2.3:11434"))

    def factory(role_config, backends_config):
        return Unreachable() if role_config.backend == "ollama" else FakeBackend("unused", models=["known"])

    with pytest.raises(ConfigError) as info:
        check_portfolio(workspace, "default", p, backend_factory=factory)
    assert info.value.field == "portfolios.default.producer.backend"
    assert "http://10.1.2.3:11434" in str(info.value) and "connection refused" in str(info.value)


def test_unreachable_backend_without_base_url_names_the_backends_url(workspace):
    p = portfolio(evaluator=RoleConfig(backend="openai", model="gpt"))
    factory = lambda rc, bc: Unreachable() if rc.backend == "openai" else FakeBackend("x", models=["known"])
    with pytest.raises(ConfigError) as info:
        check_portfolio(workspace, "default", p, backend_factory=factory)
    assert info.value.field == "portfolios.default.evaluator.backend"
    assert workspace.settings.backends.openai_base_url in str(info.value)


def test_real_ollama_backend_on_a_dead_port(workspace):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    p = portfolio(planner=RoleConfig(backend="ollama", model="llama3", base_url=url))
    with pytest.raises(ConfigError) as info:
        check_portfolio(workspace, "default", p, roles=("planner",))  # the real create_backend
    assert info.value.field == "portfolios.default.planner.backend" and url in str(info.value)


def test_factory_refusing_the_backend_names_the_backend_field(workspace):
    # The real factory refuses "fake": it exists only for tests that inject their own factory.
    with pytest.raises(ConfigError) as info:
        check_portfolio(workspace, "default", portfolio(), roles=("producer",))
    assert info.value.field == "portfolios.default.producer.backend"


def test_patching_the_module_factory_takes_effect(workspace, monkeypatch):
    factory = factory_listing("known")
    monkeypatch.setattr(preflight, "create_backend", factory)
    check_portfolio(workspace, "default", portfolio(), roles=("planner",))
    assert len(factory.seen) == 1


def test_embedded_model_path_that_does_not_exist_names_the_model_field(workspace, tmp_path):
    missing = tmp_path / "no-such-model.gguf"
    p = portfolio(producer=RoleConfig(backend="embedded", model=str(missing)))
    with pytest.raises(ConfigError) as info:
        check_portfolio(workspace, "default", p, roles=("producer",))  # the real factory; nothing is loaded
    assert info.value.field == "portfolios.default.producer.model" and str(missing) in str(info.value)


def test_energy_gpus_naming_a_gpu_nvml_lacks_is_refused_before_any_call(workspace, monkeypatch):
    """[energy] gpus = [3] on a one-GPU machine: a setting to correct, not a machine without a counter (which
    would quietly estimate); checked only where a role is served on this machine."""
    monkeypatch.setitem(sys.modules, "pynvml", OneGpu())
    with_gpus = lambda gpus: dataclasses.replace(workspace, settings=workspace.settings.model_copy(  # noqa: E731
        update={"energy": workspace.settings.energy.model_copy(update={"gpus": gpus})}))
    workspace = with_gpus([0, 3])
    local = portfolio(producer=RoleConfig(backend="ollama", model="known", base_url="http://127.0.0.1:11434"))
    with pytest.raises(ConfigError) as raised:
        check_portfolio(workspace, "default", local, backend_factory=factory_listing("known"))
    assert str(raised.value) == (f"{workspace.root / CONFIG_NAME}: energy.gpus: NVML has no GPU 3: it sees 1 GPU, "
                                 "numbered 0 to 0")
    check_portfolio(workspace, "default", portfolio(), backend_factory=factory_listing("known"))  # no local server
    workspace = with_gpus([0])
    check_portfolio(workspace, "default", local, backend_factory=factory_listing("known"))


class OneGpu:
    """pynvml's slice NvmlMeter reads: one GPU with an energy counter."""

    class NVMLError(Exception):
        pass

    def nvmlInit(self):  # noqa: N802
        pass

    def nvmlDeviceGetCount(self):  # noqa: N802
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):  # noqa: N802
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):  # noqa: N802
        return 1000

    def nvmlDeviceGetPowerUsage(self, handle):  # noqa: N802
        return 100_000
