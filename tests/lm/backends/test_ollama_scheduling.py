"""Keep-alive scheduling over real HTTP against the Ollama stub: model swaps, preloads, keep-alive values.

The stub holds one model at a time (OLLAMA_MAX_LOADED_MODELS=1), so every change of model is a load it
reports as load_duration. Three roles on three models: the per-task order swaps at every step, the staged
order once per stage.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import pytest
from ollama_stub import keep_alive_seconds

from autoresearch.errors import ServerError
from autoresearch.lm.backends import (
    ChatMessage,
    Completion,
    CompletionRequest,
    OllamaBackend,
)
from autoresearch.lm.calls import CallRecorder, recording
from autoresearch.lm.engine import BackendEngine
from autoresearch.lm.scheduling import KeepAlivePolicy
from autoresearch.pipeline.harness import Harness
from autoresearch.pipeline.runner import evaluate_tasks
from autoresearch.store import Store
from autoresearch.testing import FixedMeter
from autoresearch.workspace.config import Portfolio, RoleConfig

pytestmark = pytest.mark.usefixtures("no_counters")

MODELS = {"planner": "plan:1b", "producer": "prod:3b", "evaluator": "judge:8b"}
LOAD_S = 0.02
SLOW_LOAD_S = 0.1  # where the two orders' load energy is compared (see the test)


@pytest.fixture
def server(ollama_stub, workspace, kit):
    """The stub serving the three models, one at a time, answering like the pipeline's roles."""
    tasks = workspace.suite.split("search")
    ollama_stub.models = list(MODELS.values())
    ollama_stub.max_loaded = 1
    ollama_stub.load_duration_ns = int(LOAD_S * 1e9)
    ollama_stub.sleep_on_load = True
    # Two of the four drafts are judged under the pass threshold, so they are revised once.
    ollama_stub.script = kit.ContentScript(workspace.rubric, tasks, low=[tasks[0].id, tasks[2].id])
    ollama_stub.reply = ollama_stub.script.ollama
    return ollama_stub


def portfolio(url: str) -> Portfolio:
    return Portfolio(**{role: RoleConfig(backend="ollama", model=model, base_url=url, max_tokens=200)
                        for role, model in MODELS.items()})


def evaluate(workspace, server, tmp_path, *, staged: bool, stoppable: bool = False, **harness_kwargs):
    server.loaded.clear()  # start cold, as after a restart of the server
    server.loads.clear()
    harness = Harness(workspace, portfolio(server.url), backoff_s=0.0, **harness_kwargs)
    assert harness.staged  # three models on one Ollama server: the staged order is the default
    harness.staged = staged
    store = Store(tmp_path / f"store-{staged}-{stoppable}" / "autoresearch.db")
    suite = evaluate_tasks(workspace, harness, store, workspace.suite.split("search"), kind="eval",
                           portfolio="default", instructions=workspace.instructions, split="search",
                           stoppable=stoppable)
    store.close()
    return suite


def test_a_stoppable_staged_evaluation_swaps_once_more_per_block_and_answers_the_same(workspace, server, tmp_path):
    whole = evaluate(workspace, server, tmp_path, staged=True)
    server.requests.clear()
    blocks = evaluate(workspace, server, tmp_path, staged=True, stoppable=True)
    # Two blocks of 2 tasks, one revised in each: plans, drafts, judgements, a revision and its judgement, twice.
    assert list(server.loads) == ["plan:1b", "prod:3b", "judge:8b", "prod:3b", "judge:8b"] * 2
    assert blocks.swaps == 10 and whole.swaps == 5
    assert [comparable(t) for t in blocks.tasks] == [comparable(t) for t in whole.tasks]


def chats(server):
    """The /api/chat requests that generated (preloads have no messages)."""
    return [r.body for r in server.requests_to("/api/chat") if r.body.get("messages")]


def preloads(server):
    return [r.body["model"] for r in server.requests_to("/api/chat") if not r.body.get("messages")]


def comparable(result):
    fields = asdict(result)
    fields.pop("seconds")
    fields["calls"] = [(c.role, c.model, c.status, c.response) for c in result.calls]
    return fields


