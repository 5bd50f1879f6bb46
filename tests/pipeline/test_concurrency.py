"""Tasks of a suite run concurrently against a server that serves requests in parallel (a local stub)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from autoresearch.pipeline.harness import Harness
from autoresearch.pipeline.runner import evaluate_tasks
from autoresearch.store import Store
from autoresearch.workspace.config import Portfolio, RoleConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lm" / "backends"))
from openai_stub import OpenAIStub  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_counters")
MODEL = "stub-model"


@pytest.fixture
def server(workspace, kit):
    stub = OpenAIStub(models=(MODEL,)).start()
    script = kit.ContentScript(workspace.rubric, workspace.suite.tasks)
    stub.respond = lambda body: script.reply(_kind(body), body["messages"][-1]["content"])
    yield stub
    stub.stop()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "runs" / "autoresearch.db")
    yield s
    s.close()


def _kind(body) -> str:
    """Which pipeline step sent an OpenAI-style body (as conftest.call_kind does for a CompletionRequest)."""
    fmt = body.get("response_format") or {}
    properties = (fmt.get("schema") or fmt.get("json_schema", {}).get("schema") or {}).get("properties", {})
    return "planner" if "steps" in properties else "judge" if "critique" in properties else "producer"


def on_server(stub: OpenAIStub, concurrency: int) -> Portfolio:
    role = RoleConfig(backend="openai", model=MODEL, base_url=stub.base_url, max_tokens=200, seed=7,
                      concurrency=concurrency)
    return Portfolio(planner=role, producer=role, evaluator=role, proposer=role)


def evaluate(workspace, store, stub, concurrency, on_task=None):
    harness = Harness(workspace, on_server(stub, concurrency), backoff_s=0.0)
    return evaluate_tasks(workspace, harness, store, workspace.suite.tasks, kind="eval", portfolio="default",
                          instructions=workspace.instructions, split="search", on_task=on_task)


def test_tasks_run_up_to_the_limit_at_once_and_are_judged_in_task_order(workspace, store, server):
    server.delay_s = 0.15  # long enough for the tasks' calls to overlap
    seen = []
    result = evaluate(workspace, store, server, 3, on_task=lambda index, r: seen.append((index, r.task_id)) or True)

    ids = [t.id for t in workspace.suite.tasks]
    assert server.max_in_flight == 3
    assert seen == list(enumerate(ids)) and [t.task_id for t in result.tasks] == ids
    assert result.status == "complete" and not any(t.failed for t in result.tasks)
    stored = store.calls(result.evaluation_id)
    assert len(stored) == len(server.requests) == 3 * len(ids)
    # Each call is stored under the task that made it, though the tasks' calls interleaved on the server.
    for task in result.tasks:
        assert sum(row["task_id"] == task.task_id for row in stored) == 3
        assert [call.task_id for call in task.calls] == [task.task_id] * 3


def test_concurrent_and_sequential_evaluations_score_the_same(workspace, store, server):
    sequential = evaluate(workspace, store, server, 1)
    assert server.max_in_flight == 1
    concurrent = evaluate(workspace, store, server, 4)
    assert [t.composite(workspace.settings.scoring) for t in concurrent.tasks] == \
        [t.composite(workspace.settings.scoring) for t in sequential.tasks]
    assert [[c.response for c in t.calls] for t in concurrent.tasks] == \
        [[c.response for c in t.calls] for t in sequential.tasks]
    assert concurrent.composite == sequential.composite


def test_a_pruned_concurrent_suite_records_every_call_it_made_and_only_the_tasks_judged(workspace, store, server):
    server.delay_s = 0.1
    result = evaluate(workspace, store, server, 3, on_task=lambda index, r: False)  # prune after the first

    assert result.status == "pruned" and len(result.tasks) == 1
    made = [r for r in server.requests if r.path == "/v1/chat/completions"]
    stored = store.calls(result.evaluation_id)
    assert len(stored) == len(made) > 3  # the calls already under way finished, and are kept
    assert len(made) < 3 * len(workspace.suite.tasks)  # the tasks not yet started never ran
    assert [row["task_id"] for row in store.task_results(result.evaluation_id)] == [workspace.suite.tasks[0].id]


def test_overlapping_calls_split_the_servers_estimated_power(workspace, store, server):
    server.delay_s = 0.2
    result = evaluate(workspace, store, server, 3)
    watts = workspace.settings.energy.server_watts
    joules = sum(c.joules for c in result.calls)
    # Every call alone would be charged watts × its own time: 3 overlapping calls would count the server 3 times.
    charged_alone = watts * sum(c.latency_s for c in result.calls)
    assert joules < 0.5 * charged_alone
    # Split instead, the calls add up to the server's watts over the time it was busy: at most the wall time.
    assert 0.7 * watts * result.seconds < joules <= 1.01 * watts * result.seconds
    assert {c.attribution for c in result.calls} >= {"shared:3"}
    assert json.dumps(sorted({c.energy_source for c in result.calls})) == '["estimate"]'


def test_an_embedded_role_runs_as_many_tasks_at_once_as_its_backend_decodes_and_a_stand_in_one(workspace):
    from autoresearch.lm.backends import FakeBackend
    from autoresearch.workspace.config import task_concurrency

    portfolio = workspace.portfolio("default")
    assert {portfolio.role(r).backend for r in ("planner", "producer", "evaluator")} == {"embedded"}
    real = Harness(workspace, portfolio)  # builds the embedded backends (loading nothing yet)
    assert real.concurrency == real.engines["producer"].backend.concurrency
    assert real.concurrency == task_concurrency(portfolio, workspace.settings.backends)
    # A test's fake or a benchmark's wrapper stands in for the model: its calls keep their order.
    stand_in = Harness(workspace, portfolio, backend_factory=lambda role, backends: FakeBackend("ok"))
    assert stand_in.concurrency == 1
