"""profile: each model in each role; identical portfolios are evaluated once."""

from __future__ import annotations

import json

import pytest

from autoresearch.pipeline.profile import candidates_of, in_role, parse_model, profile
from autoresearch.store import Store
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
