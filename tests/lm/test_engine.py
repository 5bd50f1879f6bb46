"""BackendEngine under DSPy: metering, retries with backoff, JSON validation and a CallRecord per attempt."""

from __future__ import annotations

import json

import dspy
import pytest

from autoresearch.energy import EstimateMeter
from autoresearch.errors import (
    BackendTimeout,
    ModelNotFound,
    ServerError,
    UnparseableOutput,
)
from autoresearch.lm import engine as lm_module
from autoresearch.lm.adapter import GrammarAdapter
from autoresearch.lm.backends import (
    ChatMessage,
    Completion,
    CompletionRequest,
    FakeBackend,
)
from autoresearch.lm.calls import CallRecorder, recording
from autoresearch.lm.engine import (
    BackendEngine,
    backend_error_in,
    check_json_reply,
    make_lm,
)
from autoresearch.workspace.config import RoleConfig

WATTS = 60.0


class Say(dspy.Signature):
    """Say something about the topic."""

    topic: str = dspy.InputField()
    text: str = dspy.OutputField()


class Rate(dspy.Signature):
    """Rate the topic."""

    topic: str = dspy.InputField()
    verdict: str = dspy.OutputField()
    score: int = dspy.OutputField()


def engine(fake: FakeBackend, *, retries: int = 2, backoff_s: float = 0.0, **config) -> BackendEngine:
    role = RoleConfig(backend="fake", model="fake-model", **config)
    meter = EstimateMeter(in_process=False, cpu_watts_per_core=12.0, server_watts=WATTS)
    return BackendEngine("producer", role, fake, meter, retries=retries, backoff_s=backoff_s)


def predict(signature, eng: BackendEngine, recorder: CallRecorder, **inputs):
    predictor = dspy.Predict(signature)
    predictor.set_lm(make_lm(eng))
    with recording(recorder), dspy.context(adapter=GrammarAdapter()):
        return predictor(**inputs)


def test_a_call_through_dspy_is_recorded_with_tokens_latency_and_joules():
    fake = FakeBackend([Completion("Tea is a drink.", prompt_tokens=21, completion_tokens=5, latency_s=0.02)],
                       delay_s=0.01)
    recorder = CallRecorder()
    recorder.task_id = "t-tea"
    out = predict(Say, engine(fake, temperature=0.4, max_tokens=64), recorder, topic="tea")
    assert out.text == "Tea is a drink."
    (record,) = recorder.calls
    assert record.ok and record.status == "ok" and record.failure_mode is None
    assert (record.role, record.backend, record.model) == ("producer", "fake", "fake-model")
    assert (record.prompt_tokens, record.completion_tokens, record.latency_s) == (21, 5, 0.02)
    assert record.energy_source == "estimate"
    assert record.joules >= 0.01 * WATTS  # served estimate: wall time (≥ the fake's delay) × server watts
    assert record.response == "Tea is a drink." and record.task_id == "t-tea"
    assert record.prompt_hash == lm_module.prompt_hash(fake.requests[0].messages)
    # The role's generation parameters reach the backend.
    (request,) = fake.requests
    assert (request.model, request.temperature, request.max_tokens) == ("fake-model", 0.4, 64)
    assert request.messages[0] == ChatMessage("system", Say.instructions)
    assert request.json_schema is None  # a single text output is plain text


def test_recorder_sink_receives_every_record():
    sunk = []
    recorder = CallRecorder(sink=sunk.append)
    predict(Say, engine(FakeBackend("hello")), recorder, topic="x")
    assert sunk == recorder.calls and len(sunk) == 1


def test_retryable_error_is_retried_with_backoff_and_every_attempt_recorded(monkeypatch):
    sleeps = []
    monkeypatch.setattr(lm_module.time, "sleep", sleeps.append)
    fake = FakeBackend([BackendTimeout, BackendTimeout, "third time lucky"])
    recorder = CallRecorder()
    out = predict(Say, engine(fake, retries=2, backoff_s=0.5), recorder, topic="x")
    assert out.text == "third time lucky"
    assert len(fake.requests) == 3
    assert [(c.status, c.failure_mode) for c in recorder.calls] == [
        ("failed", "timeout"), ("failed", "timeout"), ("ok", None)]
    assert all(c.energy_source == "estimate" for c in recorder.calls)
    assert recorder.calls[0].error and "BackendTimeout" in recorder.calls[0].error
    assert sleeps == [0.5, 1.0]  # exponential backoff between attempts


def test_retries_run_out_then_the_backend_error_is_raised():
    fake = FakeBackend([ServerError] * 3)
    recorder = CallRecorder()
    with pytest.raises(Exception) as info:
        predict(Say, engine(fake, retries=2, backoff_s=0.0), recorder, topic="x")
    assert isinstance(backend_error_in(info.value), ServerError)
    assert len(fake.requests) == 3
    assert [c.failure_mode for c in recorder.calls] == ["server_error"] * 3


