"""What answers a role beyond its model's name: a GGUF's size and ends, a server's details, asked once per model."""

from __future__ import annotations

import json

from autoresearch.errors import BackendUnreachable
from autoresearch.lm.model_identity import (
    GGUF_SAMPLE_BYTES,
    changes,
    entry_identity,
    gguf_identity,
    run_models,
    what_changed,
    without_middle,
)
from autoresearch.workspace.config import BackendsConfig, Portfolio, RoleConfig


def _file(path, size: int, byte_at: dict[int, int] | None = None):
    data = bytearray(b"GGUF" + bytes(size - 4))
    for offset, value in (byte_at or {}).items():
        data[offset] = value
    path.write_bytes(bytes(data))
    return path


def test_the_same_bytes_under_another_name_are_the_same_model(tmp_path):
    size = 3 * GGUF_SAMPLE_BYTES
    assert gguf_identity(_file(tmp_path / "a.gguf", size)) == gguf_identity(_file(tmp_path / "b.gguf", size))


def test_a_change_in_the_header_the_tail_or_the_size_is_another_model(tmp_path):
    size = 3 * GGUF_SAMPLE_BYTES
    base = gguf_identity(_file(tmp_path / "base.gguf", size))
    assert gguf_identity(_file(tmp_path / "head.gguf", size, {100: 1})) != base  # metadata: another quantization
    assert gguf_identity(_file(tmp_path / "tail.gguf", size, {size - 10: 1})) != base  # the last tensors
    assert gguf_identity(_file(tmp_path / "long.gguf", size + 1)) != base
    assert base.startswith(f"gguf {size} bytes sha256 ")


