"""Replies of earlier runs found again by request (store/replies.py): only a made, answered call of an evaluation by
the models answering now, and only when every pipeline role's model can tell which it is."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from autoresearch.lm.backends import ChatMessage, CompletionRequest, FakeBackend
from autoresearch.lm.calls import CallRecord, CallRecorder, made, recording
from autoresearch.lm.engine import BackendEngine
from autoresearch.lm.model_identity import PROMPT_FORMAT
from autoresearch.lm.replies import ReplyCache, request_key
from autoresearch.store import Store
from autoresearch.store.replies import StoredReplies, identified
from autoresearch.testing import FixedMeter
from autoresearch.workspace.config import RoleConfig


def models(name: str = "gguf 1 bytes sha256 aa; llama.cpp 0.3.36 (AVX2)", **roles: str) -> str:
    return json.dumps({"planner": name, "producer": name, "evaluator": name, **roles, PROMPT_FORMAT: "f1"},
                      sort_keys=True)


def call(key: str | None, **overrides) -> CallRecord:
    fields = dict(role="planner", backend="embedded", model="m", prompt_hash="h", prompt_tokens=40,
                  completion_tokens=9, latency_s=1.5, load_s=0.0, joules=18.0, energy_source="estimate",
                  status="ok", response="1. Plan it.", task_id="t1", seed=7, dialect="json_schema",
                  request_key=key, finish_reason="length")
    return CallRecord(**{**fields, **overrides})


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "runs" / "autoresearch.db")
    store.models = models()
    yield store
    store.close()


def evaluation(store: Store) -> int:
    """An evaluation begun now: stamped with the models the store says answer (Store.models)."""
    return store.begin_evaluation(kind="eval", portfolio="default", portfolio_json="{}", instructions_hash="ih",
                                  evaluation_hash="eh", split="all")


def test_a_made_call_is_found_by_its_key_as_the_reply_it_gave_and_the_record_of_its_figures(store):
    store.record_call(evaluation(store), call("k1"))
    found = StoredReplies(store)("k1")
    assert found is not None
    c = found.completion
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.latency_s, c.finish_reason, c.dialect) == (
        "1. Plan it.", 40, 9, 1.5, "length", "json_schema")
    assert found.call == call("k1")  # every figure a reuse copies, as recorded


def test_the_first_answer_is_the_one_lent(store):
    eid = evaluation(store)
    store.record_call(eid, call("k1", response="first"))
    store.record_call(eid, call("k1", response="second"))
    assert StoredReplies(store)("k1").completion.text == "first"


@pytest.mark.parametrize("record", [
    call("k1", status="failed", failure_mode="timeout", response=None, finish_reason=None),  # no reply
    call("k1", reused=True),  # a reuse: the call that made it is the one to lend
    call("k2"),  # another request
    call(None),  # made where no reply is reused (a batch's): no key recorded
])
def test_no_reply_is_lent_but_a_made_answered_call_of_the_same_request(store, record):
    store.record_call(evaluation(store), record)
    assert StoredReplies(store)("k1") is None


def test_a_call_outside_an_evaluation_is_not_lent(store):
    store.record_call(None, call("k1"))  # a proposer's call: made by no evaluation whose models are known
    assert StoredReplies(store)("k1") is None


def test_another_models_reply_is_not_lent(store):
    store.record_call(evaluation(store), call("k1"))
    lend = StoredReplies(store)
    store.models = models("gguf 1 bytes sha256 aa; llama.cpp 0.3.36 (AVX512)")  # another llama.cpp build
    assert lend("k1") is None
    store.models = models()  # read at each lookup: the run's models may change back
    assert lend("k1") is not None


@pytest.mark.parametrize("now", [
    None,  # the read side: a store that does not know what answers
    json.dumps({"planner": "a", "producer": "a", PROMPT_FORMAT: "f1"}),  # the evaluator's server cannot tell
    models(evaluator="unknown (ServerError)"),  # its server could not be asked
    "not json",
])
def test_nothing_is_lent_unless_every_pipeline_roles_model_is_known(store, now):
    store.models = now
    store.record_call(evaluation(store), call("k1"))
    assert StoredReplies(store)("k1") is None
    assert now is None or not identified(now)


def test_a_store_that_cannot_answer_lends_nothing_and_raises_nothing(store):
    store.record_call(evaluation(store), call("k1"))
    store.conn.execute("ALTER TABLE calls RENAME TO calls_gone")  # any SQLite error of the lookup
    assert StoredReplies(store)("k1") is None


REQUEST = CompletionRequest(model="m", messages=(ChatMessage("system", "Plan."), ChatMessage("user", "Task 1.")),
                            temperature=0.7, max_tokens=64, seed=7)


def engine(backend: FakeBackend, replies: ReplyCache | None) -> BackendEngine:
    return BackendEngine("planner", RoleConfig(backend="fake", model="m", seed=7), backend, FixedMeter(5.0),
                         retries=0, backoff_s=0.0, replies=replies)


def test_a_later_run_answers_an_identical_request_from_the_store_without_a_call(store):
    first = FakeBackend(lambda request: "the reply made")
    recorder = CallRecorder(sink=lambda record: store.record_call(eid, record))
    eid = evaluation(store)
    with recording(recorder):
        assert engine(first, ReplyCache()).reply(REQUEST).text == "the reply made"
    (made_it,) = recorder.calls
    assert (made_it.request_key, made_it.finish_reason) == (request_key("fake", None, REQUEST), "stop")

    later = FakeBackend(lambda request: "a reply the store already has")  # a new process: an empty cache
    cache = ReplyCache(lookup=StoredReplies(store))
    again = CallRecorder()
    with recording(again):
        again.task_id = "t9"
        assert engine(later, cache).reply(replace(REQUEST, timeout_s=3.0)).text == "the reply made"
        assert engine(later, cache).reply(replace(REQUEST, seed=8)).text == "a reply the store already has"
    assert len(later.requests) == 1  # only the other seed's request was asked
    reused, other = again.calls
    assert reused.reused and not other.reused and made(again.calls) == [other]
    assert (reused.task_id, reused.response, reused.joules, reused.completion_tokens) == (
        "t9", "the reply made", made_it.joules, made_it.completion_tokens)
    assert len(cache) == 2  # the lent reply is the run's own from then on


def test_an_engine_that_reuses_no_reply_records_no_key(store):
    recorder = CallRecorder()
    with recording(recorder):
        engine(FakeBackend(lambda request: "x"), None).reply(REQUEST)
    assert recorder.calls[0].request_key is None and recorder.calls[0].finish_reason == "stop"
