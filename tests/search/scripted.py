"""A scripted pipeline on the fake backend: the judge's score is a function of the producer's instructions."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Callable, Iterable

from autoresearch.lm.backends import FakeBackend
from autoresearch.lm.backends.base import CompletionRequest
from autoresearch.search.proposer import PROPOSER_INSTRUCTIONS

DIMENSIONS = ("relevance", "completeness", "depth", "specificity", "structure")


def bangs(text: str) -> float:
    """The default score function: one judge point per '!' in the instructions, at most 10."""
    return float(min(10, text.count("!")))


class ScriptedPipeline:
    """Dispatches each request by role: the producer echoes its instructions, the judge scores them."""

    def __init__(self, variants: Iterable[str] = (), score: Callable[[str, str], float] | None = None):
        self.variants = list(variants)
        self.score = score or (lambda answer, task: bangs(answer))
        self.proposals = 0
        self.calls_by_role: dict[str, int] = {}
        self.backend = FakeBackend(self.respond, models=["smollm2-135m"])

    def factory(self, role_config, backends_config):
        return self.backend

    def _count(self, role: str) -> None:
        self.calls_by_role[role] = self.calls_by_role.get(role, 0) + 1

    def respond(self, request: CompletionRequest) -> str:
        system = request.messages[0].content
        user = request.messages[-1].content
        if system.startswith(PROPOSER_INSTRUCTIONS.strip()[:40]):
            self._count("proposer")
            text = self.variants[self.proposals] if self.proposals < len(self.variants) else ""
            self.proposals += 1
            return json.dumps({"idea": f"variant {self.proposals}", "new_instructions": text})
        if "Score each dimension" in system:
            self._count("evaluator")
            answer = re.search(r"<answer>\n(.*)\n</answer>", user, re.S).group(1)
            task = user.split("\n", 1)[1].split("\n\nAnswer", 1)[0]
            value = int(self.score(answer, task))
            return json.dumps({**{d: value for d in DIMENSIONS}, "critique": "be more emphatic"})
        if '"steps"' in json.dumps(request.json_schema or {}):
            self._count("planner")
            return json.dumps({"steps": ["say it", "stop"]})
        self._count("producer")
        # The producer "follows" its instructions by echoing them, so scores track the instruction text.
        return system


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


# A search space of one operator and one temperature: trials differ only by the scripted variants.
ONLY_PRODUCER = '\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\n'


def producer_only(root: Path, extra_config: str = "") -> Path:
    """Make producer.md the only optimizable file (and append extra_config), committed."""
    text = (root / "autoresearch.toml").read_text()
    (root / "autoresearch.toml").write_text(text.replace(
        'optimizable = ["producer.md", "planner.md"]', 'optimizable = ["producer.md"]') + extra_config)
    git(root, "commit", "-qam", "only producer")
    return root
