"""A scripted pipeline for the shared-study workers (tests/search/test_shared_postgres.py):
`python shared_pipeline.py run …` is the real `autoresearch` command on a fake model (autoresearch.testing).

The score is a function of the instructions: the producer echoes them and the judge gives one point per
'!' (spread over its five dimensions). The proposer adds a mark to its parent most of the time, so the
workers keep often and race each other for the same incumbent version; small random delays interleave them.
"""

from __future__ import annotations

import os
import sys

from autoresearch.cli.main import main
from autoresearch.lm.backends import override_factory
from autoresearch.testing import ScriptedPipeline


def _propose(parent: str) -> tuple[str, str]:
    if PIPELINE.rng.random() < 0.8:
        return "one more mark", parent + "!"
    return "a calmer variant", parent.replace("!", "", 1) + " Calm."


# SCRIPTED_DELAY_S: every call takes this long (a test that stops a command part-way needs the time to).
_DELAY = float(os.environ.get("SCRIPTED_DELAY_S", "0"))
PIPELINE = ScriptedPipeline(propose=_propose, spread=True, delay=(_DELAY, _DELAY) if _DELAY else (0.002, 0.02),
                            seed=os.getpid())

if __name__ == "__main__":
    override_factory(PIPELINE.factory)  # every role on the scripted fake, in the real command
    main(args=sys.argv[1:], prog_name="autoresearch")
