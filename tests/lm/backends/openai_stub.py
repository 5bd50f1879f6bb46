"""A local stand-in for an OpenAI-compatible server: /v1/chat/completions and /v1/models."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

# What llama-cpp-python 0.3.36's server (`python -m llama_cpp.server`) answered a json_schema response_format,
# as recorded from the real server (the traceback path shortened).
LLAMA_CPP_PYTHON_REFUSES_JSON_SCHEMA = (500, {"error": {
    "message": "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
               "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
               "'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"llama_cpp/server/app.py\", line 376, "
               "in create_chat_completion\n    POST /v1/chat/completions",
    "type": "internal_server_error", "param": None, "code": None}})
# LM Studio's answer to {"type": "json_object"} (lmstudio-bug-tracker issues 169, 307).
LM_STUDIO_REFUSES_JSON_OBJECT = (400, {"error": "'response_format.type' must be 'json_schema' or 'text'"})


def dialect_of(body: dict[str, Any]) -> str:
    """Which structured-output dialect a request body speaks (see autoresearch/lm/backends/dialects.py)."""
    fmt = body.get("response_format")
    if fmt is None:
        return "none"
    if fmt.get("type") == "json_object":
        return "json_object_schema" if "schema" in fmt else "json_object"
    return str(fmt.get("type"))


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class OpenAIStub:
    """Answers chat completions with a fixed reply, or a scripted failure (status, body) or delay."""

    def __init__(self, models: tuple[str, ...] = ("local-model",), reply: str = "Hello."):
        self.models = list(models)
        self.reply = reply
        self.requests: list[RecordedRequest] = []
        self.fail_with: tuple[int, Any] | None = None  # (status, JSON body or raw text)
        self.delay_s = 0.0
        self.timings: dict[str, float] | None = None  # llama-server's extra "timings" object
        self.refuse: dict[str, tuple[int, Any]] = {}  # dialect -> (status, body) answered to a request in it
        self.respond: Callable[[dict[str, Any]], str] | None = None  # a reply made from the request body
        self.slots: Any = None  # llama-server's GET /slots (at the server's root), when set
        self.slots_key: str | None = None  # the API key /slots wants, as a llama-server started with --api-key
        self.in_flight = 0  # chat requests being answered now (the stub serves them concurrently)
        self.max_in_flight = 0
        self._counting = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the stub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> OpenAIStub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        serve = lambda: self._server.serve_forever(poll_interval=0.05)
        threading.Thread(target=serve, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def chat(self, body: dict[str, Any]) -> tuple[int, Any]:
        with self._counting:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._chat(body)
        finally:
            with self._counting:
                self.in_flight -= 1

    def _chat(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        if self.fail_with is not None:
            return self.fail_with
        if dialect_of(body) in self.refuse:
            return self.refuse[dialect_of(body)]
        if body.get("model") not in self.models:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                   "type": "NotFoundError", "code": 404}}
        prompt_tokens = sum(len(m["content"].split()) for m in body.get("messages", []))
        text = self.respond(body) if self.respond is not None else self.reply
        reply: dict[str, Any] = {
            "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                      "total_tokens": prompt_tokens + len(text.split())},
        }
        if self.timings is not None:
            reply["timings"] = self.timings
        return 200, reply

    def list_models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "stub"} for m in self.models]}


def _handler_for(stub: OpenAIStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._record({})
            if self.path == "/v1/models":
                self._send(200, stub.list_models())
            elif self.path == "/slots" and stub.slots is not None:
                if stub.slots_key and self.headers.get("Authorization") != f"Bearer {stub.slots_key}":
                    self._send(401, {"error": {"message": "Invalid API Key", "type": "authentication_error",
                                               "code": 401}})
                else:
                    self._send(200, stub.slots)
            else:
                self._send(404, {"error": "File Not Found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            self._record(body)
            if self.path == "/v1/chat/completions":
                self._send(*stub.chat(body))
            else:
                self._send(404, {"error": "File Not Found"})

        def _record(self, body: dict[str, Any]) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            stub.requests.append(RecordedRequest(self.command, self.path, headers, body))

        def _send(self, status: int, payload: Any) -> None:
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out first

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