def test_non_retryable_error_is_raised_after_one_attempt():
    fake = FakeBackend([ModelNotFound, "never reached"])
    recorder = CallRecorder()
    with pytest.raises(Exception) as info:
        predict(Say, engine(fake, retries=3), recorder, topic="x")
    assert isinstance(backend_error_in(info.value), ModelNotFound)
    assert len(fake.requests) == 1
    (record,) = recorder.calls
    assert (record.status, record.failure_mode) == ("failed", "model_not_found")


def test_empty_reply_is_unparseable():
    fake = FakeBackend(["   \n"])
    recorder = CallRecorder()
    with pytest.raises(Exception) as info:
        predict(Say, engine(fake), recorder, topic="x")
    assert isinstance(backend_error_in(info.value), UnparseableOutput)
    (record,) = recorder.calls  # not retryable: one attempt
    assert (record.status, record.failure_mode) == ("failed", "unparseable")


def test_json_schema_reaches_the_backend():
    fake = FakeBackend([json.dumps({"verdict": "good", "score": 7})])
    recorder = CallRecorder()
    out = predict(Rate, engine(fake), recorder, topic="x")
    assert (out.verdict, out.score) == ("good", 7)
    schema = fake.requests[0].json_schema
    assert schema is not None
    assert set(schema["required"]) == {"verdict", "score"}
    assert schema["properties"]["score"]["type"] == "integer"
    assert recorder.calls[0].ok


def test_the_dialect_a_backend_sent_the_schema_in_is_recorded():
    reply = json.dumps({"verdict": "good", "score": 7})
    fake = FakeBackend([Completion(reply, prompt_tokens=3, completion_tokens=4, latency_s=0.01,
                                   dialect="json_object_schema"), "plain text"])
    recorder = CallRecorder()
    predict(Rate, engine(fake), recorder, topic="x")
    predict(Say, engine(fake), recorder, topic="x")
    assert [c.dialect for c in recorder.calls] == ["json_object_schema", None]


def test_json_reply_missing_a_required_key_is_unparseable():
    fake = FakeBackend([json.dumps({"verdict": "good"})])
    recorder = CallRecorder()
    with pytest.raises(Exception) as info:
        predict(Rate, engine(fake), recorder, topic="x")
    error = backend_error_in(info.value)
    assert isinstance(error, UnparseableOutput) and "score" in str(error)
    (record,) = recorder.calls
    assert (record.status, record.failure_mode) == ("failed", "unparseable")
    assert record.response == json.dumps({"verdict": "good"})  # what the model said is kept for diagnosis


def test_engine_without_active_recorder_still_completes():
    fake = FakeBackend(["fine"])
    eng = engine(fake)
    request = CompletionRequest(model="fake-model", messages=(ChatMessage("user", "hi"),))
    assert eng.call(request).text == "fine"


@pytest.mark.parametrize("text", ['{"a": 1, "b": 2}', '{"a": 1, "b": 2', '```json\n{"a": 1, "b": 2}\n```'])
def test_check_json_reply_accepts_complete_and_repairable_objects(text):
    check_json_reply(text, {"required": ["a", "b"]}, "fake", "m")


@pytest.mark.parametrize("text", ['[1, 2]', '"a"', 'no json at all', '{"a": 1}'])
def test_check_json_reply_rejects_non_objects_and_missing_keys(text):
    with pytest.raises(UnparseableOutput):
        check_json_reply(text, {"required": ["a", "b"]}, "fake", "m")


def test_a_role_without_a_seed_sends_a_fresh_seed_per_call_and_records_it():
    import random

    fake = FakeBackend(["a", "b", "c"])
    eng = engine(fake)  # RoleConfig(seed=None)
    eng.seeds = random.Random(42)
    recorder = CallRecorder()
    for topic in ("x", "y"):
        predict(Say, eng, recorder, topic=topic)
    expected = random.Random(42)
    assert [r.seed for r in fake.requests] == [expected.randrange(1, 2**31), expected.randrange(1, 2**31)]
    assert [c.seed for c in recorder.calls] == [r.seed for r in fake.requests]
    eng.seeds = None  # the OS's randomness: still a seed on every call, different each time
    predict(Say, eng, recorder, topic="z")
    assert fake.requests[-1].seed is not None and fake.requests[-1].seed not in [r.seed for r in fake.requests[:2]]


def test_a_seeded_role_sends_its_own_seed_every_time():
    fake = FakeBackend(["a", "b"])
    eng = engine(fake, seed=7)
    recorder = CallRecorder()
    predict(Say, eng, recorder, topic="x")
    predict(Say, eng, recorder, topic="y")
    assert [r.seed for r in fake.requests] == [7, 7] and [c.seed for c in recorder.calls] == [7, 7]


def test_a_roles_repeat_penalty_reaches_the_backend_and_is_left_to_it_when_unset():
    fake = FakeBackend(["a", "b"])
    predict(Say, engine(fake, repeat_penalty=1.15), CallRecorder(), topic="x")
    predict(Say, engine(fake), CallRecorder(), topic="y")
    assert [r.repeat_penalty for r in fake.requests] == [1.15, None]
