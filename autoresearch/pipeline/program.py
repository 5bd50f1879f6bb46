"""The program under optimization, as DSPy sees it: planner → producer (→ revise) as a dspy.Module, the fixed
judge beside it (not a module, so no optimizer tunes it), their signatures, and prompt_format: how they render."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import dspy
from pydantic import Field

from ..evaluation import judge_score
from ..lm.adapter import DataField, GrammarAdapter, is_plain_text, output_model
from ..workspace.suite import Rubric
from ..workspace.workspace import Workspace, text_hash

_STEP_NUMBER = re.compile(r"^\s*(?:step\s*)?\d+[.):]\s*", re.IGNORECASE)  # models often number steps themselves
Score = Literal[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
REVISE_SUFFIX = (
    "\n\nYou are revising your own draft. Keep what is good, fix every point of the critique, "
    "and return the whole revised answer."
)


class PlanSteps(dspy.Signature):
    """Plan how to answer the task."""

    task: str = dspy.InputField()
    steps: Annotated[list[str], Field(min_length=1, max_length=6)] = dspy.OutputField()


class ProduceAnswer(dspy.Signature):
    """Answer the task following the plan."""

    task: str = dspy.InputField()
    plan: str = dspy.InputField()
    answer: str = dspy.OutputField()


class ReviseAnswer(dspy.Signature):
    """Revise the draft answer using the critique."""

    task: str = dspy.InputField()
    plan: str = dspy.InputField()
    draft: str = dspy.InputField()
    critique: str = dspy.InputField()
    answer: str = dspy.OutputField()


def judge_signature(rubric: Rubric, instructions: str) -> type[dspy.Signature]:
    """task + answer → one 0–10 score per rubric dimension and a critique."""
    fields: dict[str, tuple[object, object]] = {
        "task": (str, dspy.InputField()),
        "answer": (str, DataField("the text to grade")),
    }
    for dim in rubric.dimensions:
        fields[dim.name] = (Score, dspy.OutputField(desc=dim.description))
    fields["critique"] = (str, dspy.OutputField(desc="what to fix, in one or two sentences"))
    rubric_text = "\n".join(f"- {d.name} (weight {d.weight:g}): {d.description}" for d in rubric.dimensions)
    return dspy.Signature(fields, f"{instructions.strip()}\n\nScore each dimension from 0 to 10:\n{rubric_text}")


@dataclass(frozen=True)
class Judgement:
    dimensions: dict[str, float]
    critique: str
    score: float


def prompt_format(workspace: Workspace) -> str:
    """A hash of the messages (and reply schemas) each stage sends, rendered with placeholders for the instructions
    and inputs: what this harness and DSPy under it make of a call, apart from the texts being optimized. A new
    version of either that renders a prompt otherwise moves the scores as another model would (one space moves
    the starter's composite by more than the keep threshold), so a study's identity holds it (search/model_watch.py)."""
    adapter = GrammarAdapter(restate=workspace.settings.workspace.restate_instructions)
    stages = [PlanSteps.with_instructions("<planner>"), ProduceAnswer.with_instructions("<producer>"),
              ReviseAnswer.with_instructions("<producer>" + REVISE_SUFFIX),
              judge_signature(workspace.rubric, "<evaluator>")]
    rendered: list[Any] = []
    for signature in stages:
        rendered.append(adapter.format(signature, [], {name: f"<{name}>" for name in signature.input_fields}))
        if not is_plain_text(signature):  # a structured reply: its schema is part of the request
            rendered.append(output_model(signature).model_json_schema())
    return text_hash(json.dumps(rendered, sort_keys=True, default=str))


class Judge:
    """The fixed evaluator. Deliberately not a dspy.Module: optimizers must not tune the judge."""

    def __init__(self, rubric: Rubric, instructions: str, lm: dspy.LM):
        self.rubric = rubric
        self.predict = dspy.Predict(judge_signature(rubric, instructions))
        self.predict.set_lm(lm)

    def __call__(self, task: str, answer: str) -> Judgement:
        out = self.predict(task=task, answer=answer)
        dims = {d.name: float(getattr(out, d.name)) for d in self.rubric.dimensions}
        return Judgement(dims, str(out.critique or "").strip(), judge_score(self.rubric, dims))


class Pipeline(dspy.Module):
    """planner → producer, then revise while the judge scores under the pass threshold."""

    def __init__(self, planner: str, producer: str, judge: Judge, *, max_rounds: int, pass_threshold: float):
        super().__init__()
        self.plan = dspy.Predict(PlanSteps.with_instructions(planner))
        self.produce = dspy.Predict(ProduceAnswer.with_instructions(producer))
        self.revise = dspy.Predict(ReviseAnswer.with_instructions(producer.rstrip() + REVISE_SUFFIX))
        self.judge = judge  # a plain object, so DSPy's parameter walk (and its optimizers) never reach it
        self.max_rounds = max_rounds
        self.pass_threshold = pass_threshold

    def forward(self, task: str) -> dspy.Prediction:
        plan = self.make_plan(task)
        draft = self.draft(task, plan)
        first = self.judge(task, draft)
        answer, judgement, rounds = draft, first, 0
        while self.needs_revision(judgement, rounds):
            answer = self.revise_answer(task, plan, answer, judgement.critique)
            judgement = self.judge(task, answer)
            rounds += 1
        return dspy.Prediction(plan=plan, answer_r1=draft, answer=answer, first=first, final=judgement,
                               revisions=rounds)

    # The steps of forward, one model call each; Harness.run_tasks_staged runs each over a whole suite.

    def make_plan(self, task: str) -> str:
        steps = self.plan(task=task).steps
        return "\n".join(f"{i}. {_STEP_NUMBER.sub('', s)}" for i, s in enumerate(steps, 1))

    def draft(self, task: str, plan: str) -> str:
        return self.produce(task=task, plan=plan).answer

    def revise_answer(self, task: str, plan: str, answer: str, critique: str) -> str:
        return self.revise(task=task, plan=plan, draft=answer, critique=critique).answer

    def needs_revision(self, judgement: Judgement, rounds: int) -> bool:
        return judgement.score < self.pass_threshold and rounds < self.max_rounds
