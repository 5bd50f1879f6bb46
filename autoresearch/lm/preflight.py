"""Checks, before anything is written, that every role's backend is reachable and has its model."""

from __future__ import annotations

from pathlib import Path

from ..energy import NoSuchGpu, NvmlMeter
from ..errors import BackendError, ConfigError, ModelNotFound
from ..workspace.config import ROLES, BackendsConfig, Portfolio, RoleConfig
from ..workspace.workspace import CONFIG_NAME, Workspace
from .backends import create_backend
from .backends.embedded import DEFAULT_MODEL, EmbeddedBackend


def check_portfolio(workspace: Workspace, name: str, portfolio: Portfolio, roles=ROLES, backend_factory=None) -> None:
    """Raise ConfigError naming the field (or URL) of the first role whose model cannot be used."""
    # Looked up per call (not bound as a default) so that patching this module's create_backend takes effect.
    backend_factory = backend_factory or create_backend
    path = str(workspace.root / CONFIG_NAME)
    for role in roles:
        config = portfolio.role(role)
        field = f"portfolios.{name}.{role}"
        try:
            backend = backend_factory(config, workspace.settings.backends)
            models = backend.list_models()
        except ValueError as exc:
            raise ConfigError(path, f"{field}.backend", str(exc)) from None
        except ModelNotFound as exc:
            raise ConfigError(path, f"{field}.model", str(exc)) from None
        except BackendError as exc:
            url = server_url(config, workspace.settings.backends)
            where = f"{config.backend} at {url}" if url and url not in str(exc) else config.backend
            raise ConfigError(path, f"{field}.backend", f"{where}: {exc}") from None
        if config.model not in models and not _tag_match(config.model, models):
            shown = ", ".join(models[:8]) or "none"
            raise ConfigError(path, f"{field}.model", f"{config.backend} has no model {config.model!r} (available: {shown})")
        if isinstance(backend, EmbeddedBackend) and config.model != DEFAULT_MODEL:
            problem = gguf_problem(Path(config.model).expanduser())
            if problem:
                raise ConfigError(path, f"{field}.model", problem)
    gpus = workspace.settings.energy.gpus
    if gpus is not None and any(is_local(portfolio.role(r), workspace.settings.backends)
                                and portfolio.role(r).backend not in ("embedded", "fake") for r in roles):
        try:  # the GPUs a local server's calls will be metered on: before any call, not at the first
            NvmlMeter.open(gpus=gpus)
        except NoSuchGpu as exc:
            raise ConfigError(path, "energy.gpus", str(exc)) from None


def gguf_problem(path: Path) -> str | None:
    """Why a GGUF model path cannot be used (missing, unreadable, not a GGUF file), or None."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        return f"cannot read GGUF file {path}: {exc.strerror or exc}"
    if magic != b"GGUF":
        return f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)"
    return None


def server_url(config: RoleConfig, backends: BackendsConfig) -> str | None:
    """The URL a served role talks to (role.base_url overrides [backends]); None for in-process backends."""
    if config.backend == "ollama":
        return config.base_url or backends.ollama_url
    if config.backend == "openai":
        return config.base_url or backends.openai_base_url
    return config.base_url


def is_local(config: RoleConfig, backends: BackendsConfig) -> bool:
    """Whether the role's model runs on this machine, where our meters can see its energy."""
    if config.backend in ("embedded", "fake"):
        return True
    url = config.base_url or (backends.ollama_url if config.backend == "ollama" else backends.openai_base_url)
    return any(host in url for host in ("://127.", "://localhost", "://[::1]"))


def _tag_match(model: str, models: list[str]) -> bool:
    """Ollama lists "llama3:latest" for a model asked for as "llama3"."""
    return ":" not in model and f"{model}:latest" in models
