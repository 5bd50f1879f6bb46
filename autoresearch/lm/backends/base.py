"""The one small interface every model backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class CompletionRequest:
    """One chat completion; json_schema asks the backend for grammar-constrained JSON."""

    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float = 0.2
    max_tokens: int = 512
    top_p: float | None = None
    repeat_penalty: float | None = None  # llama.cpp's and Ollama's; None: the backend's default
    json_schema: dict[str, Any] | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    timeout_s: float | None = None
    keep_alive: str | float | None = None  # Ollama only: how long the server keeps the model loaded


@dataclass(frozen=True)
class Completion:
    """What a backend returns: the text and what producing it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    load_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    finish_reason: str = "stop"
    dialect: str | None = None  # how a json_schema was sent (backends/dialects.py); None: no schema, or no dialects


@runtime_checkable
class Backend(Protocol):
    """A source of completions. `in_process` says whether our own CPU time is the model's work.

    Optional: `model_identity() -> str | None`, what the backend can tell of its model beyond the name (a GGUF's
    hash, an Ollama digest), so that a study keeps another model's scores apart (lm/model_identity.py); and
    `decodes_in_batches: bool`, true where a reply depends on the calls decoded beside it, whose replies a run
    then never reuses (lm/replies.py)."""

    name: str
    in_process: bool

    def complete(self, request: CompletionRequest) -> Completion: ...

    def list_models(self) -> list[str]: ...
