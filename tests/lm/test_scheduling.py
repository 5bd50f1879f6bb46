"""Model-swap-aware scheduling on fake models: the keep-alive policy, staged evaluation, load energy apart.

The swap counts themselves are measured over HTTP against the Ollama stub: tests/backends/test_ollama_scheduling.py.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from autoresearch.cli.views import role_table
from autoresearch.errors import ModelNotFound
from autoresearch.lm.backends import (
    ChatMessage,
    Completion,
    CompletionRequest,
    FakeBackend,
)
from autoresearch.lm.calls import CallRecord, CallRecorder, recording, role_rows
from autoresearch.lm.engine import BackendEngine
from autoresearch.lm.scheduling import KeepAlivePolicy, policy_for, same_model
from autoresearch.pipeline.harness import Harness
from autoresearch.pipeline.runner import SuiteResult, evaluate_tasks
from autoresearch.store import Store
from autoresearch.testing import FixedMeter
from autoresearch.workspace.config import Portfolio, RoleConfig

pytestmark = pytest.mark.usefixtures("no_counters")


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def seconds(keep_alive: str) -> float:
    assert keep_alive.endswith("s") and keep_alive[:-1].isdigit(), keep_alive
    return float(keep_alive[:-1])


# --- the keep-alive policy --------------------------------------------------------------------------


def use(policy: KeepAlivePolicy, clock: Clock, model: str, *, after_s: float, lasting_s: float = 1.0) -> str:
    """Wait after_s, then one call of model lasting lasting_s; the keep_alive that call would send."""
    clock.now += after_s
    policy.started(model)
    keep_alive = policy.keep_alive(model)
    clock.now += lasting_s
    policy.finished(model)
    return keep_alive


def test_keep_alive_is_ollamas_default_until_a_gap_is_observed_then_follows_the_gaps():
    clock = Clock()
    policy = KeepAlivePolicy(clock=clock)
    assert use(policy, clock, "judge:8b", after_s=0) == "5m"  # nothing observed yet
    assert use(policy, clock, "judge:8b", after_s=100) == "125s"  # the gap plus a quarter
    assert use(policy, clock, "judge:8b", after_s=100) == "125s"
    # A longer gap moves the moving average (0.3 · 1000 + 0.7 · 100 = 370 s), plus its margin.
    assert use(policy, clock, "judge:8b", after_s=1000) == "463s"
    assert policy.expected_gap_s("judge:8b") == pytest.approx(370.0)
    # Back-to-back calls (within one stage) are covered by any keep-alive and leave the estimate alone.
    assert use(policy, clock, "judge:8b", after_s=2) == "463s"
    # Each model has its own gaps.
    assert use(policy, clock, "plan:1b", after_s=0) == "5m"


def test_keep_alive_is_clamped_to_30_seconds_and_30_minutes_never_0_or_forever():
    clock = Clock()
    policy = KeepAlivePolicy(clock=clock)
    use(policy, clock, "m", after_s=0)
    assert use(policy, clock, "m", after_s=31) == "41s"  # 31 + the 10 s minimum margin
    for _ in range(20):
        value = use(policy, clock, "m", after_s=50_000)
        assert 30 <= seconds(value) <= 1800
    assert value == "1800s"
    short = KeepAlivePolicy(clock=clock)
    use(short, clock, "m", after_s=0)
    # The shortest gap observed is the 30 s floor itself: 30 + the 10 s margin, exactly.
    assert use(short, clock, "m", after_s=30) == "40s"
    # A gap under the floor is not observed, so it cannot pull the keep-alive below 30 s.
    assert use(short, clock, "m", after_s=5) == "40s"
    assert short.expected_gap_s("m") == pytest.approx(30.0)
    # The floor clamp itself: an expected gap whose gap + margin (5 + 10 s) falls short is raised to 30 s.
    short._average["m"] = 5.0
    assert short.keep_alive("m") == "30s"


def test_policy_registry_is_one_policy_per_server_and_model_names_match_with_their_tag():
    assert policy_for("http://127.0.0.1:1/") is policy_for("http://127.0.0.1:1")
    assert policy_for("http://127.0.0.1:1") is not policy_for("http://127.0.0.1:2")
    assert same_model("llama3", "llama3:latest") and same_model("qwen2.5:3b", "qwen2.5:3b")
    assert not same_model("qwen2.5:3b", "qwen2.5:7b")


def engine_for(backend, clock: Clock, **config) -> tuple[BackendEngine, KeepAlivePolicy]:
    policy = KeepAlivePolicy(clock=clock)
    role = RoleConfig(backend="ollama", model="prod:3b", **config)
    return BackendEngine("producer", role, backend, FixedMeter(0.0), backoff_s=0.0, policy=policy), policy


def request(model: str = "prod:3b", keep_alive: str | None = None) -> CompletionRequest:
    return CompletionRequest(model=model, messages=(ChatMessage("user", "hello"),), keep_alive=keep_alive)


def send(eng: BackendEngine) -> None:
    """One call as DSPy makes it: the request carries the engine's keep_alive (the role's, or the policy's)."""
    eng.call(request(keep_alive=eng.keep_alive()))


