"""A fault-injecting wrapper around any backend, for tests of how the loop survives a failing backend."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable

from ...errors import (
    BackendTimeout,
    BackendUnreachable,
    ContextLengthExceeded,
    MalformedResponse,
    ServerError,
)
from .base import Backend, Completion, CompletionRequest

# Each mode fails a call the way a real backend does: the typed error a backend raises, or a reply
# that the engine itself must reject ("empty", and "unparseable" where a JSON reply was asked for).
MODES = ("timeout", "unreachable", "server_error", "malformed_response", "empty", "unparseable", "context_length")


class FaultyBackend:
    """Fails `share` of the calls to `inner` (chosen with a seeded RNG) in one of `modes`, else delegates.

    `share` may be changed while a test runs (a backend that goes down, then comes back); `injected`
    counts the faults by mode. list_models is never faulted, so preflight passes.
    """

    def __init__(self, inner: Backend, share: float = 0.2, modes: Iterable[str] = MODES, seed: int = 0):
        self.inner = inner
        self.share = share
        self.modes = tuple(modes)
        unknown = set(self.modes) - set(MODES)
        if unknown or not self.modes:
            raise ValueError(f"unknown fault mode(s) {', '.join(sorted(unknown)) or '(none)'}; one of {', '.join(MODES)}")
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.calls = 0
        self._lock = threading.Lock()
        self.name = inner.name
        self.in_process = inner.in_process

    def complete(self, request: CompletionRequest) -> Completion:
        with self._lock:
            self.calls += 1
            mode = self.rng.choice(self.modes) if self.rng.random() < self.share else None
            if mode:
                self.injected[mode] += 1
        if mode is None:
            return self.inner.complete(request)
        where = dict(backend=self.name, model=request.model)
        if mode == "timeout":
            raise BackendTimeout(f"injected fault: no answer within {request.timeout_s or 0}s", **where)
        if mode == "unreachable":
            raise BackendUnreachable("injected fault: connection refused", **where)
        if mode == "server_error":
            raise ServerError("injected fault: HTTP 503 Service Unavailable", **where)
        if mode == "malformed_response":
            raise MalformedResponse("injected fault: the server sent a non-JSON body: <html>Bad Gateway</html>", **where)
        if mode == "context_length":
            raise ContextLengthExceeded("injected fault: the prompt exceeds the context window", **where)
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        if mode == "empty":
            return Completion(text="", prompt_tokens=prompt_tokens, completion_tokens=0, latency_s=0.0)
        # "unparseable": a reply cut off mid-JSON; rejected by the engine wherever JSON was asked for.
        return Completion(text='{"', prompt_tokens=prompt_tokens, completion_tokens=1, latency_s=0.0)

    def list_models(self) -> list[str]:
        return self.inner.list_models()
