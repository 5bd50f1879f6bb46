"""What this machine offers: backends and their models, GPUs and energy counters, the meter of each role."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..energy import (
    NVML,
    NVML_POWER,
    RAPL,
    RAPL_ROOT,
    NoSuchGpu,
    NvmlMeter,
    RaplMeter,
    meter_source,
)
from ..errors import BackendError
from ..workspace.config import PIPELINE_ROLES, ROLES, RoleConfig, Settings
from .backends import llama_build
from .backends.embedded import DEFAULT_MODEL, EmbeddedBackend, resolve_model_path
from .backends.ollama import OllamaBackend
from .backends.openai_compat import OpenAICompatBackend
from .preflight import is_local, server_url

PROBE_TIMEOUT_S = 3.0  # doctor must answer quickly even when a server hangs
GPUS_SETTING = "[energy] gpus"  # the finding of an index NVML lacks


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    models: tuple[str, ...] = ()
    metered: bool = True  # a GPU: whether its energy counts ([energy] gpus leaves the others out)


@dataclass(frozen=True)
class RoleMeter:
    portfolio: str
    role: str
    backend: str
    model: str
    meter: str  # nvml | nvml-power | rapl | estimate: what a run will record (energy.meter_source)
    why: str
    local_server: bool = False  # served on this machine by another process: its GPUs are the ones metered


@dataclass
class Diagnosis:
    backends: list[Finding] = field(default_factory=list)
    gpus: list[Finding] = field(default_factory=list)
    rapl: Finding | None = None
    roles: list[RoleMeter] = field(default_factory=list)
    identities: list[Finding] = field(default_factory=list)  # what a study records of each pipeline model


def diagnose(settings: Settings, *, nvml: Any = None, rapl_root: Path = RAPL_ROOT) -> Diagnosis:
    """Probe every backend the settings name, the GPUs, RAPL, and say which meter each role will use."""
    out = Diagnosis()
    out.backends.extend(_probe_embedded(settings))
    away: set[str] = set()  # servers whose probe failed: their models' identities are not asked
    servers = [(f"ollama {url}", url, OllamaBackend(url, "", timeout_s=PROBE_TIMEOUT_S))
               for url in sorted(_urls(settings, "ollama"))]
    servers += [(f"openai {url}", url, OpenAICompatBackend(url, "", timeout_s=PROBE_TIMEOUT_S,
                                                            api_key_env=settings.backends.openai_api_key_env))
                for url in sorted(_urls(settings, "openai"))]
    for name, url, backend in servers:
        finding = _probe(name, backend)
        out.backends.append(finding)
        if not finding.ok:
            away.add(url)
    out.gpus = _probe_gpus(nvml, settings.energy.gpus)
    rapl_ok = RaplMeter.available(rapl_root)
    out.rapl = Finding("RAPL", rapl_ok, f"{len(RaplMeter(rapl_root).domains)} package domain(s) readable"
                       if rapl_ok else f"no readable energy_uj under {rapl_root}")
    # As NvmlMeter decides at run time: the counter only when every GPU has it, else power sampling.
    gpus = [g for g in out.gpus if g.name.startswith("GPU ") and g.metered]
    bad_gpus = any(g.name == GPUS_SETTING and not g.ok for g in out.gpus)
    for name, portfolio in settings.portfolios.items():
        for role in ROLES:
            config = portfolio.role(role)
            meter = _role_meter(name, role, config, settings, bool(gpus), all(g.ok for g in gpus), rapl_ok)
            if bad_gpus and meter.local_server:  # what a run would do: refuse to start (lm/preflight.py)
                meter = replace(meter, why="[energy] gpus names a GPU NVML does not have: eval and run refuse "
                                           "to start until it is corrected")
            out.roles.append(meter)
    out.identities = _identities(settings, away)
    return out


NAME_ONLY = ("the server gives the model's name only: another model swapped in under that name would go unseen, and "
             "its scores would be set against this one's")


def _identities(settings: Settings, away: set[str]) -> list[Finding]:
    """What a study records of each pipeline role's model beyond its name (lm/model_identity.py), once per
    backend and model: the check that keeps another model's scores apart, or why it cannot be made. Servers
    at a URL in `away` (their probe failed) are not asked again."""
    found: dict[tuple[str, str | None, str], Finding] = {}
    for portfolio in settings.portfolios.values():
        for role in PIPELINE_ROLES:
            config = portfolio.role(role)
            url = server_url(config, settings.backends)
            key = (config.backend, url, config.model)
            if key in found or config.backend == "fake":
                continue
            name = f"{config.backend} {config.model}" + (f" at {url}" if url else "")
            if url in away:
                found[key] = Finding(name, False, "cannot ask: the server did not answer (Backends, above)")
                continue
            try:
                identity = _backend(config, settings).model_identity()
            except BackendError as exc:
                found[key] = Finding(name, False, f"cannot ask: {' '.join(str(exc).split())}")
                continue
            found[key] = Finding(name, identity is not None, identity or NAME_ONLY)
    return list(found.values())


def _backend(config: RoleConfig, settings: Settings) -> Any:
    if config.backend == "ollama":
        return OllamaBackend(server_url(config, settings.backends), config.model, timeout_s=PROBE_TIMEOUT_S)
    if config.backend == "openai":
        return OpenAICompatBackend(server_url(config, settings.backends), config.model, timeout_s=PROBE_TIMEOUT_S,
                                   api_key_env=settings.backends.openai_api_key_env)
    return EmbeddedBackend(config.model)


def _urls(settings: Settings, backend: str) -> set[str]:
    default = settings.backends.ollama_url if backend == "ollama" else settings.backends.openai_base_url
    return {(r.base_url or default) for p in settings.portfolios.values()
            for r in (p.role(role) for role in ROLES) if r.backend == backend}


def _probe_embedded(settings: Settings) -> list[Finding]:
    try:
        import llama_cpp

        version = getattr(llama_cpp, "__version__", "?")
    except ImportError:
        return [Finding("embedded", False, "llama-cpp-python is not installed")]
    models = {r.model for p in settings.portfolios.values() for r in (p.role(x) for x in ROLES)
              if r.backend == "embedded"} | {DEFAULT_MODEL}
    found, missing = [], []
    for model in sorted(models):
        try:
            path = resolve_model_path(model)
            found.append(f"{model} ({path.stat().st_size / 1e6:.0f} MB)")
        except BackendError as exc:
            missing.append(str(exc))
    detail = f"llama-cpp-python {version}" + (f"; {'; '.join(missing)}" if missing else "")
    return [Finding("embedded", not missing, detail, tuple(found)), _probe_build()]


def _probe_build() -> Finding:
    """The CPU features the installed llama.cpp was compiled with; an AMX build is flagged with its fix."""
    info = llama_build.system_info()
    used = " ".join(llama_build.cpu_features(info)) or "none reported"
    amx = llama_build.amx_features(info)
    if amx:
        return Finding("embedded build", False, f"CPU features: {used}; {', '.join(amx)} crashes the embedded "
                       f"model (llama.cpp issue 20824); rebuild: {llama_build.reinstall_command()}")
    return Finding("embedded build", True, f"CPU features: {used}; no AMX")


def _probe(name: str, backend: Any) -> Finding:
    try:
        models = backend.list_models()
    except BackendError as exc:
        return Finding(name, False, f"{exc.failure_mode}: {exc}")
    return Finding(name, True, f"{len(models)} model(s)", tuple(models))


def _probe_gpus(nvml: Any, selected: list[int] | None = None) -> list[Finding]:
    """A finding per GPU; with [energy] gpus, those it leaves out are marked unmetered, and an index NVML does
    not have is a failed finding of its own."""
    try:
        if nvml is None:
            import pynvml as nvml
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
    except Exception as exc:  # no library, no driver or no GPU: all mean "no NVML here"
        return [Finding("NVML", False, f"not available ({type(exc).__name__})")]
    findings = []
    for index in range(count):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else name
        metered = selected is None or index in selected
        left_out = "" if metered else "; not metered ([energy] gpus)"
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            findings.append(Finding(f"GPU {index}", True, f"{name}: total-energy counter supported{left_out}",
                                    metered=metered))
        except nvml.NVMLError:
            findings.append(Finding(f"GPU {index}", False, f"{name}: no energy counter; power sampling only{left_out}",
                                    metered=metered))
    try:  # the meter's own check, so that doctor says what a run would refuse
        NvmlMeter(nvml, selected)
    except NoSuchGpu as exc:
        findings.append(Finding(GPUS_SETTING, False, str(exc)))
    return findings or [Finding("NVML", False, "no GPU found")]


def _role_meter(portfolio: str, role: str, config: RoleConfig, settings: Settings, gpu_found: bool,
                gpu_counter: bool, rapl: bool) -> RoleMeter:
    local = is_local(config, settings.backends)
    in_process = config.backend == "embedded"
    meter = meter_source(local=local, gpu=not in_process, gpu_found=gpu_found, gpu_counter=gpu_counter, rapl=rapl)
    if meter == NVML:
        why = "local GPU server: total-energy counter (the whole device's: other processes count too)"
    elif meter == NVML_POWER:
        why = "local GPU server without an energy counter: power sampled at each call's start and end"
    elif meter == RAPL:
        why = "CPU package counters (the whole package's: other processes count too)"
    elif not local:
        why = "served on another machine: wall time × server_watts"
    elif in_process:
        why = "no counter readable: CPU time × cpu_watts_per_core"
    else:
        why = "no counter readable: wall time × server_watts"
    return RoleMeter(portfolio, role, config.backend, config.model, meter, why, local_server=local and not in_process)