def test_engine_sends_the_policys_keep_alive_to_ollama_only_and_only_when_the_role_sets_none():
    clock = Clock()
    served = FakeBackend("Hi.")
    served.name = "ollama"  # stands in for Ollama: the policy applies by backend
    eng, policy = engine_for(served, clock)
    send(eng)
    clock.now += 200
    send(eng)
    assert [r.keep_alive for r in served.requests] == ["5m", "250s"]
    assert policy.expected_gap_s("prod:3b") == pytest.approx(200)

    fixed = FakeBackend("Hi.")
    fixed.name = "ollama"
    eng, policy = engine_for(fixed, clock, keep_alive="10m")
    send(eng)
    clock.now += 200
    send(eng)
    assert [r.keep_alive for r in fixed.requests] == ["10m", "10m"]  # the role's own setting wins
    assert policy.expected_gap_s("prod:3b") == pytest.approx(200)  # still observed

    other = FakeBackend("Hi.")  # not Ollama: no keep_alive at all
    eng, policy = engine_for(other, clock)
    send(eng)
    clock.now += 200
    send(eng)
    assert [r.keep_alive for r in other.requests] == [None, None]
    assert policy.expected_gap_s("prod:3b") is None


# --- load energy apart ------------------------------------------------------------------------------


def record_of(completion: Completion | None = None, *, delay_s: float = 0.0, responder=None) -> CallRecord:
    fake = FakeBackend(responder or [completion], delay_s=delay_s)
    eng = BackendEngine("producer", RoleConfig(backend="fake", model="m"), fake, FixedMeter(10.0), backoff_s=0.0)
    recorder = CallRecorder()
    with recording(recorder):
        eng.call(request("m"))
    (record,) = recorder.calls
    return record


def test_load_joules_are_the_loads_share_of_the_calls_time():
    loaded = record_of(Completion("Hi.", 3, 1, latency_s=2.0, load_s=0.5))
    assert (loaded.joules, loaded.load_joules, loaded.load_s) == (10.0, pytest.approx(2.5), 0.5)
    assert loaded.swapped
    warm = record_of(Completion("Hi.", 3, 1, latency_s=2.0, load_s=0.0))
    assert (warm.joules, warm.load_joules) == (10.0, 0.0) and not warm.swapped


def test_an_embedded_style_load_outside_latency_is_split_by_the_calls_wall_time():
    # The embedded backend loads before it starts its latency clock: latency 0.1 s, load 0.3 s, 0.4 s in all.
    record = record_of(delay_s=0.4, responder=lambda r: Completion("Hi.", 3, 1, latency_s=0.1, load_s=0.3))
    assert 0.5 < record.load_joules / record.joules <= 0.75
    capped = record_of(Completion("Hi.", 3, 1, latency_s=0.1, load_s=5.0))  # never more than the whole call
    assert capped.load_joules == capped.joules == 10.0


def test_load_joules_are_stored_in_their_own_column(tmp_path):
    store = Store(tmp_path / "runs" / "autoresearch.db")
    record = record_of(Completion("Hi.", 3, 1, latency_s=2.0, load_s=0.5))
    store.record_call(None, record)
    row = store.conn.execute("SELECT joules, load_joules, load_s FROM calls").fetchone()
    assert tuple(row) == (10.0, 2.5, 0.5)
    store.close()