def test_staged_order_swaps_models_far_less_than_the_per_task_order(workspace, server, tmp_path, capsys):
    # Loads of 0.1 s here. Each preload's joules are split by time as a call's are (its load_s over its wall
    # time), so an HTTP round trip slowed by a busy machine no longer counts as load; when a preload's whole
    # request was load energy, 0.02 s loads let four slowed round trips (0.1 s each) outweigh eleven loads once.
    server.load_duration_ns = int(SLOW_LOAD_S * 1e9)
    unscheduled = evaluate(workspace, server, tmp_path, staged=False)
    unscheduled_loads = list(server.loads)
    server.requests.clear()
    staged = evaluate(workspace, server, tmp_path, staged=True)
    staged_loads = list(server.loads)

    with capsys.disabled():
        print(f"\nswaps over 4 tasks (2 revised), one model loaded at a time: per task {unscheduled.swaps}, "
              f"staged {staged.swaps}; load time {unscheduled.load_s:.2f} s vs {staged.load_s:.2f} s")
    # Per task: plan, draft, judge each load their model (3 a task), and each revision two more.
    assert unscheduled.swaps == len(unscheduled_loads) == 4 * 3 + 2 * 2
    assert all(sum(c.swapped for c in t.calls) >= 3 for t in unscheduled.tasks)
    # Staged: one load per stage: plans, drafts, judgements, then the revision round's revise and judge.
    assert staged.swaps == len(staged_loads) == 3 + 2
    assert staged.swaps < unscheduled.swaps
    assert staged_loads == ["plan:1b", "prod:3b", "judge:8b", "prod:3b", "judge:8b"]
    assert staged.load_s == pytest.approx(5 * SLOW_LOAD_S) and unscheduled.load_s == pytest.approx(16 * SLOW_LOAD_S)
    assert staged.load_joules > 0 and staged.load_joules < unscheduled.load_joules
    # Same scores, same outputs, same calls per task, whichever the order.
    assert [comparable(t) for t in staged.tasks] == [comparable(t) for t in unscheduled.tasks]
    assert [t.revisions for t in staged.tasks] == [1, 0, 1, 0]
    # Every request told the server how long to keep its model: never 0, never forever.
    sent = [keep_alive_seconds(body["keep_alive"]) for body in chats(server)]
    assert len(sent) == 4 * 3 + 2 * 2 and all(30 <= s <= 1800 for s in sent)


def test_the_next_stages_model_is_preloaded_and_the_call_it_served_carries_the_load(workspace, server, tmp_path):
    suite = evaluate(workspace, server, tmp_path, staged=True)
    # After the plans: the producer's model; after the drafts: the judge's; then again for the revisions.
    assert preloads(server) == ["prod:3b", "judge:8b", "prod:3b", "judge:8b"]
    assert len(server.requests_to("/api/ps")) == 4  # each preload was checked against what is loaded first
    # The load a preload did is counted on the first call of its stage, so swaps still match the server.
    swapped = [(c.role, c.task_id) for c in suite.calls if c.swapped]
    first, _, third, _ = (t.task_id for t in suite.tasks)
    assert swapped == [("planner", first), ("producer", first), ("evaluator", first),
                       ("producer", first), ("evaluator", first)]
    assert all(c.load_joules <= c.joules for c in suite.calls)


def test_a_preload_is_skipped_when_api_ps_shows_the_model_loaded(workspace, server, tmp_path):
    server.max_loaded = None  # room for all three: nothing is evicted
    suite = evaluate(workspace, server, tmp_path, staged=True)
    # The revision round's models are still loaded: /api/ps says so and no preload is sent.
    assert preloads(server) == ["prod:3b", "judge:8b"]
    assert len(server.requests_to("/api/ps")) == 4
    assert suite.swaps == len(server.loads) == 3


def test_keep_alive_follows_the_observed_gaps_between_uses_of_each_model(workspace, server, tmp_path):
    clock = [0.0]
    answer = server.reply

    def slow_reply(body):  # each generation takes 20 s on the policy's clock
        clock[0] += 20.0
        return answer(body)

    server.reply = slow_reply
    evaluate(workspace, server, tmp_path, staged=True, keep_alive_policy=KeepAlivePolicy(clock=lambda: clock[0]))
    sent: dict[str, list[str]] = {}
    for body in chats(server):
        sent.setdefault(body["model"], []).append(body["keep_alive"])
    assert sent["plan:1b"] == ["5m"] * 4  # back-to-back plans: no gap worth learning from
    # The producer waited through 4 judgements (80 s) before revising: keep it 80 s + a quarter.
    assert sent["prod:3b"] == ["5m"] * 4 + ["100s"] * 2
    # The judge waited through 2 revisions (40 s): 40 s + the 10 s minimum margin.
    assert sent["judge:8b"] == ["5m"] * 4 + ["50s"] * 2


