"""The pipeline on fake models: planning, judging, revision rounds and failed tasks."""

from __future__ import annotations

import re

import dspy
import pydantic
import pytest

from autoresearch.errors import BackendTimeout, ModelNotFound
from autoresearch.lm.calls import CallRecorder
from autoresearch.pipeline.harness import Harness
from autoresearch.pipeline.program import REVISE_SUFFIX, judge_signature
from autoresearch.workspace.suite import (
    JUDGE_FIELDS,
    RESERVED_DIMENSION_NAMES,
    Dimension,
    Rubric,
)

pytestmark = pytest.mark.usefixtures("no_counters")


def task(workspace, task_id="commit-tips"):
    return next(t for t in workspace.suite.tasks if t.id == task_id)


def harness(workspace, kit, script, **kwargs):
    factory = kit.FakeFactory({"planner": script, "producer": script, "evaluator": script})
    h = Harness(workspace, kit.distinct_portfolio(), backend_factory=factory, backoff_s=0.0, **kwargs)
    return h, factory


def test_each_role_gets_its_own_backend_and_model(workspace, kit):
    script = kit.Script(workspace.rubric)
    h, factory = harness(workspace, kit, script)
    result = h.run_task(task(workspace))
    assert not result.failed
    assert [r.model for r in factory.fakes["planner"].requests] == ["planner-model"]
    assert [r.model for r in factory.fakes["producer"].requests] == ["producer-model"]
    assert [r.model for r in factory.fakes["evaluator"].requests] == ["evaluator-model"]
    assert {c.role for c in result.calls} == {"planner", "producer", "evaluator"}


def test_planner_steps_own_numbering_is_stripped(workspace, kit):
    script = kit.Script(workspace.rubric, planner=kit.plan_reply(
        "1. Name three tips", "Step 2: give a reason for each", "3) Keep it short", "Mention commits"))
    h, _ = harness(workspace, kit, script)
    result = h.run_task(task(workspace))
    expected = "1. Name three tips\n2. give a reason for each\n3. Keep it short\n4. Mention commits"
    assert result.plan == expected
    (produce,) = script.requests["producer"]
    assert "Plan:\n" + expected in produce.messages[1].content  # the producer sees the renumbered plan


def test_instructions_reach_each_role_as_system_prompt(workspace, kit):
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 2))
    h, _ = harness(workspace, kit, script)
    h.run_task(task(workspace))
    system = {kind: reqs[0].messages[0].content for kind, reqs in script.requests.items()}
    assert system["planner"].startswith(workspace.instructions["planner.md"].strip())
    assert system["producer"] == workspace.instructions["producer.md"].strip()
    assert system["revise"] == workspace.instructions["producer.md"].strip() + REVISE_SUFFIX
    assert system["judge"].startswith(workspace.evaluator_instructions.strip())


def test_low_judge_score_triggers_one_revision_and_records_both_scores(workspace, kit):
    assert workspace.settings.scoring.judge_pass_threshold == 6.0
    assert workspace.settings.scoring.max_revision_rounds == 1
    revised = kit.COMMIT_TIPS_ANSWER + "Each tip helps reviewers."
    script = kit.Script(
        workspace.rubric, producer="1. Draft only.", revise=revised,
        judge=[kit.judge_reply(workspace.rubric, 3, critique="Give reasons."), kit.judge_reply(workspace.rubric, 8)],
    )
    h, _ = harness(workspace, kit, script)
    result = h.run_task(task(workspace))
    assert result.revisions == 1
    assert (result.score_r1, result.score_final) == (3.0, 8.0)
    assert (result.output_r1, result.output) == ("1. Draft only.", revised)
    assert script.counts["revise"] == 1 and script.counts["judge"] == 2
    (revise,) = script.requests["revise"]
    assert "Draft:\n1. Draft only." in revise.messages[1].content
    assert "Critique:\nGive reasons." in revise.messages[1].content
    # Criteria are checked on the final (revised) answer: the draft had one numbered item, not three.
    assert next(c for c in result.checks if c.criterion == "exact_numbered 3").passed
    assert result.dimensions == {d.name: 3.0 for d in workspace.rubric.dimensions}  # first-pass dimensions


