"""A scripted backend for tests: replies come from a list or a function, and every request is kept."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ...errors import BackendError
from .base import Completion, CompletionRequest

Reply = str | Completion | BaseException | type[BaseException]
Responder = Callable[[CompletionRequest], str | Completion] | Iterable[Reply] | str


class FakeBackend:
    """Answers from a script: a list of replies (exceptions are raised), a callable, or one fixed string."""

    name = "fake"
    in_process = True

    def __init__(self, responder: Responder, *, models: Iterable[str] = ("fake",), delay_s: float = 0.0):
        self.requests: list[CompletionRequest] = []
        self.models = list(models)
        self.delay_s = delay_s
        if isinstance(responder, str):
            fixed = responder
            self._respond: Callable[[CompletionRequest], Reply] = lambda request: fixed
        elif callable(responder):
            self._respond = responder
        else:
            replies = iter(responder)
            self._respond = lambda request: next(replies, _EXHAUSTED)

    def complete(self, request: CompletionRequest) -> Completion:
        """Record the request, wait delay_s, then return or raise the next scripted reply."""
        self.requests.append(request)
        started = time.perf_counter()
        if self.delay_s > 0:
            time.sleep(self.delay_s)
        reply = self._respond(request)
        if reply is _EXHAUSTED:
            # An assertion, not a BackendError, so retry logic cannot swallow a test that under-scripted.
            raise AssertionError(f"FakeBackend has no scripted reply left for request {len(self.requests)}")
        if isinstance(reply, type) and issubclass(reply, BackendError):
            raise reply(f"scripted {reply.__name__}", backend=self.name, model=request.model)
        if isinstance(reply, BaseException) or (isinstance(reply, type) and issubclass(reply, BaseException)):
            raise reply
        if isinstance(reply, Completion):
            return reply  # the script decided every field itself
        return Completion(
            text=reply,
            prompt_tokens=sum(len(m.content.split()) for m in request.messages),
            completion_tokens=len(reply.split()),
            latency_s=time.perf_counter() - started,
        )

    def list_models(self) -> list[str]:
        return list(self.models)


_EXHAUSTED = object()