def test_tensors_rewritten_in_the_middle_alone_are_another_model(tmp_path):
    # A LoRA merged into the same base at the same quantization: the size, the header and the last tensors stay.
    size = 12 * GGUF_SAMPLE_BYTES
    base = gguf_identity(_file(tmp_path / "base.gguf", size))
    start = 5 * GGUF_SAMPLE_BYTES  # a tenth of the file rewritten, in the middle
    merged = _file(tmp_path / "merged.gguf", size, {i: 1 for i in range(start, start + size // 10, 4096)})
    assert gguf_identity(merged) != base
    assert without_middle(gguf_identity(merged)) == without_middle(base)  # the ends alone do not tell
    assert without_middle(base) == base.split(" middle ")[0] and base.split(" middle ")[1].isalnum()


def test_a_file_smaller_than_the_sample_is_read_once(tmp_path):
    assert gguf_identity(_file(tmp_path / "a.gguf", 1000)) != gguf_identity(_file(tmp_path / "b.gguf", 1000, {999: 7}))


def test_a_server_entry_is_identified_by_its_details_not_its_start_time():
    vllm = {"id": "m", "object": "model", "created": 1, "owned_by": "vllm", "root": "/models/qwen", "max_model_len": 4096}
    assert json.loads(entry_identity(vllm)) == {"id": "m", "owned_by": "vllm", "root": "/models/qwen",
                                                "max_model_len": 4096}
    assert entry_identity({**vllm, "created": 2}) == entry_identity(vllm)
    # A llama-server router's entries, as a real one listed them: meta only while loaded, so nothing is told.
    unloaded = {"id": "smol-q8", "aliases": [], "tags": [], "object": "model", "owned_by": "llamacpp",
                "created": 1796433901, "status": {"value": "unloaded"}, "source": "models_dir", "can_remove": False}
    loaded = {**unloaded, "status": {"value": "loaded"}, "meta": {"n_params": 134515008, "ftype": "Q8_0"}}
    assert entry_identity(unloaded) is None and entry_identity(loaded) is None
    assert entry_identity({"id": "m", "object": "model", "owned_by": "me", "permissions": []}) is None
    # llama-server's entry as a real one listed it (built from llama-cpp-python 0.3.36's vendored llama.cpp): its -c
    # (meta.n_ctx) is a setting of the server, not of the model
    llama_server = {"id": "smollm2-135m", "aliases": ["smollm2-135m"], "tags": [], "object": "model",
                    "created": 1796431740, "owned_by": "llamacpp",
                    "meta": {"vocab_type": 2, "n_vocab": 49152, "n_ctx": 4096, "n_ctx_train": 8192, "n_embd": 576,
                             "n_params": 134515008, "size": 96576768, "ftype": "Q4_1"}}
    assert entry_identity({**llama_server, "meta": {**llama_server["meta"], "n_ctx": 2048}}) == \
        entry_identity(llama_server)
    assert entry_identity({**llama_server, "meta": {**llama_server["meta"], "ftype": "Q8_0"}}) != \
        entry_identity(llama_server)


class _Backend:
    def __init__(self, identity, asked):
        self.identity, self.asked = identity, asked

    def model_identity(self):
        self.asked.append(self.identity)
        if isinstance(self.identity, Exception):
            raise self.identity
        return self.identity


def _portfolio(**models) -> Portfolio:
    roles = {role: RoleConfig(backend="ollama", model=models.get(role, "llama")) for role in
             ("planner", "producer", "evaluator", "proposer")}
    return Portfolio(**roles)


def test_each_backend_and_model_is_asked_once_and_the_proposer_is_not_part_of_it():
    asked: list = []
    identities = {"llama": "digest 1", "judge": "digest 2"}
    portfolio = _portfolio(evaluator="judge")
    found = run_models(portfolio, BackendsConfig(), lambda config, _: _Backend(identities[config.model], asked))
    assert found == {"planner": "digest 1", "producer": "digest 1", "evaluator": "digest 2"}
    assert sorted(asked) == ["digest 1", "digest 2"]


def test_backends_that_cannot_tell_give_no_identity():
    class Silent:
        pass

    assert run_models(_portfolio(), BackendsConfig(), lambda config, _: Silent()) == {}

    def fake(config, _):
        raise ValueError('"fake" is made by a test\'s factory')

    assert run_models(_portfolio(), BackendsConfig(), fake) == {}


def test_a_backend_that_fails_to_answer_is_unknown_and_said_so():
    notes: list[str] = []
    down = BackendUnreachable("cannot reach http://127.0.0.1:11434", backend="ollama", model="llama")
    asked: list = []
    found = run_models(_portfolio(), BackendsConfig(), lambda c, _: _Backend(down, asked), note=notes.append,
                       waits_s=(0, 0))
    assert set(found.values()) == {"unknown (BackendUnreachable)"}
    assert len(asked) == 3  # asked again after each wait
    assert notes == ["could not ask ollama which llama it serves (cannot reach http://127.0.0.1:11434); nothing "
                     "stored (scores, replies) is reused for it this time"]


def test_a_server_that_fails_once_is_asked_again():
    class Blip(_Backend):
        def model_identity(self):
            self.asked.append(1)
            if len(self.asked) == 1:
                raise BackendUnreachable("connection reset", backend="ollama", model="llama")
            return "digest 1"

    notes: list[str] = []
    found = run_models(_portfolio(), BackendsConfig(), lambda c, _: Blip(None, []), note=notes.append, waits_s=(0,))
    assert set(found.values()) == {"digest 1"} and notes == []


def test_changes_name_each_role_that_differs_in_pipeline_order():
    before = json.dumps({"planner": "digest 1", "producer": "digest 1"})
    now = json.dumps({"planner": "digest 1", "producer": "digest 2", "evaluator": "digest 3"})
    assert changes(before, now) == ["producer: digest 1 → digest 2", "evaluator: not known → digest 3"]
    assert changes(now, now) == []


def test_one_change_to_several_roles_is_said_once_with_only_the_part_that_differs():
    build = "llama.cpp 0.3.36 (AVX2)"
    before = json.dumps({r: f"gguf 9 bytes sha256 aaaa; {build}" for r in ("evaluator", "planner", "producer")})
    now = json.dumps({r: f"gguf 9 bytes sha256 bbbb; {build}" for r in ("evaluator", "planner", "producer")})
    assert changes(before, now) == ["planner, producer, evaluator: gguf 9 bytes sha256 aaaa → gguf 9 bytes sha256 bbbb"]
    rebuilt = json.dumps({r: "gguf 9 bytes sha256 aaaa; llama.cpp 0.3.40 (AVX2)" for r in ("planner", "producer")})
    assert changes(json.dumps({r: f"gguf 9 bytes sha256 aaaa; {build}" for r in ("planner", "producer")}),
                   rebuilt) == ["planner, producer: llama.cpp 0.3.36 (AVX2) → llama.cpp 0.3.40 (AVX2)"]


def test_what_changed_names_models_and_the_prompt_format_apart():
    a = json.dumps({"producer": "digest 1", "prompt format": "f1"})
    assert what_changed(a, json.dumps({"producer": "digest 2", "prompt format": "f1"})) == \
        "the models changed (producer: digest 1 → digest 2)"
    assert what_changed(a, json.dumps({"producer": "digest 1", "prompt format": "f2"})) == \
        "the prompt format (a new autoresearch or DSPy) changed (prompt format: f1 → f2)"
    assert what_changed(a, json.dumps({"producer": "digest 2", "prompt format": "f2"})).startswith(
        "the models and the prompt format (a new autoresearch or DSPy) changed (producer: digest 1 → digest 2; "
        "prompt format: f1 → f2)")


def test_a_server_entrys_change_names_the_fields_that_differ():
    entry = {"id": "local-model", "owned_by": "llamacpp", "meta": {"n_params": 134515008, "size": 98362432}}
    before = json.dumps({"producer": entry_identity({**entry, "object": "model"})})
    now = json.dumps({"producer": entry_identity({**entry, "meta": {"n_params": 134515008, "size": 80000000}})})
    assert changes(before, now) == ["producer: meta.size 98362432 → meta.size 80000000"]