def test_revision_stops_at_max_rounds(workspace, kit):
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 2))
    h, _ = harness(workspace, kit, script, max_rounds=3)
    result = h.run_task(task(workspace))
    assert result.revisions == 3
    assert script.counts["revise"] == 3 and script.counts["judge"] == 4
    assert result.score_r1 == result.score_final == 2.0


def test_revision_stops_once_the_judge_passes(workspace, kit):
    rubric = workspace.rubric
    script = kit.Script(rubric, judge=[kit.judge_reply(rubric, 2), kit.judge_reply(rubric, 7), kit.judge_reply(rubric, 1)])
    h, _ = harness(workspace, kit, script, max_rounds=3)
    result = h.run_task(task(workspace))
    assert result.revisions == 1 and result.score_final == 7.0
    assert script.counts["judge"] == 2


def test_no_revision_when_the_judge_scores_above_threshold(workspace, kit):
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 9))
    h, _ = harness(workspace, kit, script)
    result = h.run_task(task(workspace))
    assert result.revisions == 0 and script.counts["revise"] == 0 and script.counts["judge"] == 1
    assert result.score_r1 == result.score_final == 9.0
    assert result.output == result.output_r1 == kit.COMMIT_TIPS_ANSWER.strip()
    assert len(result.calls) == 3


def test_max_rounds_zero_never_revises(workspace, kit):
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 0))
    h, _ = harness(workspace, kit, script, max_rounds=0)
    assert h.run_task(task(workspace)).revisions == 0
    assert script.counts["revise"] == 0


def test_judge_dimensions_are_weighted_by_the_rubric(workspace, kit):
    weights = {d.name: d.weight for d in workspace.rubric.dimensions}
    assert weights["relevance"] == 3 and sum(weights.values()) == 10
    scores = {"relevance": 10, "completeness": 6, "depth": 0, "specificity": 0, "structure": 0}
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, scores))
    h, _ = harness(workspace, kit, script, max_rounds=0)
    result = h.run_task(task(workspace))
    assert result.score_r1 == pytest.approx((3 * 10 + 2.5 * 6) / 10)  # 4.5, not the plain mean 3.2
    assert result.dimensions == {name: float(v) for name, v in scores.items()}


def test_backend_failure_in_producer_fails_the_task_without_raising(workspace, kit):
    script = kit.Script(workspace.rubric, producer=ModelNotFound)
    h, _ = harness(workspace, kit, script)
    t = task(workspace)
    result = h.run_task(t)
    assert result.failed and result.failure_mode == "model_not_found"
    assert (result.score_r1, result.score_final) == (0.0, 0.0)
    assert len(result.checks) == len(t.criteria) and not any(c.passed for c in result.checks)
    assert all("model_not_found" in c.reason for c in result.checks)
    assert [(c.role, c.status) for c in result.calls] == [("planner", "ok"), ("producer", "failed")]
    assert script.counts["judge"] == 0


def test_retryable_failure_is_retried_then_fails_the_task(workspace, kit):
    script = kit.Script(workspace.rubric, producer=BackendTimeout)
    h, _ = harness(workspace, kit, script)  # retries=2 by default: three attempts
    result = h.run_task(task(workspace))
    assert result.failed and result.failure_mode == "timeout"
    assert [c.failure_mode for c in result.calls if c.role == "producer"] == ["timeout"] * 3


def test_unparseable_judge_reply_fails_the_task(workspace, kit):
    script = kit.Script(workspace.rubric, judge='{"critique": "no scores at all"}')
    h, _ = harness(workspace, kit, script)
    result = h.run_task(task(workspace))
    assert result.failed and result.failure_mode == "unparseable"


def test_non_backend_errors_are_not_swallowed(workspace, kit):
    script = kit.Script(workspace.rubric, producer=RuntimeError("a bug, not a model failure"))
    h, _ = harness(workspace, kit, script)
    with pytest.raises(Exception) as info:
        h.run_task(task(workspace))
    assert "a bug, not a model failure" in str(info.value)


