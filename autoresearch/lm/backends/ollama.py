"""Completions from an Ollama server through the official `ollama` client, with its failures typed."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import ollama
import pydantic

from ...errors import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    ContextLengthExceeded,
    MalformedResponse,
    ModelNotFound,
    ServerError,
    UnparseableOutput,
)
from .base import Completion, CompletionRequest

T = TypeVar("T")

# Ollama words context overflow differently across versions ("input length exceeds maximum context length",
# "context length exceeded", "exceeds the context window").
_CONTEXT_OVERFLOW = re.compile(r"context (length|size|window)|maximum context|exceeds? .*context", re.IGNORECASE)
_NS = 1e9


class OllamaBackend:
    """A model served by Ollama; the work happens in another process, possibly on a GPU."""

    name = "ollama"
    in_process = False

    def __init__(self, url: str, model: str, timeout_s: float = 300.0):
        self.url = url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        # The client fixes its timeout at construction, so keep one client per timeout a request asks for.
        self._clients: dict[float, ollama.Client] = {}
        self._clients_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OllamaBackend(url={self.url!r}, model={self.model!r}, timeout_s={self.timeout_s})"

    def complete(self, request: CompletionRequest) -> Completion:
        """One non-streaming /api/chat call; a json_schema is passed as Ollama's `format`."""
        model = request.model or self.model
        if not model:  # the client would raise a pydantic error that reads like a bad reply
            raise ModelNotFound(f"no model named for Ollama at {self.url}", backend=self.name, model=model)
        options = {
            "temperature": request.temperature,
            "num_predict": request.max_tokens,
            "top_p": request.top_p,
            "repeat_penalty": request.repeat_penalty,
            "seed": request.seed,
            "stop": list(request.stop) or None,
        }
        client = self._client(request.timeout_s or self.timeout_s)
        started = time.perf_counter()
        response = self._call(
            model,
            lambda: client.chat(
                model=model,
                messages=[{"role": m.role, "content": m.content} for m in request.messages],
                options={k: v for k, v in options.items() if v is not None},
                format=request.json_schema,
                keep_alive=request.keep_alive,
            ),
        )
        latency_s = time.perf_counter() - started
        text = (response.message.content if response.message else None) or ""
        if not text.strip():
            raise UnparseableOutput("Ollama returned an empty reply", backend=self.name, model=model)
        durations = {
            "total_s": response.total_duration,
            "load_s": response.load_duration,
            "prompt_eval_s": response.prompt_eval_duration,
            "eval_s": response.eval_duration,
        }
        return Completion(
            text=text,
            prompt_tokens=response.prompt_eval_count or 0,
            completion_tokens=response.eval_count or 0,
            latency_s=latency_s,
            load_s=(response.load_duration or 0) / _NS,
            timings={k: ns / _NS for k, ns in durations.items() if ns is not None},
            finish_reason=response.done_reason or "stop",
        )

    def preload(self, model: str | None = None, keep_alive: str | float | None = None) -> Completion:
        """Load a model without generating (POST /api/chat with no messages); load_s says whether it had to load."""
        model = model or self.model
        started = time.perf_counter()
        response = self._call(
            model, lambda: self._client(self.timeout_s).chat(model=model, messages=[], keep_alive=keep_alive))
        return Completion(text="", prompt_tokens=0, completion_tokens=0, latency_s=time.perf_counter() - started,
                          load_s=(response.load_duration or 0) / _NS, finish_reason=response.done_reason or "load")

    def list_models(self) -> list[str]:
        """Models the server has pulled (GET /api/tags)."""
        response = self._call(self.model, lambda: self._client(self.timeout_s).list())
        return [m.model for m in response.models if m.model]

    def model_identity(self) -> str | None:
        """The model's digest (GET /api/tags): an `ollama pull` that updates the tag changes it."""
        response = self._call(self.model, lambda: self._client(self.timeout_s).list())
        digests = {m.model: m.digest for m in response.models if m.model}
        digest = digests.get(self.model) or digests.get(f"{self.model}:latest")
        return f"digest {digest}" if digest else None

    def loaded_models(self) -> list[str]:
        """Models the server holds in memory right now (GET /api/ps)."""
        response = self._call(self.model, lambda: self._client(self.timeout_s).ps())
        return [m.name or m.model for m in response.models if m.name or m.model]

    def _client(self, timeout_s: float) -> ollama.Client:
        with self._clients_lock:
            if timeout_s not in self._clients:
                self._clients[timeout_s] = ollama.Client(host=self.url, timeout=timeout_s)
            return self._clients[timeout_s]

    def _call(self, model: str, call: Callable[[], T]) -> T:
        """Run a client call, turning every way it can fail into one typed BackendError."""
        where = dict(backend=self.name, model=model)
        try:
            return call()
        except ollama.ResponseError as exc:
            raise _response_error(exc, self.url, model) from None
        # The client turns httpx.ConnectError into a bare ConnectionError; catch both to be safe.
        except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout):
            message = f"cannot reach Ollama at {self.url} (is `ollama serve` running?)"
            raise BackendUnreachable(message, **where) from None
        except httpx.TimeoutException as exc:
            raise BackendTimeout(f"Ollama at {self.url} did not answer in time: {exc!r}", **where) from None
        except httpx.TransportError as exc:
            raise BackendUnreachable(f"connection to Ollama at {self.url} failed: {exc!r}", **where) from None
        except (json.JSONDecodeError, pydantic.ValidationError) as exc:  # the reply did not fit the client's models
            raise MalformedResponse(f"Ollama at {self.url} sent a malformed response: {exc}", **where) from None


def _response_error(exc: ollama.ResponseError, url: str, model: str) -> BackendError:
    """The typed error for an HTTP error answer from Ollama."""
    where = dict(backend="ollama", model=model)
    error = str(exc.error)
    message = f"Ollama at {url}: {error} (HTTP {exc.status_code})"
    if _CONTEXT_OVERFLOW.search(error):
        return ContextLengthExceeded(message, **where)
    if exc.status_code == 404 or "not found" in error.lower():
        return ModelNotFound(message, **where)
    if exc.status_code >= 500 or exc.status_code == -1:  # -1: an error line inside a streamed reply
        return ServerError(message, **where)
    return BackendError(message, **where)
