"""Helpers of the search tests: the scripted pipeline (autoresearch.testing), git, a producer-only workspace."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from autoresearch.testing import DIMENSIONS, ScriptedPipeline, bangs

# The scripted pipeline is shipped with the package (one copy): re-exported for the search tests.
__all__ = ["DIMENSIONS", "ONLY_PRODUCER", "ScriptedPipeline", "SeedJudge", "bangs", "git", "producer_only"]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


# A search space of one operator and one temperature: trials differ only by the scripted variants. No noise
# measurement at the baseline: these tests script their calls by number ("the baseline judged 2 + 1 tasks").
ONLY_PRODUCER = '\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\nnoise_repeats = 1\n'


def producer_only(root: Path, extra_config: str = "") -> Path:
    """Make producer.md the only optimizable file (and append extra_config), committed."""
    text = (root / "autoresearch.toml").read_text()
    (root / "autoresearch.toml").write_text(text.replace(
        'optimizable = ["producer.md", "planner.md"]', 'optimizable = ["producer.md"]') + extra_config)
    git(root, "commit", "-qam", "only producer")
    return root


class SeedJudge(ScriptedPipeline):
    """The judge's score is its own seed mod 10 plus the answer's '!' marks: the seed moves it by chance."""

    def respond(self, request):
        if self.role_of(request) != "evaluator":
            return super().respond(request)
        answer = re.search(r"<answer>\n(.*)\n</answer>", request.messages[-1].content, re.S).group(1)
        value = min(10, request.seed % 10 + answer.count("!"))
        return json.dumps({**{d: value for d in DIMENSIONS}, "critique": "fine"})