def test_m003_adds_load_joules_to_an_existing_store_with_0_for_old_calls(tmp_path, monkeypatch):
    from autoresearch.store import migrations

    path = tmp_path / "runs" / "autoresearch.db"
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:2])  # a store made before m003
        old = Store(path)
        old.conn.execute("INSERT INTO calls (role, backend, model, prompt_hash, energy_source, status, created_at)"
                         " VALUES ('planner', 'ollama', 'm', 'h', 'estimate', 'ok', 'now')")
        old.close()
    store = Store(path)
    assert store.conn.execute("SELECT load_joules FROM calls").fetchone()[0] == 0
    assert "m003_load_joules" in {r[0] for r in store.conn.execute("SELECT name FROM _migrations")}
    store.close()


def call(role: str, model: str, *, load_s: float = 0.0, joules: float = 10.0, load_joules: float = 0.0):
    return CallRecord(role=role, backend="ollama", model=model, prompt_hash="h", prompt_tokens=5,
                      completion_tokens=10, latency_s=1.0, load_s=load_s, joules=joules,
                      energy_source="estimate", status="ok", load_joules=load_joules)


def test_role_rows_count_swaps_and_show_load_energy_apart_from_generation():
    calls = (call("planner", "plan:1b", load_s=0.8, load_joules=4.0), call("planner", "plan:1b"),
             call("producer", "prod:3b", load_s=1.5, load_joules=6.0), call("producer", "prod:3b", load_s=1.0,
                                                                             load_joules=2.0))
    rows = {r["role"]: r for r in role_rows(calls)}
    assert (rows["planner"]["swaps"], rows["planner"]["load_s"]) == (1, 0.8)
    assert (rows["planner"]["joules"], rows["planner"]["load_joules"], rows["planner"]["generation_joules"]) == (
        20.0, 4.0, 16.0)
    assert (rows["producer"]["swaps"], rows["producer"]["load_s"], rows["producer"]["load_joules"]) == (2, 2.5, 8.0)
    headers = [c.header for c in role_table(calls).columns]
    assert {"swaps", "load s", "load J", "gen J"} <= set(headers)


# --- staged evaluation --------------------------------------------------------------------------------


def fake_harness(workspace, kit, script, **kwargs) -> Harness:
    factory = kit.FakeFactory({"planner": script, "producer": script, "evaluator": script}, in_process=False)
    return Harness(workspace, kit.distinct_portfolio(), backend_factory=factory, backoff_s=0.0, **kwargs)


def comparable(result):
    """A TaskResult without what differs by run order: its timing and each call's latency and joules."""
    fields = asdict(result)
    fields.pop("seconds")
    fields["calls"] = [(c.role, c.model, c.status, c.failure_mode, c.response, c.task_id) for c in result.calls]
    return fields


@pytest.mark.parametrize("fail_in", ["planner", "producer"])
def test_staged_results_equal_per_task_results(workspace, kit, fail_in):
    tasks = workspace.suite.split("search")
    ids = [t.id for t in tasks]
    script = lambda: kit.ContentScript(workspace.rubric, tasks, low=[ids[0], ids[2]], fail=[ids[1]],
                                       flatter=[ids[3]], error=ModelNotFound, fail_in=fail_in)
    per_task = fake_harness(workspace, kit, script())
    expected = [per_task.run_task(t) for t in tasks]
    staged_script = script()
    recorder = CallRecorder()
    staged = fake_harness(workspace, kit, staged_script).run_tasks_staged(tasks, recorder)

    assert [comparable(r) for r in staged] == [comparable(r) for r in expected]
    # The suite exercises every path: revised, failed (that task only), guarded, plain.
    assert [r.revisions for r in staged] == [1, 0, 1, 0]
    assert [r.failed for r in staged] == [False, True, False, False]
    assert staged[1].failure_mode == "model_not_found"
    assert staged[3].guarded and staged[3].score_r1 == 0.0
    assert (staged[0].score_r1, staged[0].score_final) == (3.0, 8.0)
    # Stage by stage (plan → draft → judge → revise → judge): the model changes 4 times, not at each step.
    models = [c.model for c in recorder.calls]
    changes = sum(a != b for a, b in zip(models, models[1:]))
    assert changes == 4
    assert sum(len(r.calls) for r in staged) == len(recorder.calls)
    assert all(c.task_id == r.task_id for r in staged for c in r.calls)