def test_calls_are_tagged_with_the_task_and_appended_to_the_recorder(workspace, kit):
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 9))
    h, _ = harness(workspace, kit, script)
    recorder = CallRecorder()
    first = h.run_task(task(workspace, "commit-tips"), recorder)
    second = h.run_task(task(workspace, "release-notes"), recorder)
    assert len(recorder.calls) == len(first.calls) + len(second.calls) == 6
    assert {c.task_id for c in first.calls} == {"commit-tips"}
    assert {c.task_id for c in second.calls} == {"release-notes"}
    assert first.tokens == sum(c.prompt_tokens + c.completion_tokens for c in first.calls) > 0
    assert first.energy_source == "estimate"


def test_judge_is_not_an_optimizable_predictor(workspace, kit):
    h, _ = harness(workspace, kit, kit.Script(workspace.rubric))
    named = dict(h.pipeline.named_predictors())
    assert set(named) == {"plan", "produce", "revise"}
    assert all(p is not h.pipeline.judge.predict for p in named.values())
    assert h.pipeline.judge.predict not in h.pipeline.predictors()


def test_producer_temperature_override(workspace, kit):
    script = kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 9))
    h, _ = harness(workspace, kit, script, producer_temperature=1.3)
    h.run_task(task(workspace))
    assert script.requests["producer"][0].temperature == 1.3
    assert script.requests["planner"][0].temperature == 0.2  # RoleConfig default, untouched


def test_roles_routed_by_model_name_with_per_role_scripts(workspace, kit, fake_factory):
    factory = fake_factory(
        planner=[kit.plan_reply("Say hello")],
        producer=["1. one\n2. two\n3. three commit"],
        evaluator=[kit.judge_reply(workspace.rubric, 10, critique="Perfect.")],
    )
    h = Harness(workspace, kit.distinct_portfolio(producer={"temperature": 0.9}), backend_factory=factory,
                backoff_s=0.0)
    result = h.run_task(task(workspace))
    assert result.plan == "1. Say hello" and result.critique == "Perfect." and result.score_final == 10.0
    assert [c.model for c in factory.configs] == ["planner-model", "producer-model", "evaluator-model"]
    assert factory.fakes["producer"].requests[0].temperature == 0.9
    assert [len(f.requests) for f in factory.fakes.values()] == [1, 1, 1]


def test_a_backend_whose_replies_depend_on_their_batch_gets_no_reused_replies(workspace, kit):
    from autoresearch.lm.replies import ReplyCache

    script = kit.Script(workspace.rubric)
    cache = ReplyCache()
    h, factory = harness(workspace, kit, script, replies=cache)
    assert all(engine.replies is cache for engine in h.engines.values())
    factory.fakes["planner"].decodes_in_batches = True  # a batch's other calls change its replies (lm/lanes.py)
    h = Harness(workspace, kit.distinct_portfolio(), backend_factory=factory, replies=cache)
    assert h.engines["planner"].replies is None and h.engines["producer"].replies is cache


def test_the_reserved_dimension_names_cover_every_name_the_judges_dspy_classes_use():
    # A dimension is a field of the judge's signature and is read back from its prediction: a name either class
    # (or pydantic's BaseModel under them) already has breaks the judge. A DSPy upgrade that adds one fails here.
    pattern = re.compile(Dimension.model_fields["name"].metadata[-1].pattern)
    taken = {name for owner in (dspy.Signature, type(dspy.Signature), dspy.Prediction(), pydantic.BaseModel)
             for name in dir(owner) if pattern.fullmatch(name)}
    assert taken - RESERVED_DIMENSION_NAMES == set()
    assert set(JUDGE_FIELDS) <= RESERVED_DIMENSION_NAMES
    judge = judge_signature(Rubric(dimensions=[Dimension(name="clarity", description="d", weight=1)]), "Judge.")
    assert set(judge.input_fields) | set(judge.output_fields) == {*JUDGE_FIELDS, "clarity"}
