"""FakeBackend: scripted replies, raised errors, callable responders and the requests it saw."""

from __future__ import annotations

import pytest

from autoresearch.errors import BackendTimeout, ModelNotFound
from autoresearch.lm.backends import (
    Backend,
    ChatMessage,
    Completion,
    CompletionRequest,
    FakeBackend,
)


def request(text: str = "write two short words", model: str = "fake") -> CompletionRequest:
    return CompletionRequest(model=model, messages=(ChatMessage("system", "be terse"), ChatMessage("user", text)))


def test_scripted_replies_come_in_order_with_word_counts():
    backend = FakeBackend(["first reply", "the second reply"])
    first, second = backend.complete(request()), backend.complete(request())
    assert (first.text, second.text) == ("first reply", "the second reply")
    assert (first.prompt_tokens, first.completion_tokens) == (6, 2)
    assert second.completion_tokens == 3
    assert isinstance(backend, Backend) and backend.name == "fake" and backend.in_process


def test_running_out_of_script_fails_loudly():
    backend = FakeBackend(["only one"])
    backend.complete(request())
    with pytest.raises(AssertionError, match="no scripted reply left for request 2"):
        backend.complete(request())


def test_exception_instances_and_classes_are_raised():
    backend = FakeBackend([ModelNotFound("gone", backend="fake", model="x"), BackendTimeout, ValueError, "recovered"])
    with pytest.raises(ModelNotFound, match="gone"):
        backend.complete(request())
    with pytest.raises(BackendTimeout) as caught:
        backend.complete(request(model="m1"))
    assert caught.value.backend == "fake" and caught.value.model == "m1"  # classes get the request's context
    with pytest.raises(ValueError):
        backend.complete(request())
    assert backend.complete(request()).text == "recovered"


def test_callable_responder_sees_each_request_and_may_return_a_completion():
    canned = Completion(text="{}", prompt_tokens=99, completion_tokens=1, latency_s=2.5, load_s=1.0)

    def respond(req: CompletionRequest) -> str | Completion:
        if req.json_schema is not None:
            return canned
        return req.messages[-1].content.upper()

    backend = FakeBackend(respond)
    assert backend.complete(request("shout this")).text == "SHOUT THIS"
    assert backend.complete(CompletionRequest(model="fake", messages=(), json_schema={"type": "object"})) is canned


def test_a_single_string_answers_every_call():
    backend = FakeBackend("always")
    assert [backend.complete(request()).text for _ in range(3)] == ["always"] * 3


def test_requests_are_recorded_even_when_the_reply_raises():
    backend = FakeBackend([RuntimeError("boom"), "ok"])
    first, second = request("one"), request("two", model="other")
    with pytest.raises(RuntimeError):
        backend.complete(first)
    backend.complete(second)
    assert backend.requests == [first, second]


def test_delay_is_measured_as_latency_and_models_are_configurable():
    backend = FakeBackend(["slow"], models=["a", "b"], delay_s=0.05)
    assert backend.complete(request()).latency_s >= 0.05
    assert backend.list_models() == ["a", "b"]
    assert FakeBackend([]).list_models() == ["fake"]
