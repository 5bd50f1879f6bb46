"""TEST-ONLY: a scripted fake pipeline for `--backend fake`, so the benchmarks' smoke tests run in seconds.

autoresearch.testing's ScriptedPipeline, answering every prompt the five methods send, MIPROv2's and GEPA's
own included: the producer echoes its instructions, the judge gives one point per '!' in the answer
(so a variant's score is the number of '!' in its producer instructions), and anything that asks for
new instructions (autoresearch's proposer, MIPROv2's instruction generator, GEPA's reflection) gets
the current text with a random number of '!' added or removed. Its figures mean nothing about models.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from ..lm.backends.base import CompletionRequest
from ..testing import ScriptedPipeline

_GEPA_CURRENT = re.compile(r"^Current instruction:\n(.*?)(?:\n\n[A-Z][\w ]*:|\Z)", re.S | re.M)


class FakePipeline(ScriptedPipeline):
    """autoresearch.testing's scripted pipeline, answering the DSPy optimizers' own prompts too; a seeded RNG
    for proposals."""

    def __init__(self, seed: int = 0):
        super().__init__(propose=lambda parent: ("more emphasis", self._mutate(parent)), seed=seed)

    def dimensions_of(self, request: CompletionRequest) -> Sequence[str]:
        """Whatever the benchmark's rubric names: the judge's JSON schema lists them."""
        return [k for k in (request.json_schema or {}).get("properties", {}) if k != "critique"]

    def respond(self, request: CompletionRequest) -> str:
        user = request.messages[-1].content if request.messages else ""
        props = (request.json_schema or {}).get("properties", {})
        if self.role_of(request) != "producer" or (user.startswith("Task:") and "\n\nPlan:" in user):
            return super().respond(request)  # planner, judge, our proposer, producer and reviser
        if props:  # any other structured request: every field filled
            return json.dumps({k: self._fill(v) for k, v in props.items()})
        match = _GEPA_CURRENT.search(user)  # GEPA's reflection, MIPROv2's proposer, its summaries
        return self._mutate(match.group(1) if match else "Answer the task using the plan.")

    def _mutate(self, text: str) -> str:
        text = text.strip() or "Answer the task."
        with self.lock:
            change = self.rng.choice((-2, -1, 1, 2, 3))
        if change < 0:
            for _ in range(-change):
                text = text.replace("!", "", 1)
            return text.rstrip() + " Be plain."
        return text.rstrip() + " Be emphatic" + "!" * change

    @staticmethod
    def _fill(spec: dict[str, Any]) -> Any:
        kind = spec.get("type")
        if kind == "array":
            return ["item"]
        if kind in ("integer", "number"):
            return 5
        if kind == "boolean":
            return True
        if "enum" in spec:
            return spec["enum"][0]
        return "text"
