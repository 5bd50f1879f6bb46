"""OpenAICompatBackend against a local stub of /v1/chat/completions and /v1/models."""

from __future__ import annotations

import pytest

from autoresearch.errors import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    ContextLengthExceeded,
    MalformedResponse,
    ModelNotFound,
    ServerError,
    UnparseableOutput,
    answered,
)
from autoresearch.lm.backends import ChatMessage, CompletionRequest, OpenAICompatBackend

MODEL = "local-model"
KEY_ENV = "AUTORESEARCH_TEST_API_KEY"
SECRET = "sk-test-5ecret-value"


def request(**overrides) -> CompletionRequest:
    return CompletionRequest(**{"model": MODEL, "messages": (ChatMessage("user", "Name three colours"),), **overrides})


def backend_for(stub, **kwargs) -> OpenAICompatBackend:
    return OpenAICompatBackend(stub.base_url, MODEL, timeout_s=kwargs.get("timeout_s", 5), api_key_env=KEY_ENV)


def test_completion_maps_text_tokens_and_payload(openai_stub, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    openai_stub.reply = "Red, green, blue."
    sampling = dict(temperature=0.5, max_tokens=20, top_p=0.8, repeat_penalty=1.15, seed=3, stop=("\n\n",))
    completion = backend_for(openai_stub).complete(request(**sampling))

    assert completion.text == "Red, green, blue."
    assert (completion.prompt_tokens, completion.completion_tokens) == (3, 3)
    assert completion.latency_s > 0 and completion.timings["total_s"] == completion.latency_s
    sent = openai_stub.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": MODEL, "messages": [{"role": "user", "content": "Name three colours"}],
        "temperature": 0.5, "max_tokens": 20, "stream": False, "top_p": 0.8, "repeat_penalty": 1.15, "seed": 3,
        "stop": ["\n\n"],
    }
    assert "authorization" not in sent.headers  # no key in the environment, no header


def test_llama_server_timings_are_mapped(openai_stub):
    openai_stub.timings = {"prompt_ms": 12.0, "predicted_ms": 340.0}
    timings = backend_for(openai_stub).complete(request()).timings
    assert timings["prompt_eval_s"] == pytest.approx(0.012) and timings["eval_s"] == pytest.approx(0.34)


def test_json_schema_becomes_strict_response_format(openai_stub):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    openai_stub.reply = '{"ok": true}'
    backend_for(openai_stub).complete(request(json_schema=schema))
    assert openai_stub.requests[-1].body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_api_key_is_read_from_env_at_call_time_and_sent_as_bearer(openai_stub, monkeypatch):
    backend = backend_for(openai_stub)
    monkeypatch.setenv(KEY_ENV, SECRET)  # set after construction: the key is read per call
    backend.complete(request())
    assert openai_stub.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(backend) and SECRET not in str(vars(backend))


def test_api_key_never_appears_in_error_messages(openai_stub, monkeypatch, dead_url):
    monkeypatch.setenv(KEY_ENV, SECRET)
    openai_stub.fail_with = (401, {"error": {"message": f"Invalid API key: {SECRET}"}})
    with pytest.raises(BackendError) as caught:
        backend_for(openai_stub).complete(request())
    assert SECRET not in str(caught.value) and "***" in str(caught.value) and KEY_ENV in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    with pytest.raises(BackendUnreachable) as unreachable:
        OpenAICompatBackend(dead_url + "/v1", MODEL, api_key_env=KEY_ENV).complete(request())
    assert SECRET not in str(unreachable.value)


def test_list_models_reads_v1_models(openai_stub):
    openai_stub.models = ["a-model", "b-model"]
    assert backend_for(openai_stub).list_models() == ["a-model", "b-model"]
    assert openai_stub.requests[-1].method == "GET" and openai_stub.requests[-1].path == "/v1/models"


