"""Model backends and the factory that picks one for a role; roles with the same model share an instance."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Hashable

from ...workspace.config import BackendsConfig, RoleConfig
from .base import Backend, ChatMessage, Completion, CompletionRequest
from .embedded import EmbeddedBackend
from .fake import FakeBackend
from .faults import FaultyBackend
from .ollama import OllamaBackend
from .openai_compat import OpenAICompatBackend

__all__ = [
    "Backend",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "EmbeddedBackend",
    "FakeBackend",
    "FaultyBackend",
    "OllamaBackend",
    "OpenAICompatBackend",
    "create_backend",
]

_INSTANCES: dict[Hashable, Backend] = {}
_INSTANCES_LOCK = threading.Lock()

# TEST-ONLY: the path of a Python file defining `factory(role_config, backends_config) -> Backend`.
# When set, every role gets its backend from that factory instead of the configured one, so a test can
# drive a real `autoresearch run` subprocess on a scripted fake (scripts/crash_test.py). Never set it
# for real work: the configured backends are then ignored.
FAKE_PIPELINE_ENV = "AUTORESEARCH_FAKE_PIPELINE"
_FAKE_FACTORIES: dict[str, Callable[[RoleConfig, BackendsConfig], Backend]] = {}


def _fake_pipeline_factory(path: str) -> Callable[[RoleConfig, BackendsConfig], Backend]:
    with _INSTANCES_LOCK:
        if path not in _FAKE_FACTORIES:
            spec = importlib.util.spec_from_file_location("autoresearch_fake_pipeline", path)
            if spec is None or spec.loader is None:
                raise ValueError(f"{FAKE_PIPELINE_ENV}={path}: not a Python file")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _FAKE_FACTORIES[path] = module.factory
        return _FAKE_FACTORIES[path]


def create_backend(role: RoleConfig, backends: BackendsConfig) -> Backend:
    """The backend serving a role; role.base_url overrides the [backends] URL. Raises ValueError for "fake"."""
    fake_pipeline = os.environ.get(FAKE_PIPELINE_ENV)
    if fake_pipeline:
        return _fake_pipeline_factory(fake_pipeline)(role, backends)
    key: Hashable
    factory: Callable[[], Backend]
    if role.backend == "embedded":
        key = ("embedded", role.model, role.n_ctx, role.n_threads)
        factory = lambda: EmbeddedBackend(role.model, n_ctx=role.n_ctx, n_threads=role.n_threads)
    elif role.backend == "ollama":
        url = role.base_url or backends.ollama_url
        key = ("ollama", url, role.model, backends.timeout_s)
        factory = lambda: OllamaBackend(url, role.model, timeout_s=backends.timeout_s)
    elif role.backend == "openai":
        url = role.base_url or backends.openai_base_url
        key = ("openai", url, role.model, backends.timeout_s, backends.openai_api_key_env)
        factory = lambda: OpenAICompatBackend(
            url, role.model, timeout_s=backends.timeout_s, api_key_env=backends.openai_api_key_env
        )
    elif role.backend == "fake":
        raise ValueError("the fake backend is only for tests: construct autoresearch.lm.backends.FakeBackend directly")
    else:
        raise ValueError(f"unknown backend {role.backend!r}; one of embedded, ollama, openai")
    with _INSTANCES_LOCK:
        if key not in _INSTANCES:
            _INSTANCES[key] = factory()
        return _INSTANCES[key]
