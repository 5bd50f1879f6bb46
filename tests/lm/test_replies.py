"""Replies reused for identical requests (lm/replies.py): what makes a request the same, the cache's bound, and the
engine answering a repeat without a call, recorded as reused with the figures of the call that made the reply."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoresearch.errors import Cancelled, ServerError
from autoresearch.lm import lanes
from autoresearch.lm.backends import (
    ChatMessage,
    Completion,
    CompletionRequest,
    FakeBackend,
)
from autoresearch.lm.calls import (
    CallRecord,
    CallRecorder,
    completion_rate,
    made,
    recording,
)
from autoresearch.lm.engine import BackendEngine
from autoresearch.lm.replies import Answered, ReplyCache, request_key, reused_call
from autoresearch.testing import FixedMeter
from autoresearch.workspace.config import RoleConfig

REQUEST = CompletionRequest(model="m", messages=(ChatMessage("system", "Plan."), ChatMessage("user", "Task 1.")),
                            temperature=0.7, max_tokens=64, top_p=0.9, repeat_penalty=1.1,
                            json_schema={"type": "object", "required": ["steps"]}, seed=7, stop=("\n\n",))


def key(request: CompletionRequest = REQUEST, backend: str = "embedded", server: str | None = None) -> str | None:
    return request_key(backend, server, request)


def test_an_identical_request_has_the_same_key_whatever_its_timeout_or_keep_alive():
    assert key() == key(replace(REQUEST, timeout_s=5.0, keep_alive="-1")) is not None


@pytest.mark.parametrize("change", [
    {"model": "other"}, {"messages": (ChatMessage("system", "Plan."), ChatMessage("user", "Task 2."))},
    {"messages": (ChatMessage("user", "Plan."), ChatMessage("user", "Task 1."))}, {"temperature": 0.2},
    {"max_tokens": 65}, {"top_p": 1.0}, {"repeat_penalty": None}, {"json_schema": None}, {"seed": 8}, {"stop": ()},
])
def test_anything_that_can_change_the_reply_makes_another_request(change):
    assert key(replace(REQUEST, **change)) != key()


def test_another_backend_or_server_is_another_request():
    assert len({key(), key(backend="ollama"), key(backend="ollama", server="http://a:11434"),
                key(backend="ollama", server="http://b:11434")}) == 4


def test_a_request_without_a_seed_is_never_reused():
    assert key(replace(REQUEST, seed=None)) is None


def answered(text: str) -> Answered:
    call = CallRecord(role="planner", backend="fake", model="m", prompt_hash="h", prompt_tokens=10,
                      completion_tokens=5, latency_s=1.0, load_s=0.0, joules=12.0, energy_source="estimate",
                      status="ok", response=text)
    return Answered(Completion(text, 10, 5, 1.0), call)


def test_the_cache_keeps_its_capacity_dropping_the_least_recently_used():
    cache = ReplyCache(capacity=2)
    cache.put("a", answered("A"))
    cache.put("b", answered("B"))
    assert cache.get("a") is not None  # a is now the more recent
    cache.put("c", answered("C"))
    assert cache.get("b") is None and cache.get("a").completion.text == "A" and cache.get("c").completion.text == "C"
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None


def test_a_reused_record_keeps_the_replys_figures_without_the_model_load_it_carried():
    made_it = replace(answered("A").call, load_s=3.0, load_joules=9.0, joules=21.0, task_id="t0", seed=7)
    reused = reused_call(made_it, "producer", "t1")
    assert reused.reused and (reused.role, reused.task_id) == ("producer", "t1")
    assert (reused.prompt_tokens, reused.completion_tokens, reused.latency_s, reused.response, reused.seed) == (
        10, 5, 1.0, "A", 7)
    assert (reused.joules, reused.load_joules, reused.load_s) == (12.0, 0.0, 0.0)


def test_made_and_the_completion_rate_leave_reused_replies_out():
    ok = answered("A").call
    failed = replace(ok, status="failed", failure_mode="unparseable")
    again = reused_call(ok, "planner", None)
    assert made([ok, again, failed]) == [ok, failed]
    assert completion_rate([ok, failed, again, again, again]) == 0.5  # not 4 of 5


PLAIN = replace(REQUEST, json_schema=None)  # the fake's replies are plain text


def engine(backend: FakeBackend, replies: ReplyCache | None, role: str = "planner") -> BackendEngine:
    config = RoleConfig(backend="fake", model="m", seed=7)
    return BackendEngine(role, config, backend, FixedMeter(5.0), retries=0, backoff_s=0.0, replies=replies)


def test_the_engine_answers_a_repeated_request_from_the_cache_and_records_it_as_reused():
    fake = FakeBackend(lambda request: f"reply {len(fake.requests)}")
    eng = engine(fake, ReplyCache())
    recorder = CallRecorder()
    with recording(recorder):
        recorder.task_id = "t0"
        first = eng.reply(PLAIN).text
        recorder.task_id = "t1"
        second = eng.reply(replace(PLAIN, timeout_s=9.0)).text
        third = eng.reply(replace(PLAIN, seed=8)).text
    assert (first, second, third) == ("reply 1", "reply 1", "reply 2")
    assert len(fake.requests) == 2  # the repeat made no call
    made_it, reused, other = recorder.calls
    assert not made_it.reused and reused.reused and not other.reused
    assert (reused.task_id, reused.response, reused.joules, reused.prompt_tokens) == (
        "t1", "reply 1", made_it.joules, made_it.prompt_tokens)
    assert made(recorder.calls) == [made_it, other]


def test_without_a_cache_every_request_is_a_call():
    fake = FakeBackend(lambda request: f"reply {len(fake.requests)}")
    eng = engine(fake, None)
    assert [eng.reply(PLAIN).text for _ in range(2)] == ["reply 1", "reply 2"]


def test_a_failed_call_is_not_kept_so_the_request_is_asked_again():
    fake = FakeBackend([ServerError, "answered"])
    eng = engine(fake, ReplyCache())
    recorder = CallRecorder()
    with recording(recorder), pytest.raises(ServerError):
        eng.reply(PLAIN)
    with recording(recorder):
        assert eng.reply(PLAIN).text == "answered"
        assert eng.reply(PLAIN).text == "answered"
    assert len(fake.requests) == 2
    assert [(c.status, c.reused) for c in recorder.calls] == [("failed", False), ("ok", False), ("ok", True)]


def test_a_task_of_a_stopped_suite_gets_no_reused_reply():
    fake = FakeBackend(lambda request: "answered")
    eng = engine(fake, ReplyCache())
    eng.reply(PLAIN)
    recorder = CallRecorder()
    group = lanes.Lanes(1)
    group.stopped = True  # the pruner stopped the screen while this task ran beside its last judged one
    with lanes.lane(group), recording(recorder), pytest.raises(Cancelled):
        eng.reply(PLAIN)
    assert recorder.calls == [] and len(fake.requests) == 1
