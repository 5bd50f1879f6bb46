"""A scripted pipeline for scripts/crash_test.py, loaded by `autoresearch run` through the TEST-ONLY
AUTORESEARCH_FAKE_PIPELINE hook (autoresearch/lm/backends/__init__.py): every role is a fake model with
small random delays, so that kills land anywhere — mid-task, mid-commit, mid-write.

The judge scores the producer's output by its '!' marks (the producer echoes its instructions), and
the proposer mostly adds one, so trials keep, discard, repeat themselves, fail and get pruned.
"""

from __future__ import annotations

import json
import os
import random
import re
import time

from autoresearch.lm.backends import FakeBackend, FaultyBackend
from autoresearch.lm.backends.base import CompletionRequest
from autoresearch.search.proposer import PROPOSER_INSTRUCTIONS

DIMENSIONS = ("relevance", "completeness", "depth", "specificity", "structure")
_rng = random.Random(int(os.environ.get("CRASH_PIPELINE_SEED", "0")) + os.getpid())
_DELAY = (0.003, float(os.environ.get("CRASH_PIPELINE_MAX_DELAY", "0.03")))


def _respond(request: CompletionRequest) -> str:
    time.sleep(_rng.uniform(*_DELAY))
    system = request.messages[0].content
    user = request.messages[-1].content
    if system.startswith(PROPOSER_INSTRUCTIONS.strip()[:40]):
        match = re.search(r"<current_instructions>\n(.*?)\n</current_instructions>", user, re.S)
        parent = (match.group(1) if match else "Answer.").strip()
        roll = _rng.random()
        if roll < 0.55:
            text, idea = parent + "!", "one more mark"
        elif roll < 0.75:
            text, idea = parent.replace("!", "", 2) + f" Be {_rng.choice(['brief', 'calm', 'exact'])}.", "fewer marks"
        elif roll < 0.9:
            text, idea = "Answer plainly.", "a plain variant"  # identical after its first time
        else:
            text, idea = "", "nothing"  # no usable variant: a failed trial
        return json.dumps({"idea": idea, "new_instructions": text})
    if "Score each dimension" in system:
        answer = re.search(r"<answer>\n(.*)\n</answer>", user, re.S)
        total = min(50, (answer.group(1) if answer else "").count("!"))
        dims = {d: total // 5 + (1 if i < total % 5 else 0) for i, d in enumerate(DIMENSIONS)}
        return json.dumps({**dims, "critique": "more marks"})
    if '"steps"' in json.dumps(request.json_schema or {}):
        return json.dumps({"steps": ["say it", "stop"]})
    return system  # the producer echoes its instructions


_BACKEND = FaultyBackend(FakeBackend(_respond, models=["smollm2-135m"]), share=0.02,
                         modes=("empty", "context_length"), seed=os.getpid())


def factory(role_config, backends_config):
    return _BACKEND
