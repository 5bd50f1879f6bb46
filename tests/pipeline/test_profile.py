"""profile: each model in each role; identical portfolios are evaluated once."""

from __future__ import annotations

import json

import pytest

from autoresearch.lm.calls import CallRecorder, made
from autoresearch.lm.replies import ReplyCache
from autoresearch.pipeline.profile import candidates_of, in_role, parse_model, profile
from autoresearch.store import Store
from autoresearch.store.replies import StoredReplies
from autoresearch.workspace.config import PIPELINE_ROLES


def test_each_candidate_in_each_role_with_per_role_figures(workspace, kit, no_counters):
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 6))
    fake = kit.single_fake(script)
    store = Store.for_workspace(workspace.runs_dir)
    base = workspace.portfolio()
    candidates = candidates_of(base) + [parse_model("ollama:big-model", base.producer)]
    tasks = workspace.suite.split("search")[:2]

    rows = profile(workspace, store, "default", candidates, tasks, backend_factory=lambda c, b: fake)

    assert [(r.role, r.model) for r in rows] == [
        ("planner", "embedded:smollm2-135m"), ("producer", "embedded:smollm2-135m"),
        ("evaluator", "embedded:smollm2-135m"), ("planner", "ollama:big-model"),
        ("producer", "ollama:big-model"), ("evaluator", "ollama:big-model")]
    # The starter's own portfolio runs once for its three rows; each swap is one more evaluation.
    evaluations = store.conn.execute("SELECT COUNT(*) FROM evaluations WHERE kind='profile'").fetchone()[0]
    assert evaluations == 4
    planner = rows[0]
    assert planner.calls == 2 and planner.completion_rate == 1.0
    assert planner.joules_per_task > 0 and planner.energy_source == "estimate"
    assert planner.composite == pytest.approx(0.7 * 6 + 0.3 * planner.criteria_rate * 10)


def test_each_candidates_evaluation_records_the_candidates_own_portfolio(workspace, kit, no_counters):
    fake = kit.single_fake(kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 6)))
    store = Store.for_workspace(workspace.runs_dir)
    base = workspace.portfolio()
    candidates = [parse_model("ollama:big-model", base.producer), parse_model("ollama:small-model", base.producer)]
    tasks = workspace.suite.split("search")[:1]

    rows = profile(workspace, store, "default", candidates, tasks, backend_factory=lambda c, b: fake)

    recorded = [json.loads(r[0]) for r in store.conn.execute(
        "SELECT portfolio_json FROM evaluations WHERE kind='profile' ORDER BY id")]
    assert len(recorded) == len(rows) == 6  # no two candidate portfolios are the same here
    for row, portfolio in zip(rows, recorded):
        backend, model = row.model.split(":", 1)
        assert (portfolio[row.role]["backend"], portfolio[row.role]["model"]) == (backend, model), row
        for other in set(PIPELINE_ROLES) - {row.role}:  # the other roles keep the base portfolio's models
            assert portfolio[other] == base.role(other).model_dump(), (row, other)


def test_a_model_keeps_the_roles_own_parameters(workspace):
    base = workspace.portfolio()
    big = parse_model("ollama:big-model", base.planner)
    producer = in_role(base.producer, big)
    assert (producer.backend, producer.model) == ("ollama", "big-model")
    assert producer.max_tokens == base.producer.max_tokens and producer.temperature == base.producer.temperature


@pytest.mark.parametrize("spec", ["big-model", "cloud:gpt", "ollama:"])
def test_bad_model_spec(spec, workspace):
    with pytest.raises(ValueError, match="BACKEND:MODEL"):
        parse_model(spec, workspace.portfolio().producer)


def test_a_stop_after_the_first_candidate_returns_its_rows_not_nothing(workspace, kit, no_counters):
    fake = kit.single_fake(kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 6)))
    base = workspace.portfolio()
    candidates = candidates_of(base) + [parse_model("ollama:big-model", base.producer)]

    def factory(config, backends):
        if config.model == "big-model":  # Ctrl-C while the second candidate's evaluation starts
            raise KeyboardInterrupt
        return fake

    try:
        rows = profile(workspace, Store.for_workspace(workspace.runs_dir), "default", candidates,
                       workspace.suite.split("search")[:2], backend_factory=factory)
    except KeyboardInterrupt:  # a failure, not the end of the test session
        pytest.fail("the stop reached the caller and the first candidate's finished rows were lost")
    assert [(r.role, r.model) for r in rows] == [("planner", "embedded:smollm2-135m"),
                                                 ("producer", "embedded:smollm2-135m"),
                                                 ("evaluator", "embedded:smollm2-135m")]
    with pytest.raises(KeyboardInterrupt):  # nothing finished: nothing to return
        profile(workspace, Store.for_workspace(workspace.runs_dir), "default", candidates[1:],
                workspace.suite.split("search")[:2], backend_factory=factory)


