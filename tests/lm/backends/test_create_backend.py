"""create_backend: picking a backend for a role, URL overrides and shared instances."""

from __future__ import annotations

import pytest

from autoresearch.lm.backends import (
    EmbeddedBackend,
    OllamaBackend,
    OpenAICompatBackend,
    create_backend,
)
from autoresearch.workspace.config import BackendsConfig, RoleConfig

BACKENDS = BackendsConfig(ollama_url="http://ollama.test:11434", openai_base_url="http://llama.test:8080/v1",
                          openai_api_key_env="TEST_KEY_ENV", timeout_s=42.0)


def test_embedded_roles_with_the_same_model_share_one_instance():
    planner = create_backend(RoleConfig(backend="embedded", temperature=0.1), BACKENDS)
    producer = create_backend(RoleConfig(backend="embedded", temperature=0.9), BACKENDS)
    bigger = create_backend(RoleConfig(backend="embedded", n_ctx=4096), BACKENDS)
    assert isinstance(planner, EmbeddedBackend) and planner is producer
    assert bigger is not planner and bigger.n_ctx == 4096


def test_ollama_uses_the_backends_url_unless_the_role_overrides_it():
    default = create_backend(RoleConfig(backend="ollama", model="qwen2.5:0.5b"), BACKENDS)
    override = RoleConfig(backend="ollama", model="qwen2.5:0.5b", base_url="http://gpu.test:11434")
    other = create_backend(override, BACKENDS)
    assert isinstance(default, OllamaBackend)
    assert (default.url, default.model, default.timeout_s) == ("http://ollama.test:11434", "qwen2.5:0.5b", 42.0)
    assert other.url == "http://gpu.test:11434" and other is not default
    assert create_backend(RoleConfig(backend="ollama", model="qwen2.5:0.5b"), BACKENDS) is default


def test_openai_takes_base_url_and_key_variable_from_backends_config():
    backend = create_backend(RoleConfig(backend="openai", model="served"), BACKENDS)
    assert isinstance(backend, OpenAICompatBackend)
    assert backend.base_url == "http://llama.test:8080/v1"
    assert (backend.api_key_env, backend.timeout_s) == ("TEST_KEY_ENV", 42.0)


def test_fake_backend_cannot_be_configured():
    with pytest.raises(ValueError, match="only for tests"):
        create_backend(RoleConfig(backend="fake"), BACKENDS)
