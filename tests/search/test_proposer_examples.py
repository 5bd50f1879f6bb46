"""Proposals grounded in traces: the proposer sees the parent's weakest tasks, within its context window."""

from __future__ import annotations

import json
import random

from scripted import ONLY_PRODUCER, ScriptedPipeline, producer_only

from autoresearch.energy import EstimateMeter
from autoresearch.lm.backends import FakeBackend
from autoresearch.lm.engine import BackendEngine, make_lm
from autoresearch.search.operators import select
from autoresearch.search.proposer import (
    Example,
    Feedback,
    Proposer,
    feedback_from,
    propose_usable,
    weakest_examples,
)
from autoresearch.search.study import Study
from autoresearch.workspace.config import RoleConfig
from autoresearch.workspace.workspace import load_workspace


def row(task_id, score, passed, total=2, *, output="An answer.", failed=0, flags="", critique="Too vague."):
    checks = [{"criterion": f"check{i}", "passed": i < passed, "reason": f"reason {i}"} for i in range(total)]
    return {"task_id": task_id, "score_r1": score, "criteria_passed": passed, "criteria_total": total,
            "criteria_json": json.dumps(checks), "critique": critique, "output_r1": output, "output": output,
            "failed": failed, "flags": flags, "dimensions_json": json.dumps({"clarity": score})}


PROMPTS = {t: f"Write about {t}. " * 40 for t in ("a", "b", "c", "d", "e")}


def test_the_weakest_search_tasks_with_an_answer_are_the_examples():
    rows = [row("a", 8, 2), row("b", 3, 1), row("c", 1, 0, failed=1, output=""),  # c: its model call failed
            row("d", 0, 0, flags="judge_directed"),  # d: the guard zeroed it; its answer addresses the judge
            row("e", 4, 0, output="word " * 400), row("holdout-1", 0, 0)]  # never shown: not a search task
    examples = weakest_examples(rows, PROMPTS, n=2)
    assert [e.task_id for e in examples] == ["e", "b"]  # e: 0.7 × 4 + 0 = 2.8; b: 2.1 + 1.5 = 3.6
    first = examples[0]
    assert first.failed_checks == ("check0: reason 0", "check1: reason 1")
    assert len(first.task) <= 300 and first.task.endswith("…") and len(first.output) <= 500
    text = Feedback((), (), (), examples).render()
    assert "Where the current instructions did worst:" in text and "Task e: Write about e." in text
    assert "Judge: 4.0/10. Too vague." in text
    assert feedback_from(rows).examples == ()  # without the prompts, no examples (the old feedback)


def test_examples_survive_the_shared_ledgers_json():
    feedback = feedback_from([row("b", 3, 1), row("e", 4, 0)], PROMPTS)
    assert Feedback.from_json(json.loads(json.dumps(feedback.to_json()))) == feedback


def test_examples_are_dropped_until_the_prompt_fits_the_context_window():
    examples = tuple(Example(t, PROMPTS[t][:300], "word " * 100, ("check0: reason",), "Vague.", 3.0) for t in "abc")
    feedback = Feedback(("Be concrete.",), (("clarity", 3.0),), (), examples)
    (op,) = select(["rephrase"])
    inputs = {"current_instructions": "Answer.", "other_version": "(none)", "change": op.directive,
              "already_tried": "(nothing yet)"}
    unbounded = Proposer(lm=None, examples=3)
    full = unbounded.prompt_tokens({**inputs, "feedback": feedback.render()})
    none = unbounded.prompt_tokens({**inputs, "feedback": feedback.fewer_examples().fewer_examples()
                                    .fewer_examples().render()})
    assert unbounded.fitted(inputs, feedback)[1] == feedback  # no known window: nothing trimmed

    reply = 200
    for window in (full + reply, full + reply - 1, none + reply + 10, none):
        fitted, kept = Proposer(lm=None, examples=3, context_tokens=window, reply_tokens=reply).fitted(inputs, feedback)
        if kept.examples:  # whatever is kept fits beside the reply
            assert unbounded.prompt_tokens(fitted) <= window - reply
        assert kept.examples == examples[:len(kept.examples)]  # the weakest are kept longest
    assert len(Proposer(lm=None, examples=3, context_tokens=full + reply, reply_tokens=reply).fitted(inputs, feedback)[1]
               .examples) == 3
    assert len(Proposer(lm=None, examples=3, context_tokens=full + reply - 1, reply_tokens=reply).fitted(inputs, feedback)[1]
               .examples) == 2
    assert Proposer(lm=None, examples=3, context_tokens=none, reply_tokens=reply).fitted(inputs, feedback)[1].examples == ()
    # [search] proposer_examples caps them before the window does; 0 shows none.
    assert Proposer(lm=None, examples=1).fitted(inputs, feedback)[1].examples == examples[:1]
    assert Proposer(lm=None, examples=0).fitted(inputs, feedback)[1].examples == ()


