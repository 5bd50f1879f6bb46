"""A local stand-in for Ollama's HTTP API (/api/chat, /api/tags, /api/ps) that tracks which models are loaded.

Like Ollama it reports `load_duration` only when a request had to load its model, honours `keep_alive`, and,
with `max_loaded` set (OLLAMA_MAX_LOADED_MODELS), evicts the least recently used model to load another.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama's default: five minutes
_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def keep_alive_seconds(value: Any) -> float:
    """Ollama's keep_alive as seconds: numbers are seconds, strings are Go durations; negative means forever."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).strip())
        if not match:
            raise ValueError(f"invalid keep_alive {value!r}")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    return float("inf") if seconds < 0 else seconds


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: dict[str, Any]


class OllamaStub:
    """Serves Ollama's documented endpoints on 127.0.0.1 with scripted replies, failures and delays."""

    def __init__(self, models: tuple[str, ...] = ("smollm2:135m",), reply: str | Callable[[dict], str] = "Hello."):
        self.models = list(models)
        self.reply = reply
        self.requests: list[RecordedRequest] = []
        self.loaded: dict[str, float] = {}  # model → expiry time on self.clock
        self.clock: Callable[[], float] = time.time  # replace to test keep-alive expiry without sleeping
        self.fail_with: tuple[int, str] | None = None  # (status, error) answered to every /api/chat
        self.delay_s = 0.0  # sleep before answering /api/chat, e.g. to run past a client timeout
        self.load_duration_ns = 800_000_000
        self.sleep_on_load = False  # also spend load_duration_ns of wall time on each load
        self.max_loaded: int | None = None  # at most this many models in memory; None: no limit
        self.loads: list[str] = []  # every model load, in order: the server's own count of swaps
        self.evictions: list[str] = []  # models unloaded to make room for another
        self._last_used: dict[str, int] = {}  # model → sequence number of its latest request (for LRU)
        self._uses = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OllamaStub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        serve = lambda: self._server.serve_forever(poll_interval=0.05)
        threading.Thread(target=serve, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping through delay_s
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> OllamaStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def loaded_models(self) -> list[str]:
        """Models in memory now; expired ones are dropped, as Ollama's scheduler would."""
        with self._lock:
            now = self.clock()
            for name in [n for n, expiry in self.loaded.items() if expiry <= now]:
                del self.loaded[name]
            return sorted(self.loaded)

    # --- endpoint logic; each returns (status, JSON body) ---

    def chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        if self.fail_with is not None:
            return self.fail_with[0], {"error": self.fail_with[1]}
        model = body.get("model", "")
        if model not in self.models:
            return 404, {"error": f'model "{model}" not found, try pulling it first'}
        try:
            keep_alive = keep_alive_seconds(body.get("keep_alive"))
        except ValueError as exc:
            return 400, {"error": str(exc)}
        messages = body.get("messages") or []
        if not messages and keep_alive == 0:  # Ollama's documented way to unload a model
            self._unload(model)
            return 200, self._chat_reply(model, "", "unload", True, 0, 0)
        was_loaded = model in self.loaded_models()
        with self._lock:
            if not was_loaded:
                self._make_room()
                self.loads.append(model)
            self._uses += 1
            self._last_used[model] = self._uses
            self.loaded[model] = self.clock() + keep_alive
        if not was_loaded and self.sleep_on_load:
            self._stopping.wait(self.load_duration_ns / 1e9)
        if not messages:  # Ollama's documented way to preload a model
            return 200, self._chat_reply(model, "", "load", was_loaded, 0, 0)
        text = self.reply(body) if callable(self.reply) else self.reply
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        if keep_alive == 0:
            self._unload(model)
        return 200, self._chat_reply(model, text, "stop", was_loaded, prompt_tokens, len(text.split()))

    def tags(self) -> dict[str, Any]:
        return {"models": [{
            "name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z", "size": 100_000_000,
            "digest": _digest(name),
            "details": {"format": "gguf", "family": "llama", "parameter_size": "135M", "quantization_level": "Q4_1"},
        } for name in self.models]}

    def ps(self) -> dict[str, Any]:
        now = self.clock()
        entries = []
        for name in self.loaded_models():
            expiry = self.loaded.get(name, now)
            expires_at = datetime.fromtimestamp(min(expiry, now + 10 * 365 * 86400), tz=timezone.utc)
            entries.append({"name": name, "model": name, "size": 100_000_000,
                            "digest": _digest(name),
                            "expires_at": expires_at.isoformat(), "size_vram": 0})
        return {"models": entries}

    def _make_room(self) -> None:
        """Evict least recently used models until one more fits (caller holds the lock)."""
        while self.max_loaded is not None and self.loaded and len(self.loaded) >= self.max_loaded:
            victim = min(self.loaded, key=lambda name: self._last_used.get(name, 0))
            del self.loaded[victim]
            self.evictions.append(victim)

    def _unload(self, model: str) -> None:
        with self._lock:
            self.loaded.pop(model, None)

    def _chat_reply(self, model: str, text: str, reason: str, was_loaded: bool,
                    prompt_tokens: int, eval_tokens: int) -> dict[str, Any]:
        load_ns = 0 if was_loaded else self.load_duration_ns
        prompt_ns, eval_ns = 1_000_000 * prompt_tokens, 20_000_000 * eval_tokens
        return {
            "model": model, "created_at": datetime.now(timezone.utc).isoformat(),
            "message": {"role": "assistant", "content": text}, "done": True, "done_reason": reason,
            "total_duration": load_ns + prompt_ns + eval_ns + 5_000_000, "load_duration": load_ns,
            "prompt_eval_count": prompt_tokens, "prompt_eval_duration": prompt_ns,
            "eval_count": eval_tokens, "eval_duration": eval_ns,
        }


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _handler_for(stub: OllamaStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.requests.append(RecordedRequest("GET", self.path, {}))
            if self.path == "/api/tags":
                self._send(200, stub.tags())
            elif self.path == "/api/ps":
                self._send(200, stub.ps())
            else:
                self._send(404, {"error": "404 page not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            stub.requests.append(RecordedRequest("POST", self.path, body))
            if self.path != "/api/chat":
                self._send(404, {"error": "404 page not found"})
            elif body.get("stream", True):  # Ollama streams unless told not to; this stub only answers whole
                self._send(400, {"error": "the stub only serves stream: false"})
            else:
                self._send(*stub.chat(body))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to report

        def log_message(self, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