def test_model_identity_is_the_entrys_details_beyond_its_name(openai_stub, monkeypatch):
    llama_server = {"id": MODEL, "object": "model", "created": 1764800000, "owned_by": "llamacpp",
                    "meta": {"n_params": 134515008, "size": 98362432, "n_vocab": 49152}}
    monkeypatch.setattr(openai_stub, "list_models", lambda: {"object": "list", "data": [
        {"id": "other", "object": "model", "owned_by": "llamacpp", "meta": {"size": 1}}, llama_server]})
    first = backend_for(openai_stub).model_identity()
    assert first == ('{"id":"local-model","meta":{"n_params":134515008,"n_vocab":49152,"size":98362432},'
                     '"owned_by":"llamacpp"}')  # "created" (the server's start) left out
    llama_server["created"] += 60
    assert backend_for(openai_stub).model_identity() == first  # restarted, same model
    llama_server["meta"]["size"] = 80000000
    assert backend_for(openai_stub).model_identity() != first  # another quantization under the same alias


def test_a_server_that_lists_only_names_gives_no_identity(openai_stub):
    assert backend_for(openai_stub).model_identity() is None  # {"id", "object", "owned_by"}: the name is all


def test_unreachable_url_names_the_url(dead_url):
    with pytest.raises(BackendUnreachable, match=dead_url) as caught:
        OpenAICompatBackend(dead_url + "/v1", MODEL).complete(request())
    assert caught.value.backend == "openai" and caught.value.retryable


def test_unknown_model_is_model_not_found(openai_stub):
    with pytest.raises(ModelNotFound, match="no-such-model"):
        backend_for(openai_stub).complete(request(model="no-such-model"))


def test_wrong_path_is_not_mistaken_for_a_missing_model(openai_stub):
    backend = OpenAICompatBackend(openai_stub.base_url.removesuffix("/v1"), MODEL, timeout_s=5)
    with pytest.raises(BackendError, match="base URL") as caught:
        backend.complete(request())
    assert type(caught.value) is BackendError


@pytest.mark.parametrize("message", [
    "the request exceeds the available context size, try increasing it",  # llama-server
    "This model's maximum context length is 2048 tokens. However, you requested 4000 tokens.",  # vLLM
])
def test_context_overflow_400_is_context_length_exceeded(openai_stub, message):
    openai_stub.fail_with = (400, {"error": {"code": 400, "message": message, "type": "invalid_request_error"}})
    with pytest.raises(ContextLengthExceeded, match="context"):
        backend_for(openai_stub).complete(request())


def test_http_500_is_server_error(openai_stub):
    openai_stub.fail_with = (503, "upstream overloaded")
    with pytest.raises(ServerError, match="503: upstream overloaded"):
        backend_for(openai_stub).complete(request())


def test_slow_server_is_backend_timeout(openai_stub):
    openai_stub.delay_s = 3.0
    with pytest.raises(BackendTimeout, match="chat/completions"):
        backend_for(openai_stub, timeout_s=0.3).complete(request())


def test_empty_reply_is_unparseable_and_counts_as_answered(openai_stub):
    openai_stub.reply = ""
    with pytest.raises(UnparseableOutput, match="empty") as info:
        backend_for(openai_stub).complete(request())
    assert info.value.answered and answered(info.value.failure_mode)


@pytest.mark.parametrize("body, words", [("not json at all", "non-JSON body: not json"),
                                         ({"object": "chat.completion"}, "without choices")])
def test_a_body_that_breaks_the_api_is_a_malformed_response_not_the_models_reply(openai_stub, body, words):
    # A proxy's HTML page or a half-implemented server: the server is at fault, so the loop may call it down.
    openai_stub.fail_with = (200, body)
    with pytest.raises(MalformedResponse, match=words) as info:
        backend_for(openai_stub).complete(request())
    assert info.value.retryable and not answered(info.value.failure_mode)


def test_cache_prompt_goes_only_to_a_server_that_showed_llama_servers_timings(openai_stub):
    backend = backend_for(openai_stub)
    backend.complete(request())
    backend.complete(request())
    assert [("cache_prompt" in r.body) for r in openai_stub.requests] == [False, False]
    openai_stub.timings = {"prompt_ms": 12.0, "predicted_ms": 340.0}  # llama-server's own reply field
    backend.complete(request())
    backend.complete(request())
    assert [r.body.get("cache_prompt") for r in openai_stub.requests[2:]] == [None, True]