def test_the_loops_proposer_is_shown_the_parents_weakest_search_task_and_no_holdout_task(loop_workspace):
    root = producer_only(loop_workspace(search_tasks=2, holdout_tasks=1, extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=["Answer!\n"], score=lambda answer, task: 2.0 if "number 1" in task else 7.0)
    Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=1)
    (proposal,) = [r for r in pipeline.backend.requests if pipeline.role_of(r) == "proposer"]
    prompt = proposal.messages[-1].content
    assert "Where the current instructions did worst:" in prompt
    weakest = prompt.index("Task t1: Task number 1.")  # judged 2, below t0's 7: shown first
    assert weakest < prompt.index("Task t0: Task number 0.")
    assert "Task number 2." not in prompt  # t2 is the holdout task


def test_the_proposers_idea_is_bounded_in_its_grammar_and_a_longer_one_is_still_taken(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    # A server that ignores maxLength: the idea runs on, and the variant is still evaluated (its idea cut).
    pipeline = ScriptedPipeline(propose=lambda parent: ("one more mark " * 40, parent.rstrip("\n") + "!\n"))
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    try:
        (trial,) = study.optimize(n_trials=1).outcomes
    finally:
        study.close()
    assert trial.status != "failed" and len(trial.description) <= 160
    schemas = {pipeline.role_of(r): r.json_schema for r in pipeline.backend.requests}
    assert schemas["proposer"]["properties"]["idea"]["maxLength"] == 160
    # The pipeline's own stages send their schemas as before: no limit of a field is added to their grammar.
    assert "maxItems" not in json.dumps(schemas["planner"]) and "maxLength" not in json.dumps(schemas["planner"])


def _proposer_on(fake: FakeBackend) -> Proposer:
    meter = EstimateMeter(in_process=False, cpu_watts_per_core=12.0, server_watts=60.0)
    engine = BackendEngine("proposer", RoleConfig(backend="fake", model="m"), fake, meter, retries=0, backoff_s=0.0)
    return Proposer(make_lm(engine))


def _shared_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_a_refused_proposal_is_asked_again_with_a_prompt_that_differs_only_in_its_change():
    # llama.cpp computes again only what follows the first token a prompt does not share with the one before:
    # the change asked for, the one input a retry alters, comes last.
    fake = FakeBackend([json.dumps({"idea": "x", "new_instructions": "Answer. (pruned)"}),  # junk: a copied note
                        json.dumps({"idea": "Name the audience.", "new_instructions": "Answer for engineers."})])
    feedback = Feedback(("Be concrete.",), (("clarity", 3.0),), (("check0", 2, "too short"),),
                        (Example("a", PROMPTS["a"][:300], "word " * 60, ("check0: too short",), "Vague.", 3.0),))
    operators = select(["rephrase", "add_constraint"])
    proposal, refused = propose_usable(_proposer_on(fake), "Answer.", operators[0], operators, feedback,
                                       ["Be brief. (discard, -0.30)"], other="", temperature=0.7,
                                       rng=random.Random(0))
    assert proposal is not None and len(refused) == 1 and len(fake.requests) == 2
    first, second = (r.messages for r in fake.requests)
    assert first[0] == second[0]  # the system message
    shared = _shared_prefix(first[1].content, second[1].content)
    assert shared.endswith("Change:\n")  # all of the parent, its feedback and the tried list, up to the change
    assert "Where the current instructions did worst:" in shared and "Be brief." in shared


def test_trials_from_the_same_parent_share_its_feedback_and_on_the_same_file_its_tried_ideas():
    fake = FakeBackend(lambda request: json.dumps({"idea": "Name the audience.",
                                                   "new_instructions": "Answer for engineers."}))
    proposer = _proposer_on(fake)
    feedback = Feedback(("Be concrete.",), (), (), ())
    (op,) = select(["rephrase"])
    proposer.propose("Answer.", op, feedback, ["Be brief. (discard, -0.30)"])
    proposer.propose("Answer.", op, feedback, ["Be brief. (discard, -0.30)", "Name the audience. (pruned)"])
    proposer.propose("Plan in steps.", op, feedback, ["Number the steps. (pruned)"])  # the other file
    first, second, other_file = (r.messages[1].content for r in fake.requests)
    assert _shared_prefix(first, second).endswith("- Be brief. (discard, -0.30)\n")
    shared = _shared_prefix(second, other_file)
    assert "Be concrete." in shared and "Answer." not in shared
