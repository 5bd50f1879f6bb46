"""Structured-output dialects: negotiated once per server against stubs that refuse like real servers do."""

from __future__ import annotations

import threading
import typing

import pytest
from openai_stub import (
    LLAMA_CPP_PYTHON_REFUSES_JSON_SCHEMA,
    LM_STUDIO_REFUSES_JSON_OBJECT,
    dialect_of,
)

from autoresearch.errors import (
    BackendError,
    BackendTimeout,
    ContextLengthExceeded,
    ModelNotFound,
    ServerError,
    StructuredOutputUnsupported,
)
from autoresearch.lm.backends import (
    ChatMessage,
    CompletionRequest,
    OpenAICompatBackend,
    create_backend,
)
from autoresearch.lm.backends.dialects import DIALECTS, rejects_format, response_format
from autoresearch.workspace.config import BackendsConfig, RoleConfig

MODEL = "local-model"
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def structured(**overrides) -> CompletionRequest:
    fields = {"model": MODEL, "messages": (ChatMessage("user", "Is it ok?"),), "json_schema": SCHEMA}
    return CompletionRequest(**{**fields, **overrides})


def backend_for(stub, structured: str = "auto") -> OpenAICompatBackend:
    return OpenAICompatBackend(stub.base_url, MODEL, timeout_s=5, api_key_env="", structured=structured)


def sent_dialects(stub) -> list[str]:
    return [dialect_of(r.body) for r in stub.requests if r.method == "POST"]


def test_a_server_refusing_json_schema_like_llama_cpp_python_gets_json_object_with_schema(openai_stub):
    openai_stub.reply = '{"ok": true}'
    openai_stub.refuse["json_schema"] = LLAMA_CPP_PYTHON_REFUSES_JSON_SCHEMA
    backend = backend_for(openai_stub)

    first = backend.complete(structured())
    assert first.dialect == "json_object_schema" and first.text == '{"ok": true}'
    assert sent_dialects(openai_stub) == ["json_schema", "json_object_schema"]
    assert openai_stub.requests[-1].body["response_format"] == {"type": "json_object", "schema": SCHEMA}

    second = backend.complete(structured())
    assert second.dialect == "json_object_schema"
    assert sent_dialects(openai_stub) == ["json_schema", "json_object_schema", "json_object_schema"]


def test_a_server_accepting_json_schema_stays_on_it(openai_stub):
    openai_stub.reply = '{"ok": true}'
    backend = backend_for(openai_stub)
    assert [backend.complete(structured()).dialect for _ in range(2)] == ["json_schema", "json_schema"]
    assert sent_dialects(openai_stub) == ["json_schema", "json_schema"]


def test_an_unstructured_call_sends_no_format_and_records_no_dialect(openai_stub):
    completion = backend_for(openai_stub).complete(structured(json_schema=None))
    assert completion.dialect is None and sent_dialects(openai_stub) == ["none"]


@pytest.mark.parametrize("failure, error", [
    ((500, {"error": {"message": "CUDA error: out of memory"}}), ServerError),
    ((400, {"error": {"message": "This model's maximum context length is 2048 tokens."}}), ContextLengthExceeded),
    ((404, {"error": {"message": "The model `local-model` does not exist."}}), ModelNotFound),
    ((401, {"error": {"message": "Invalid API key"}}), BackendError),
])
def test_an_error_that_is_not_about_the_format_is_raised_and_settles_nothing(openai_stub, failure, error):
    openai_stub.fail_with = failure
    backend = backend_for(openai_stub)
    with pytest.raises(error) as caught:
        backend.complete(structured())
    assert not isinstance(caught.value, StructuredOutputUnsupported)
    assert sent_dialects(openai_stub) == ["json_schema"]  # no fallback tried

    openai_stub.fail_with, openai_stub.reply = None, '{"ok": true}'
    assert backend.complete(structured()).dialect == "json_schema"  # the next call negotiates from the start


def test_a_timeout_is_not_taken_for_a_refusal(openai_stub):
    openai_stub.delay_s = 2.0
    backend = OpenAICompatBackend(openai_stub.base_url, MODEL, timeout_s=0.3, api_key_env="")
    with pytest.raises(BackendTimeout):
        backend.complete(structured())
    assert sent_dialects(openai_stub) == ["json_schema"] and backend.dialects.settled is None


