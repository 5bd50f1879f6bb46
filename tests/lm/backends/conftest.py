"""Fixtures for backend tests: local HTTP stubs of Ollama and an OpenAI-compatible server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from ollama_stub import OllamaStub
from openai_stub import OpenAIStub


@pytest.fixture
def ollama_stub() -> Iterator[OllamaStub]:
    stub = OllamaStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    stub = OpenAIStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def dead_url() -> str:
    """A URL on a local port nothing listens on, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
