"""Model backends and the factory that picks one for a role; roles with the same model share an instance."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from ..config import BackendsConfig, RoleConfig
from .base import Backend, ChatMessage, Completion, CompletionRequest
from .embedded import EmbeddedBackend
from .fake import FakeBackend
from .ollama import OllamaBackend
from .openai_compat import OpenAICompatBackend

__all__ = [
    "Backend",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "EmbeddedBackend",
    "FakeBackend",
    "OllamaBackend",
    "OpenAICompatBackend",
    "create_backend",
]

_INSTANCES: dict[Hashable, Backend] = {}
_INSTANCES_LOCK = threading.Lock()


def create_backend(role: RoleConfig, backends: BackendsConfig) -> Backend:
    """The backend serving a role; role.base_url overrides the [backends] URL. Raises ValueError for "fake"."""
    key: Hashable
    factory: Callable[[], Backend]
    if role.backend == "embedded":
        key = ("embedded", role.model, role.n_ctx)
        factory = lambda: EmbeddedBackend(role.model, n_ctx=role.n_ctx)
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
        raise ValueError("the fake backend is only for tests: construct autoresearch.backends.FakeBackend directly")
    else:
        raise ValueError(f"unknown backend {role.backend!r}; one of embedded, ollama, openai")
    with _INSTANCES_LOCK:
        if key not in _INSTANCES:
            _INSTANCES[key] = factory()
        return _INSTANCES[key]