def test_a_swap_reuses_the_replies_of_the_requests_it_shares_with_the_base_and_profiles_the_same(workspace, kit,
                                                                                                  no_counters):
    base = workspace.portfolio()
    candidates = candidates_of(base) + [parse_model("ollama:big-model", base.producer)]
    tasks = workspace.suite.split("search")[:2]

    def profiled(replies):
        fake = kit.single_fake(kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 8)))
        store, spent = Store(workspace.runs_dir / f"{replies is not None}.db"), CallRecorder()
        rows = profile(workspace, store, "default", candidates, tasks, backend_factory=lambda c, b: fake,
                       replies=replies, recorder=spent)
        calls = store.conn.execute("SELECT e.portfolio_json, c.role, c.model, c.reused FROM calls c JOIN evaluations e "
                                   "ON c.evaluation_id = e.id ORDER BY c.id").fetchall()
        store.close()
        return rows, spent.calls, fake, calls

    rows, spent, fake, calls = profiled(ReplyCache())
    every_row, every_call, asked, _ = profiled(None)
    def scores(found):  # the measured seconds and joules differ between any two runs
        return [(r.role, r.model, r.composite, r.judge_mean, r.criteria_rate, r.completion_rate, r.calls) for r in found]

    assert scores(rows) == scores(every_row)  # the reused replies are the ones the calls gave
    # 4 evaluations (the base, then big-model as planner, producer, judge) × 2 tasks × 3 calls (judged 8: no
    # revision): the base's requests sent again by a swap are answered from the cache, nothing else.
    assert len(every_call) == len(asked.requests) == 4 * 2 * 3 and len(spent) == 24
    by_model = {(model, bool(reused)) for _, _, model, reused in calls}
    assert ("big-model", True) not in by_model  # a candidate's own requests are new
    base_requests_again = [c for c in calls if c["model"] != "big-model" and json.loads(c["portfolio_json"]) != json.loads(
        calls[0]["portfolio_json"])]
    # The fake answers alike whichever model asks it, so every base-model request of a swap repeats the base's:
    # the planner's and judge's under a producer swap, the producer's and judge's under a planner swap (its plan
    # is the fake's same plan), the planner's and producer's under a judge swap.
    assert base_requests_again and all(c["reused"] for c in base_requests_again)
    assert len(made(spent)) == len(fake.requests) == 24 - len(base_requests_again) == 2 * 3 + 3 * 2


def test_a_second_profile_is_answered_from_the_store_and_its_rows_say_the_model_completed(workspace, kit,
                                                                                       no_counters):
    fake = kit.single_fake(kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 8)))

    class Told:  # the fake, saying which model it serves, as a real backend does (lm/model_identity.py)
        def __init__(self, model):
            self.model = model

        def __getattr__(self, name):
            return getattr(fake, name)

        def model_identity(self):
            return f"weights of {self.model}"

    store = Store.for_workspace(workspace.runs_dir)
    base = workspace.portfolio()
    candidates = candidates_of(base) + [parse_model("ollama:big-model", base.producer)]
    tasks = workspace.suite.split("search")[:1]

    def profiled():  # each in a new process's place: a new cache, the same store
        spent = CallRecorder()
        rows = profile(workspace, store, "default", candidates, tasks, backend_factory=lambda c, b: Told(c.model),
                       replies=ReplyCache(lookup=StoredReplies(store)), recorder=spent)
        return [(r.role, r.model, r.composite, r.completion_rate, r.calls) for r in rows], spent.calls

    first, first_calls = profiled()
    asked = len(fake.requests)
    again, again_calls = profiled()
    assert len(fake.requests) == asked and made(again_calls) == []  # every request found in the store
    assert len(again_calls) == len(first_calls) == 4 * 3
    assert again == first and all(rate == 1.0 for _, _, _, rate, _ in again)
    # Each evaluation stamped with its own portfolio's models: the base, and big-model in each of the three roles.
    stamped = [row[0] for row in store.conn.execute("SELECT models FROM evaluations WHERE kind = 'profile'")]
    assert len(stamped) == 8 and len(set(stamped)) == 4
