"""OllamaBackend against a local stub of Ollama's HTTP API."""

from __future__ import annotations

import hashlib

import ollama
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
)
from autoresearch.lm.backends import ChatMessage, CompletionRequest, OllamaBackend

MODEL = "smollm2:135m"


def request(**overrides) -> CompletionRequest:
    fields = dict(model=MODEL, messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Say hi to me")))
    return CompletionRequest(**{**fields, **overrides})


def test_chat_maps_text_tokens_durations_and_load_time(ollama_stub):
    ollama_stub.reply = "Hi there, friend."
    backend = OllamaBackend(ollama_stub.url, MODEL, timeout_s=5)

    first = backend.complete(request(temperature=0.7, max_tokens=33, top_p=0.9, repeat_penalty=1.15, seed=4,
                                     stop=("END",)))

    assert first.text == "Hi there, friend."
    assert (first.prompt_tokens, first.completion_tokens) == (6, 3)
    assert first.load_s == pytest.approx(0.8)
    assert first.timings == pytest.approx(
        {"total_s": 0.8 + 0.006 + 0.06 + 0.005, "load_s": 0.8, "prompt_eval_s": 0.006, "eval_s": 0.06}
    )
    assert first.latency_s > 0 and first.finish_reason == "stop"
    sent = ollama_stub.requests_to("/api/chat")[0].body
    assert sent["stream"] is False
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi to me"}]
    assert sent["options"] == {"temperature": 0.7, "num_predict": 33, "top_p": 0.9, "repeat_penalty": 1.15, "seed": 4,
                               "stop": ["END"]}
    assert "format" not in sent and "keep_alive" not in sent

    second = backend.complete(request())
    assert second.load_s == 0.0  # the model stayed loaded
    assert "repeat_penalty" not in ollama_stub.requests_to("/api/chat")[1].body["options"]  # unset: Ollama's own
    assert ollama_stub.requests_to("/api/chat")[1].body["options"] == {"temperature": 0.2, "num_predict": 512}


def test_json_schema_is_sent_as_format(ollama_stub):
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    ollama_stub.reply = '{"score": 7}'
    completion = OllamaBackend(ollama_stub.url, MODEL).complete(request(json_schema=schema))
    assert completion.text == '{"score": 7}'
    assert ollama_stub.requests_to("/api/chat")[0].body["format"] == schema


def test_keep_alive_is_forwarded_and_zero_unloads(ollama_stub):
    backend = OllamaBackend(ollama_stub.url, MODEL)
    backend.complete(request(keep_alive="10m"))
    assert ollama_stub.requests_to("/api/chat")[0].body["keep_alive"] == "10m"
    assert backend.loaded_models() == [MODEL]

    backend.complete(request(keep_alive=0))
    assert ollama_stub.requests_to("/api/chat")[1].body["keep_alive"] == 0
    assert backend.loaded_models() == []
    assert backend.complete(request()).load_s > 0  # reloaded after the unload


def test_list_models_reads_api_tags(ollama_stub):
    ollama_stub.models = ["smollm2:135m", "qwen2.5:0.5b"]
    assert OllamaBackend(ollama_stub.url, MODEL).list_models() == ["smollm2:135m", "qwen2.5:0.5b"]
    assert ollama_stub.requests[-1].path == "/api/tags"


def test_model_identity_is_the_models_digest_and_changes_with_it(ollama_stub):
    ollama_stub.models = ["qwen2.5:0.5b", MODEL]
    backend = OllamaBackend(ollama_stub.url, MODEL)
    first = backend.model_identity()
    assert first == f"digest sha256:{hashlib.sha256(MODEL.encode()).hexdigest()}"
    assert OllamaBackend(ollama_stub.url, "qwen2.5:0.5b").model_identity() != first
    assert OllamaBackend(ollama_stub.url, "smollm2").model_identity() is None  # no smollm2:latest there


def test_an_untagged_model_is_identified_as_its_latest_tag(ollama_stub):
    ollama_stub.models = ["smollm2:latest"]
    assert OllamaBackend(ollama_stub.url, "smollm2").model_identity().startswith("digest sha256:")


def test_loaded_models_reads_api_ps(ollama_stub):
    backend = OllamaBackend(ollama_stub.url, MODEL)
    assert backend.loaded_models() == []
    backend.complete(request())
    assert backend.loaded_models() == [MODEL]
    assert ollama_stub.requests[-1].path == "/api/ps"


def test_unreachable_url_names_the_url(dead_url):
    backend = OllamaBackend(dead_url, MODEL, timeout_s=5)
    with pytest.raises(BackendUnreachable, match=dead_url) as caught:
        backend.complete(request())
    assert caught.value.retryable and caught.value.backend == "ollama" and caught.value.model == MODEL
    with pytest.raises(BackendUnreachable, match=dead_url):
        backend.list_models()


def test_unknown_model_is_model_not_found(ollama_stub):
    with pytest.raises(ModelNotFound, match="no-such-model") as caught:
        OllamaBackend(ollama_stub.url, "no-such-model").complete(request(model="no-such-model"))
    assert caught.value.model == "no-such-model" and not caught.value.retryable


def test_http_500_is_server_error(ollama_stub):
    ollama_stub.fail_with = (500, "llama runner process has terminated")
    with pytest.raises(ServerError, match="llama runner process has terminated") as caught:
        OllamaBackend(ollama_stub.url, MODEL).complete(request())
    assert caught.value.failure_mode == "server_error"


def test_context_overflow_is_context_length_exceeded(ollama_stub):
    ollama_stub.fail_with = (400, "input length exceeds maximum context length")
    with pytest.raises(ContextLengthExceeded):
        OllamaBackend(ollama_stub.url, MODEL).complete(request())


def test_other_client_error_is_a_plain_backend_error(ollama_stub):
    ollama_stub.fail_with = (400, "invalid options")
    with pytest.raises(BackendError, match="invalid options") as caught:
        OllamaBackend(ollama_stub.url, MODEL).complete(request())
    assert type(caught.value) is BackendError


def test_slow_server_is_backend_timeout(ollama_stub):
    ollama_stub.delay_s = 3.0
    with pytest.raises(BackendTimeout, match=ollama_stub.url):
        OllamaBackend(ollama_stub.url, MODEL, timeout_s=0.3).complete(request())


def test_request_timeout_overrides_the_backend_default(ollama_stub):
    ollama_stub.delay_s = 3.0
    with pytest.raises(BackendTimeout):
        OllamaBackend(ollama_stub.url, MODEL, timeout_s=60).complete(request(timeout_s=0.3))


def test_empty_reply_is_unparseable(ollama_stub):
    ollama_stub.reply = "   "
    with pytest.raises(UnparseableOutput):
        OllamaBackend(ollama_stub.url, MODEL).complete(request())


def test_a_reply_that_does_not_fit_the_api_is_a_malformed_response(ollama_stub):
    ollama_stub.fail_with = (200, "not a chat reply")  # HTTP 200 with {"error": ...} and no message
    with pytest.raises(MalformedResponse, match="malformed response"):
        OllamaBackend(ollama_stub.url, MODEL).complete(request())


def test_stub_preloads_and_unloads_on_messageless_requests(ollama_stub):
    client = ollama.Client(host=ollama_stub.url)
    loaded = client.chat(model=MODEL, messages=[], keep_alive="5m")
    assert loaded.done_reason == "load" and loaded.load_duration > 0
    assert [m.model for m in client.ps().models] == [MODEL]
    unloaded = client.chat(model=MODEL, messages=[], keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert client.ps().models == []


def test_stub_expires_models_when_keep_alive_runs_out(ollama_stub):
    now = [1000.0]
    ollama_stub.clock = lambda: now[0]
    backend = OllamaBackend(ollama_stub.url, MODEL)
    backend.complete(request(keep_alive="30s"))
    now[0] += 29
    assert backend.loaded_models() == [MODEL]
    now[0] += 2
    assert backend.loaded_models() == []
    assert backend.complete(request()).load_s > 0


def test_preload_loads_without_generating_and_reports_whether_it_had_to(ollama_stub):
    backend = OllamaBackend(ollama_stub.url, MODEL)
    first = backend.preload(MODEL, "90s")
    assert first.load_s == pytest.approx(0.8) and first.text == "" and first.completion_tokens == 0
    sent = ollama_stub.requests_to("/api/chat")[0].body
    assert sent["model"] == MODEL and not sent.get("messages") and sent["keep_alive"] == "90s"
    assert backend.loaded_models() == [MODEL]
    assert backend.preload().load_s == 0.0  # already loaded: nothing to load
    assert ollama_stub.loads == [MODEL]


def test_stub_holds_at_most_max_loaded_models_evicting_the_least_recently_used(ollama_stub):
    ollama_stub.models = ["a:1b", "b:1b", "c:1b"]
    ollama_stub.max_loaded = 2
    backend = OllamaBackend(ollama_stub.url, "a:1b")
    assert backend.complete(request(model="a:1b")).load_s > 0
    assert backend.complete(request(model="b:1b")).load_s > 0
    assert backend.complete(request(model="a:1b")).load_s == 0.0  # both fit; a is now the most recent
    assert backend.complete(request(model="c:1b")).load_s > 0  # evicts b, the least recently used
    assert backend.loaded_models() == ["a:1b", "c:1b"]
    assert ollama_stub.loads == ["a:1b", "b:1b", "c:1b"] and ollama_stub.evictions == ["b:1b"]
    assert backend.complete(request(model="b:1b")).load_s > 0  # a swap back
    assert ollama_stub.evictions == ["b:1b", "a:1b"]


def test_stub_can_spend_the_load_time_it_reports(ollama_stub):
    ollama_stub.load_duration_ns = 150_000_000
    ollama_stub.sleep_on_load = True
    backend = OllamaBackend(ollama_stub.url, MODEL)
    cold = backend.complete(request())
    warm = backend.complete(request())
    assert cold.load_s == pytest.approx(0.15) and cold.latency_s >= 0.15
    assert warm.load_s == 0.0 and warm.latency_s < 0.15
