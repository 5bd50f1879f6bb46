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
            return replace(found, text=_edit_json(found.text, "answer", lambda a: f"{a.rstrip()} {TAG}"))
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


def _edit_json(text: str, key: str, edit) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(data, dict) and isinstance(data.get(key), str):
        data[key] = edit(data[key])
        return json.dumps(data)
    return text


def _raise_marks(text: str, bonus: float) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text
    if not isinstance(data, dict):
        return text
    for key, value in data.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            data[key] = min(10, value + bonus)
    return json.dumps(data)
