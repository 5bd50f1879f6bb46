"""A scripted pipeline for the shared-study workers (tests/search/test_shared_postgres.py), loaded by
`autoresearch run` through the TEST-ONLY AUTORESEARCH_FAKE_PIPELINE hook.

The score is a function of the instructions: the producer echoes them and the judge gives one point per
'!' (spread over its five dimensions). The proposer adds a mark to its parent most of the time, so the
workers keep often and race each other for the same incumbent version; small random delays interleave them.
"""

from __future__ import annotations

import json
import os
import random
import re
import time

from autoresearch.lm.backends import FakeBackend
from autoresearch.lm.backends.base import CompletionRequest
from autoresearch.search.proposer import PROPOSER_INSTRUCTIONS

DIMENSIONS = ("relevance", "completeness", "depth", "specificity", "structure")
_rng = random.Random(os.getpid())


def _respond(request: CompletionRequest) -> str:
    time.sleep(_rng.uniform(0.002, 0.02))
    system = request.messages[0].content
    user = request.messages[-1].content
    if system.startswith(PROPOSER_INSTRUCTIONS.strip()[:40]):
        match = re.search(r"<current_instructions>\n(.*?)\n</current_instructions>", user, re.S)
        parent = (match.group(1) if match else "Answer.").strip()
        if _rng.random() < 0.8:
            return json.dumps({"idea": "one more mark", "new_instructions": parent + "!"})
        return json.dumps({"idea": "a calmer variant", "new_instructions": parent.replace("!", "", 1) + " Calm."})
    if "Score each dimension" in system:
        answer = re.search(r"<answer>\n(.*)\n</answer>", user, re.S)
        total = min(50, (answer.group(1) if answer else "").count("!"))
        dims = {d: total // 5 + (1 if i < total % 5 else 0) for i, d in enumerate(DIMENSIONS)}
        return json.dumps({**dims, "critique": "more marks"})
    if '"steps"' in json.dumps(request.json_schema or {}):
        return json.dumps({"steps": ["say it", "stop"]})
    return system  # the producer echoes its instructions


_BACKEND = FakeBackend(_respond, models=["smollm2-135m"])


def factory(role_config, backends_config):
    return _BACKEND