def test_engine_preload_energy_and_load_time_go_to_the_next_call_as_load(ollama_stub):
    backend = OllamaBackend(ollama_stub.url, "smollm2:135m")
    eng = BackendEngine("producer", RoleConfig(backend="ollama", model="smollm2:135m"), backend, FixedMeter(),
                        policy=KeepAlivePolicy())
    assert eng.preload() is True
    assert eng.preload() is False  # /api/ps shows it loaded
    assert [r.path for r in ollama_stub.requests] == ["/api/ps", "/api/chat", "/api/ps"]
    recorder = CallRecorder()
    with recording(recorder):
        eng.call(CompletionRequest(model="smollm2:135m", messages=(ChatMessage("user", "hi"),)))
        eng.call(CompletionRequest(model="smollm2:135m", messages=(ChatMessage("user", "hi"),)))
    carried, plain = recorder.calls
    assert (carried.load_s, carried.joules, carried.load_joules) == (pytest.approx(0.8), 10.0, 5.0)
    assert (plain.load_s, plain.joules, plain.load_joules) == (0.0, 5.0, 0.0)
    assert ollama_stub.loads == ["smollm2:135m"]


class PreloadingBackend:
    """A server whose /api/ps never lists the model, and whose preload loads, finds it loaded, or fails (after
    `wall_s` of round trip)."""

    name, in_process = "ollama", False

    def __init__(self, preload_reply, wall_s: float = 0.0):
        self.preload_reply, self.wall_s = preload_reply, wall_s

    def loaded_models(self) -> list[str]:
        return []

    def preload(self, model, keep_alive):
        time.sleep(self.wall_s)
        if isinstance(self.preload_reply, Exception):
            raise self.preload_reply
        return self.preload_reply

    def complete(self, request):
        return Completion("ok", 3, 1, 0.1)


@pytest.mark.parametrize("reply, loaded", [
    (Completion("", 0, 0, 0.0, load_s=0.0), False),  # loaded meanwhile: the reply says it did not load
    (ServerError("500 from /api/chat", backend="ollama", model="m"), False),  # the preload failed
])
def test_a_preload_that_did_not_load_still_hands_its_joules_to_the_next_call(reply, loaded):
    eng = BackendEngine("producer", RoleConfig(backend="ollama", model="m"), PreloadingBackend(reply), FixedMeter(),
                        policy=KeepAlivePolicy())
    assert eng.preload() is loaded
    recorder = CallRecorder()
    with recording(recorder):
        eng.call(CompletionRequest(model="m", messages=(ChatMessage("user", "hi"),)))
    (call,) = recorder.calls
    assert (call.joules, call.load_joules, call.load_s) == (10.0, 0.0, 0.0)  # the preload's 5 J, not a load


def test_a_preload_slower_than_its_load_counts_only_the_load_share_of_its_joules_as_load():
    # The server loaded for 0.05 s of a 0.2 s request (a slow round trip): a quarter of the preload's 5 J is load.
    reply = Completion("", 0, 0, 0.0, load_s=0.05)
    eng = BackendEngine("producer", RoleConfig(backend="ollama", model="m"), PreloadingBackend(reply, wall_s=0.2),
                        FixedMeter(), policy=KeepAlivePolicy())
    assert eng.preload() is True
    recorder = CallRecorder()
    with recording(recorder):
        eng.call(CompletionRequest(model="m", messages=(ChatMessage("user", "hi"),)))
    (call,) = recorder.calls
    assert call.joules == 10.0 and call.load_s == pytest.approx(0.05)  # the preload's cost is still the call's
    assert 0.0 < call.load_joules <= 5.0 * 0.05 / 0.2  # ≤ 1.25 J: the wall time is at least the sleep
