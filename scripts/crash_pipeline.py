"""A scripted pipeline for scripts/crash_test.py: `python scripts/crash_pipeline.py run …` is the real
`autoresearch` command with every role on a fake model (autoresearch.testing), with small random delays, so
that kills land anywhere — mid-task, mid-commit, mid-write.

The judge scores the producer's output by its '!' marks (the producer echoes its instructions), and
the proposer mostly adds one, so trials keep, discard, repeat themselves, fail and get pruned.
"""

from __future__ import annotations

import os
import sys

from autoresearch.cli.main import main
from autoresearch.lm.backends import override_factory
from autoresearch.testing import ScriptedPipeline

_SEED = int(os.environ.get("CRASH_PIPELINE_SEED", "0")) + os.getpid()
_DELAY = (0.003, float(os.environ.get("CRASH_PIPELINE_MAX_DELAY", "0.03")))


def _propose(parent: str) -> tuple[str, str]:
    roll = PIPELINE.rng.random()
    if roll < 0.55:
        return "one more mark", parent + "!"
    if roll < 0.75:
        return "fewer marks", parent.replace("!", "", 2) + f" Be {PIPELINE.rng.choice(['brief', 'calm', 'exact'])}."
    if roll < 0.9:
        return "a plain variant", "Answer plainly."  # identical after its first time
    return "nothing", ""  # no usable variant: a failed trial


PIPELINE = ScriptedPipeline(propose=_propose, spread=True, delay=_DELAY, seed=_SEED,
                            faults={"share": 0.02, "modes": ("empty", "context_length"), "seed": os.getpid()})

if __name__ == "__main__":
    override_factory(PIPELINE.factory)  # every role on the scripted fake, in the real command
    main(args=sys.argv[1:], prog_name="autoresearch")
