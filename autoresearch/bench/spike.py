"""A known effect spiked into real model runs, for measuring the keep rule's power against real noise.

Why: SmolLM2-135M all but ignores its role instructions (bench_validity's planted check measures this), so
no edit of them has a real effect to detect on this model. Here the plan, the answer, the criteria and
every score's noise stay the real model's; only the judge's marks of answers written under the planted
instructions are raised by a known number of points, so the rule's power is measured for an effect of
known size.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from ..lm.backends import create_backend
from ..lm.backends.base import Completion, CompletionRequest
from ..testing import ScriptedPipeline
from ..workspace.config import ScoringConfig

# The planted edit bench_validity races: its producer.md, the sentence that marks an answer written under it,
# and the judge points per dimension such an answer gets more (+0.7 on a task's composite at the default weights).
PLANTED = "You are a helpful assistant. Answer the task using the plan. Name the task's own key terms.\n"
MARKER = "Name the task's own key terms."
SPIKE = 1.0
SPIKE_COMPOSITE = ScoringConfig().judge_weight * SPIKE  # what SPIKE adds to a task's composite (default weights)
TAG = "(planted)"  # appended to an answer written under the planted instructions; the judge side looks for it
_ANSWER = re.compile(r"<answer>\n(.*)\n</answer>", re.S)


class SpikedBackend:
    """Wraps a role's backend: tags answers written under `marker`, and adds `bonus` to the judge's marks
    (each dimension, clamped to 10) of a tagged answer."""

    def __init__(self, inner: Any, marker: str, bonus: float):
        self.inner, self.marker, self.bonus = inner, marker, bonus
        self.name = inner.name
        self.in_process = inner.in_process

    def complete(self, request: CompletionRequest) -> Completion:
        found = self.inner.complete(request)
        role = ScriptedPipeline.role_of(request)
        system = request.messages[0].content if request.messages else ""
        if role == "producer" and self.marker in system:
            return replace(found, text=_tag_answer(found.text))
        answer = _ANSWER.search(request.messages[-1].content if request.messages else "")
        if role == "evaluator" and answer and TAG in answer.group(1):
            return replace(found, text=_raise_marks(found.text, self.bonus))
        return found

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def spiked_factory(marker: str, bonus: float, inner=None):
    """A backend_factory whose backends spike the effect (see SpikedBackend)."""
    make = inner or create_backend
    return lambda role, backends: SpikedBackend(make(role, backends), marker, bonus)


def _tag_answer(text: str) -> str:
    """The producer's reply with TAG at the end of its answer: plain text as the adapter asks for a single
    text field, or (where a backend answered in JSON) the "answer" field of the object."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return f"{text.rstrip()} {TAG}"
    if isinstance(data, dict) and isinstance(data.get("answer"), str):
        data["answer"] = f"{data['answer'].rstrip()} {TAG}"
        return json.dumps(data)
    return f"{text.rstrip()} {TAG}"


_MARK = re.compile(r'("(?!critique")[^"]+"\s*:\s*)(\d+(?:\.\d+)?)')


def _raise_marks(text: str, bonus: float) -> str:
    """The judge's reply with every numeric mark raised by bonus (at most 10), edited in place: a small
    model's JSON is often cut off after the marks, and the adapter still reads those."""
    def raise_one(match: re.Match[str]) -> str:
        value = min(10.0, float(match.group(2)) + bonus)
        return match.group(1) + (str(int(value)) if value.is_integer() else str(value))

    return _MARK.sub(raise_one, text)