def test_staged_is_chosen_for_two_or_more_ollama_models_only(workspace, kit):
    def portfolio(*roles: tuple[str, str]) -> Portfolio:
        return Portfolio(**{name: RoleConfig(backend=backend, model=model, base_url="http://127.0.0.1:9")
                            for name, (backend, model) in zip(("planner", "producer", "evaluator"), roles)})

    three = portfolio(("ollama", "a:1b"), ("ollama", "b:3b"), ("ollama", "c:8b"))
    one = portfolio(("ollama", "a:1b"), ("ollama", "a:1b"), ("ollama", "a:1b"))
    mixed = portfolio(("embedded", "smollm2-135m"), ("ollama", "b:3b"), ("ollama", "c:8b"))
    single = portfolio(("embedded", "smollm2-135m"), ("ollama", "b:3b"), ("embedded", "smollm2-135m"))
    assert Harness(workspace, three).staged and Harness(workspace, mixed).staged
    assert not Harness(workspace, one).staged and not Harness(workspace, single).staged
    assert not fake_harness(workspace, kit, kit.Script(workspace.rubric)).staged


def test_a_given_policy_is_shared_by_the_harness_ollama_engines(workspace):
    portfolio = Portfolio(**{role: RoleConfig(backend="ollama", model=f"{role}:1b", base_url="http://127.0.0.1:9")
                             for role in ("planner", "producer", "evaluator")})
    default = Harness(workspace, portfolio)
    assert {id(e.policy) for e in default.engines.values()} == {id(policy_for("http://127.0.0.1:9"))}
    mine = KeepAlivePolicy()
    assert all(e.policy is mine for e in Harness(workspace, portfolio, keep_alive_policy=mine).engines.values())


def staged_run(workspace, kit, tmp_path, stop_after: int, stoppable: bool):
    """A staged evaluation of the search tasks on fakes whose on_task stops it after task index stop_after."""
    tasks = workspace.suite.split("search")  # 4 tasks
    script = kit.ContentScript(workspace.rubric, tasks)
    harness = fake_harness(workspace, kit, script)
    harness.staged = True
    store = Store(tmp_path / "runs" / "autoresearch.db")
    seen = []

    def on_task(index, result):
        seen.append(result.task_id)
        return index < stop_after

    suite = evaluate_tasks(workspace, harness, store, tasks, kind="trial", portfolio="default",
                           instructions=workspace.instructions, split="search", on_task=on_task, stoppable=stoppable)
    return tasks, script, store, suite, seen


def test_runner_runs_a_staged_harness_then_records_and_prunes_task_by_task(workspace, kit, tmp_path):
    tasks, script, store, suite, seen = staged_run(workspace, kit, tmp_path, stop_after=1, stoppable=False)
    assert suite.status == "pruned" and seen == [t.id for t in tasks[:2]]
    assert [r["task_id"] for r in store.task_results(suite.evaluation_id)] == seen
    assert script.counts["planner"] == len(tasks)  # the stages ran over the whole suite first
    assert len(store.calls(suite.evaluation_id)) == 3 * len(tasks)  # every call is in the store
    assert isinstance(suite, SuiteResult) and suite.swaps == 0 and suite.load_s == 0.0
    store.close()


def test_a_stoppable_staged_evaluation_runs_in_blocks_so_an_early_stop_saves_the_rest(workspace, kit, tmp_path):
    tasks, script, store, suite, seen = staged_run(workspace, kit, tmp_path, stop_after=0, stoppable=True)
    assert suite.status == "pruned" and seen == [tasks[0].id]
    assert script.counts["planner"] == 2  # the first block of 2 only: the second block's tasks were never planned
    assert len(store.calls(suite.evaluation_id)) == 3 * 2
    store.close()