def test_each_refused_format_falls_through_to_the_prompt_alone(openai_stub):
    openai_stub.reply = '{"ok": true}'
    openai_stub.refuse = {"json_schema": LLAMA_CPP_PYTHON_REFUSES_JSON_SCHEMA,
                          "json_object_schema": LM_STUDIO_REFUSES_JSON_OBJECT,
                          "json_object": LM_STUDIO_REFUSES_JSON_OBJECT}
    assert backend_for(openai_stub).complete(structured()).dialect == "none"
    assert sent_dialects(openai_stub) == ["json_schema", "json_object_schema", "json_object", "none"]
    assert "response_format" not in openai_stub.requests[-1].body


def test_a_refused_configured_dialect_is_a_clear_error_and_is_not_asked_again(openai_stub):
    openai_stub.refuse["json_schema"] = LLAMA_CPP_PYTHON_REFUSES_JSON_SCHEMA
    backend = backend_for(openai_stub, structured="json_schema")
    with pytest.raises(StructuredOutputUnsupported) as caught:
        backend.complete(structured())
    message = str(caught.value)
    assert openai_stub.base_url in message and "json_schema: " in message and "Input should be" in message
    assert 'openai_structured = "auto"' in message
    assert caught.value.failure_mode == "format_rejected" and not caught.value.retryable
    assert (caught.value.backend, caught.value.model) == ("openai", MODEL)

    with pytest.raises(StructuredOutputUnsupported):
        backend.complete(structured())
    assert sent_dialects(openai_stub) == ["json_schema"]  # the second call knew the answer already


def test_a_configured_dialect_is_used_from_the_first_call(openai_stub):
    openai_stub.reply = '{"ok": true}'
    assert backend_for(openai_stub, structured="json_object").complete(structured()).dialect == "json_object"
    assert sent_dialects(openai_stub) == ["json_object"]


def test_concurrent_first_calls_negotiate_once(openai_stub):
    openai_stub.reply = '{"ok": true}'
    openai_stub.refuse["json_schema"] = LLAMA_CPP_PYTHON_REFUSES_JSON_SCHEMA
    openai_stub.delay_s = 0.2  # every answer takes a while, so the calls overlap
    backend = backend_for(openai_stub)
    dialects: list[str | None] = []
    threads = [threading.Thread(target=lambda: dialects.append(backend.complete(structured()).dialect))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert dialects == ["json_object_schema"] * 3
    assert sorted(sent_dialects(openai_stub)) == ["json_object_schema"] * 3 + ["json_schema"]


@pytest.mark.parametrize("status, detail", [
    (500, LLAMA_CPP_PYTHON_REFUSES_JSON_SCHEMA[1]["error"]["message"]),
    (500, 'response_format type must be one of "text" or "json_object", but got: json_schema'),  # older llama-server
    (400, "'response_format.type' must be 'json_schema' or 'text'"),  # LM Studio
    (400, "1 validation error for ChatCompletionRequest\nresponse_format.type\n  Input should be 'text'"),  # vLLM
    (400, 'invalid format: expected "json" or a JSON schema'),  # Ollama
    (422, "body.response_format.json_schema: Field required"),
])
def test_format_refusals_of_real_servers_are_recognised(status, detail):
    assert rejects_format(status, detail)


@pytest.mark.parametrize("status, detail", [
    (400, "max_tokens: Input should be a valid integer"),  # pydantic, about another field
    (500, "CUDA error: out of memory"),
    (404, "json_schema endpoint not found"),  # a 404 is a wrong URL or model, whatever it mentions
    (401, "Invalid API key"),
    (503, "Loading model"),
])
def test_other_errors_are_not_format_refusals(status, detail):
    assert not rejects_format(status, detail)


def test_response_formats_of_each_dialect():
    assert response_format("json_schema", SCHEMA) == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA, "strict": True}}
    assert response_format("json_object_schema", SCHEMA) == {"type": "json_object", "schema": SCHEMA}
    assert response_format("json_object", SCHEMA) == {"type": "json_object"}
    assert response_format("none", SCHEMA) is None
    with pytest.raises(ValueError, match="json_schema, json_object_schema"):
        response_format("xml", SCHEMA)


def test_the_config_accepts_exactly_auto_and_the_dialects():
    allowed = typing.get_args(BackendsConfig.model_fields["openai_structured"].annotation)
    assert allowed == ("auto", *DIALECTS)


def test_create_backend_passes_the_configured_dialect():
    role = RoleConfig(backend="openai", model="dialect-test-model", base_url="http://127.0.0.1:9/v1")
    backend = create_backend(role, BackendsConfig(openai_structured="json_object_schema"))
    assert isinstance(backend, OpenAICompatBackend) and backend.dialects.preferred == "json_object_schema"
    assert create_backend(role, BackendsConfig()).dialects.preferred == "auto"  # a separate instance
