"""Model backends and the factory that picks one for a role; roles with the same model share an instance."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from ...workspace.config import (
    BackendsConfig,
    RoleConfig,
    embedded_batch,
    embedded_contexts,
)
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

# TEST-ONLY: a factory that serves every role instead of the configured backends (autoresearch.testing.run_cli
# sets it so that a real `autoresearch` process runs on a scripted fake). Never set for real work.
_OVERRIDE: Callable[[RoleConfig, BackendsConfig], Backend] | None = None


def override_factory(factory: Callable[[RoleConfig, BackendsConfig], Backend] | None) -> None:
    """Serve every role from factory (None: the configured backends again); for tests only."""
    global _OVERRIDE
    _OVERRIDE = factory


def create_backend(role: RoleConfig, backends: BackendsConfig) -> Backend:
    """The backend serving a role; role.base_url overrides the [backends] URL. Raises ValueError for "fake"."""
    if _OVERRIDE is not None:
        return _OVERRIDE(role, backends)
    key: Hashable
    factory: Callable[[], Backend]
    if role.backend == "embedded":
        batch, contexts = embedded_batch(role, backends), embedded_contexts(role, backends)
        key = ("embedded", role.model, role.n_ctx, role.n_threads, backends.embedded_prefix_slots,
               backends.embedded_grammar, batch, backends.embedded_draft, contexts)
        factory = lambda: EmbeddedBackend(role.model, n_ctx=role.n_ctx, n_threads=role.n_threads,
                                          prefix_slots=backends.embedded_prefix_slots,
                                          grammar=backends.embedded_grammar, batch=batch,
                                          draft=backends.embedded_draft, contexts=contexts)
    elif role.backend == "ollama":
        url = role.base_url or backends.ollama_url
        key = ("ollama", url, role.model, backends.timeout_s)
        factory = lambda: OllamaBackend(url, role.model, timeout_s=backends.timeout_s)
    elif role.backend == "openai":
        url = role.base_url or backends.openai_base_url
        key = ("openai", url, role.model, backends.timeout_s, backends.openai_api_key_env, backends.openai_structured)
        factory = lambda: OpenAICompatBackend(
            url, role.model, timeout_s=backends.timeout_s, api_key_env=backends.openai_api_key_env,
            structured=backends.openai_structured,
        )
    elif role.backend == "fake":
        raise ValueError("the fake backend is only for tests: construct autoresearch.lm.backends.FakeBackend directly")
    else:
        raise ValueError(f"unknown backend {role.backend!r}; one of embedded, ollama, openai")
    with _INSTANCES_LOCK:
        if key not in _INSTANCES:
            _INSTANCES[key] = factory()
        return _INSTANCES[key]
