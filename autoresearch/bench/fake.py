"""TEST-ONLY: a scripted fake pipeline for `--backend fake`, so the benchmarks' smoke tests run in seconds.

Like tests/search/scripted.py, but it answers every prompt the five methods send, MIPROv2's and GEPA's
own included: the producer echoes its instructions, the judge gives one point per '!' in the answer
(so a variant's score is the number of '!' in its producer instructions), and anything that asks for
new instructions (autoresearch's proposer, MIPROv2's instruction generator, GEPA's reflection) gets
the current text with a random number of '!' added or removed. Its figures mean nothing about models.
"""

from __future__ import annotations

import json
import random
import re
import threading
from typing import Any

from ..lm.backends import FakeBackend
from ..lm.backends.base import CompletionRequest

_CURRENT = re.compile(r"<current_instructions>\n(.*)\n</current_instructions>", re.S)
_GEPA_CURRENT = re.compile(r"^Current instruction:\n(.*?)(?:\n\n[A-Z][\w ]*:|\Z)", re.S | re.M)
_ANSWER = re.compile(r"<answer>\n(.*)\n</answer>", re.S)
DIMENSIONS_HINT = "Score each dimension"


class FakePipeline:
    """One FakeBackend for every role; replies depend on the request, with a seeded RNG for proposals."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.backend = FakeBackend(self.respond, models=["smollm2-135m"])

    def factory(self, role_config, backends_config):
        return self.backend

    def respond(self, request: CompletionRequest) -> str:
        system = request.messages[0].content if request.messages else ""
        user = request.messages[-1].content if request.messages else ""
        schema = request.json_schema or {}
        props = schema.get("properties", {})
        if "steps" in props:  # the planner
            return json.dumps({"steps": ["say it", "stop"]})
        if DIMENSIONS_HINT in system:  # the judge: one point per '!'
            match = _ANSWER.search(user)
            value = min(10, (match.group(1) if match else user).count("!"))
            return json.dumps({**{k: value for k in props if k != "critique"}, "critique": "be more emphatic"})
        if "new_instructions" in props:  # autoresearch's proposer
            match = _CURRENT.search(user)
            return json.dumps({"idea": "more emphasis", "new_instructions": self._mutate(match.group(1) if match else "")})
        if user.startswith("Task:") and "\n\nPlan:" in user:  # producer (and reviser): echo the instructions
            return system
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
