"""Completions from any OpenAI-compatible server (llama-server, vLLM, LM Studio) over plain httpx."""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from typing import Any

import httpx

from ...errors import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    ContextLengthExceeded,
    MalformedResponse,
    ModelNotFound,
    ServerError,
    StructuredOutputUnsupported,
    UnparseableOutput,
)
from .base import Completion, CompletionRequest
from .dialects import AUTO, DialectNegotiator, rejects_format, response_format
from .in_flight import watched

# llama-server: "exceeds the available context size"; vLLM/OpenAI: "maximum context length", "context_length_exceeded".
IDLE_PROBE_S = 5.0  # how long the in-flight watch waits for a llama-server's /slots
_CONTEXT_OVERFLOW = re.compile(r"context[ _](length|size|window)|maximum context|exceeds? .*context", re.IGNORECASE)


class OpenAICompatBackend:
    """A model behind POST {base_url}/chat/completions; the API key is read from the environment per call."""

    name = "openai"
    in_process = False

    def __init__(self, base_url: str, model: str, timeout_s: float = 300.0, api_key_env: str = "OPENAI_API_KEY",
                 structured: str = AUTO):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.api_key_env = api_key_env  # the variable's name only: the key itself is never stored
        self._http = httpx.Client(timeout=timeout_s)
        # Per server: roles sharing this instance (same URL and model) negotiate once between them.
        self.dialects = DialectNegotiator(self.base_url, structured)
        # llama-server, once its model list or a reply showed it ("owned_by": "llamacpp", "timings"): it then gets
        # cache_prompt, so that a slot reuses the prompt prefix it holds (other servers may refuse a field they do
        # not know, so only it gets it), and its calls are watched in flight (in_flight.py).
        self.llama_server = False

    def __repr__(self) -> str:
        return (f"OpenAICompatBackend(base_url={self.base_url!r}, model={self.model!r}, "
                f"timeout_s={self.timeout_s}, api_key_env={self.api_key_env!r}, structured={self.dialects.preferred!r})")

    def complete(self, request: CompletionRequest) -> Completion:
        """One non-streaming chat completion; a json_schema goes in the dialect this server speaks (dialects.py)."""
        model = request.model or self.model
        payload: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stream": False,
        }
        # repeat_penalty is llama.cpp server's name for it (sent only when a role sets it)
        optional = {"top_p": request.top_p, "repeat_penalty": request.repeat_penalty, "seed": request.seed,
                    "stop": list(request.stop) or None}
        payload.update({k: v for k, v in optional.items() if v is not None})
        if self.llama_server:
            payload["cache_prompt"] = True
        schema = request.json_schema
        if schema is None:
            return self._chat(payload, model, request.timeout_s)

        def attempt(dialect: str) -> Completion:
            fmt = response_format(dialect, schema)
            return self._chat({**payload, "response_format": fmt} if fmt else payload, model, request.timeout_s)

        completion, dialect = self.dialects.run(attempt, backend=self.name, model=model)
        return replace(completion, dialect=dialect)

    def _chat(self, payload: dict[str, Any], model: str, timeout: float | None) -> Completion:
        """POST one chat completion and map its reply; to a llama-server, watched while in flight (in_flight.py)."""
        started = time.perf_counter()

        def post() -> Any:
            return self._send("POST", "/chat/completions", model, json=payload, timeout=timeout)

        def given_up() -> BackendUnreachable:
            return BackendUnreachable(f"{self.base_url}: the server answering serves no request, so not this call (a "
                                      "llama-server stopped and started again while it was in flight)",
                                      backend=self.name, model=model)

        body = watched(post, self._idle, given_up) if self.llama_server else post()
        latency_s = time.perf_counter() - started
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise MalformedResponse(f"{self.base_url} sent a reply without choices[0].message",
                                    backend=self.name, model=model) from None
        if not text.strip():
            raise UnparseableOutput(f"{self.base_url} returned an empty reply", backend=self.name, model=model)
        usage = body.get("usage") or {}
        if isinstance(body.get("timings"), dict):
            self.llama_server = True
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=latency_s,
            timings={"total_s": latency_s, **_server_timings(body)},
            finish_reason=choice.get("finish_reason") or "stop",
        )

    def list_models(self) -> list[str]:
        """Model ids the server offers (GET {base_url}/models)."""
        body = self._send("GET", "/models", self.model)
        self._recognise(body)
        try:
            return [entry["id"] for entry in body["data"]]
        except (KeyError, TypeError):
            raise MalformedResponse(f"{self.base_url}/models sent no data[].id list",
                                    backend=self.name, model=self.model) from None

    def model_identity(self) -> str | None:
        """The model's entry in GET {base_url}/models beyond its name (llama-server: size, parameters, vocabulary;
        vLLM: root, max_model_len), or None where the entry says no more (lm/model_identity.py)."""
        from ..model_identity import entry_identity

        body = self._send("GET", "/models", self.model)
        self._recognise(body)
        entries = body.get("data") if isinstance(body, dict) else None
        entry = next((e for e in entries or () if isinstance(e, dict) and e.get("id") == self.model), None)
        return entry_identity(entry) if entry is not None else None

    def _recognise(self, models: Any) -> None:
        """A llama-server says so in its model list ("owned_by": "llamacpp"): known before its first reply, so
        that the run's first call is watched in flight too (in_flight.py)."""
        entries = models.get("data") if isinstance(models, dict) else None
        if any(isinstance(e, dict) and e.get("owned_by") == "llamacpp" for e in entries or ()):
            self.llama_server = True

    def _idle(self) -> bool:
        """Whether the llama-server answering at this URL has no slot processing (GET /slots at its root); False
        when it cannot tell (the endpoint turned off with --no-slots, another server, no answer)."""
        root = self.base_url.removesuffix("/v1")
        try:  # behind --api-key, /slots wants the key too
            slots = self._http.get(f"{root}/slots", headers=self._auth()[0], timeout=IDLE_PROBE_S).json()
        except (httpx.HTTPError, ValueError):
            return False
        return (isinstance(slots, list) and bool(slots) and all(isinstance(s, dict) for s in slots)
                and not any(s.get("is_processing", True) for s in slots))

    def _auth(self) -> tuple[dict[str, str], str | None]:
        """The request headers that carry the API key, read now from its variable (none when unset), and the key
        (to redact from error messages)."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return ({"Authorization": f"Bearer {key}"} if key else {}), key

    def _send(self, method: str, path: str, model: str, *, json: Any = None, timeout: float | None = None) -> Any:
        """Send one request and return its JSON body; every failure becomes a typed BackendError."""
        url = self.base_url + path
        headers, key = self._auth()
        where = dict(backend=self.name, model=model)
        # `from None` throughout: the httpx exception carries the request, and with it the Authorization header.
        try:
            response = self._http.request(method, url, json=json, headers=headers, timeout=timeout or self.timeout_s)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise BackendUnreachable(f"cannot reach {url}: {_redact(str(exc), key)}", **where) from None
        except httpx.TimeoutException:
            raise BackendTimeout(f"{url} did not answer within {timeout or self.timeout_s}s", **where) from None
        except httpx.TransportError as exc:
            raise BackendUnreachable(f"connection to {url} failed: {_redact(repr(exc), key)}", **where) from None
        if response.status_code >= 400:
            format_sent = isinstance(json, dict) and "response_format" in json
            raise _status_error(response, url, self.api_key_env, key, where, format_sent) from None
        try:
            return response.json()
        except ValueError:
            raise MalformedResponse(f"{url} sent a non-JSON body: {_redact(response.text[:200], key)}",
                                    **where) from None


def _status_error(response: httpx.Response, url: str, key_env: str, key: str | None,
                  where: dict[str, str], format_sent: bool = False) -> BackendError:
    """The typed error for an HTTP error answer; format_sent: the request carried a response_format."""
    status = response.status_code
    detail = _redact(_error_detail(response), key)
    message = f"{url} answered HTTP {status}: {detail}"
    if _CONTEXT_OVERFLOW.search(detail):
        return ContextLengthExceeded(message, **where)
    if format_sent and rejects_format(status, detail):
        return StructuredOutputUnsupported(message, **where)
    if status == 404:
        if "model" in detail.lower():
            return ModelNotFound(message, **where)
        return BackendError(f"{message} (is the base URL right? it usually ends in /v1)", **where)
    if status in (401, 403):
        return BackendError(f"{message} (check the API key in ${key_env})", **where)
    if status >= 500:
        return ServerError(message, **where)
    return BackendError(message, **where)


def _error_detail(response: httpx.Response) -> str:
    """The server's own error message, from the usual JSON shapes or the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message") or error.get("type") or error
    return str(error)[:500]


def _redact(text: str, key: str | None) -> str:
    """Remove the API key from text a server or library might echo back."""
    return text.replace(key, "***") if key else text


def _server_timings(body: dict[str, Any]) -> dict[str, float]:
    """llama-server reports per-phase milliseconds under "timings"; other servers send nothing."""
    timings = body.get("timings")
    if not isinstance(timings, dict):
        return {}
    out = {}
    for field, name in (("prompt_ms", "prompt_eval_s"), ("predicted_ms", "eval_s")):
        if isinstance(timings.get(field), (int, float)):
            out[name] = timings[field] / 1000.0
    return out
