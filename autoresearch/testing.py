"""The shipped fakes, for tests and for trying the loop without a model: one scripted pipeline whose score
is a function of its instructions, the FakeBackend and FaultyBackend it runs on, and a meter of fixed joules.
Their figures mean nothing about models. To run the real `autoresearch` command on a scripted pipeline (as
the crash and shared-study tests do), call `autoresearch.lm.backends.override_factory(pipeline.factory)`
and then `autoresearch.cli.main.main()`.

The script: the planner returns two fixed steps; the producer "follows" its instructions by echoing them,
so scores track the instruction text; the judge scores the answer (by default one point per '!', at most
10, on every dimension); the proposer returns the next of a list of variants, or what a function makes of
the parent's text. The echo is a copy of the instructions, which the degenerate guard ([scoring]
degenerate_guard) zeroes from four words on: a test whose producer.md has four words or more turns the guard
off or has the producer answer in words of its own.
"""

from __future__ import annotations

import json
import random
import re
import signal
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from .energy import EnergyReading
from .lm.backends import Backend, FakeBackend, FaultyBackend
from .lm.backends.base import CompletionRequest
from .search.proposer import PROPOSER_INSTRUCTIONS

__all__ = ["DIMENSIONS", "FakeBackend", "FaultyBackend", "FixedMeter", "ScriptedPipeline", "bangs",
           "signals_of_a_terminal"]

DIMENSIONS = ("relevance", "completeness", "depth", "specificity", "structure")  # the starter rubric's
JUDGE_HINT = "Score each dimension"
_CURRENT = re.compile(r"<current_instructions>\n(.*?)\n</current_instructions>", re.S)
_ANSWER = re.compile(r"<answer>\n(.*)\n</answer>", re.S)

Score = Callable[[str, str], float]  # (answer, task) → judge score
Propose = Callable[[str], "tuple[str, str]"]  # parent's text → (idea, new instructions)


def signals_of_a_terminal() -> None:
    """For a test's child process (Popen's preexec_fn): Ctrl-C and the terminal's hangup at their defaults, as a
    command started from a terminal has them. A suite started in the background of a shell passes SIGINT on
    ignored, one under nohup SIGHUP, and the commands rightly keep ignoring what they were started ignoring, so a
    test of what those signals do would fail for how the suite was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def bangs(text: str) -> float:
    """The default score: one judge point per '!' in the text, at most 10."""
    return float(min(10, text.count("!")))


class ScriptedPipeline:
    """Every role on one FakeBackend, each request answered by the step of the pipeline that sent it.

    variants: the proposer's texts, in order ("" once they run out: no usable variant); or propose: a
    function of the parent's text. spread: the judge gives min(50, '!' count) points spread over the
    dimensions instead of score() on each. delay: a random pause per call (seconds, low and high), so that
    concurrent workers interleave and kills land anywhere. faults: wrap the backend in a FaultyBackend.
    """

    def __init__(self, variants: Iterable[str] = (), score: Score | None = None, *, propose: Propose | None = None,
                 spread: bool = False, delay: tuple[float, float] | None = None, seed: int | None = None,
                 faults: dict[str, Any] | None = None, dimensions: Sequence[str] = DIMENSIONS):
        self.variants = list(variants)
        self.dimensions = tuple(dimensions)
        self.score = score or (lambda answer, task: bangs(answer))
        self.propose = propose
        self.spread = spread
        self.delay = delay
        self.rng = random.Random(seed)
        self.proposals = 0
        self.calls_by_role: dict[str, int] = {}
        self.lock = threading.Lock()
        fake = FakeBackend(self.respond, models=["smollm2-135m"])
        self.backend: Backend = FaultyBackend(fake, **faults) if faults else fake

    def factory(self, role_config: Any, backends_config: Any) -> Backend:
        """A backend factory (`backend_factory=` of Study and Harness): the same fake for every role."""
        return self.backend

    @staticmethod
    def role_of(request: CompletionRequest) -> str:
        """Which step sent a request: planner, evaluator (the judge), proposer or producer."""
        system = request.messages[0].content if request.messages else ""
        if system.startswith(PROPOSER_INSTRUCTIONS.strip()[:40]):
            return "proposer"
        if JUDGE_HINT in system:
            return "evaluator"
        if '"steps"' in json.dumps(request.json_schema or {}):
            return "planner"
        return "producer"

    def respond(self, request: CompletionRequest) -> str:
        if self.delay:
            time.sleep(self.rng.uniform(*self.delay))
        role = self.role_of(request)
        with self.lock:
            self.calls_by_role[role] = self.calls_by_role.get(role, 0) + 1
        user = request.messages[-1].content if request.messages else ""
        if role == "proposer":
            return self._proposal(user)
        if role == "evaluator":
            return self._judgement(request, user)
        if role == "planner":
            return json.dumps({"steps": ["say it", "stop"]})
        return request.messages[0].content  # the producer echoes its instructions

    def _proposal(self, user: str) -> str:
        if self.propose is not None:
            match = _CURRENT.search(user)
            idea, text = self.propose((match.group(1) if match else "Answer.").strip())
            return json.dumps({"idea": idea, "new_instructions": text})
        with self.lock:
            text = self.variants[self.proposals] if self.proposals < len(self.variants) else ""
            self.proposals += 1
            number = self.proposals
        return json.dumps({"idea": f"variant {number}", "new_instructions": text})

    def _judgement(self, request: CompletionRequest, user: str) -> str:
        match = _ANSWER.search(user)
        answer = match.group(1) if match else ""
        dimensions = self.dimensions_of(request)
        if self.spread:
            total = min(50, answer.count("!"))
            scores = {d: total // len(dimensions) + (1 if i < total % len(dimensions) else 0)
                      for i, d in enumerate(dimensions)}
            return json.dumps({**scores, "critique": "more marks"})
        task = user.split("\n", 1)[1].split("\n\nAnswer", 1)[0] if "\n" in user else ""
        value = int(self.score(answer, task))
        return json.dumps({**{d: value for d in dimensions}, "critique": "be more emphatic"})

    def dimensions_of(self, request: CompletionRequest) -> Sequence[str]:
        """The dimensions the judge scores (the starter rubric's unless told otherwise)."""
        return self.dimensions


class FixedMeter:
    """A meter by which every call costs the same joules, so energy splits are exact."""

    source = "estimate"

    def __init__(self, joules: float = 5.0):
        self.joules = joules

    def start(self) -> None:
        return None

    def stop(self, token: Any, *, wall_s: float, cpu_s: float) -> EnergyReading:
        return EnergyReading(self.joules, "estimate")
