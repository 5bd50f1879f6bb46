#!/usr/bin/env python3
"""Where a run's model calls go, role by role, and how much of each prompt the model computed.

    .venv/bin/python scripts/bench_calls.py [--trials 12] [--seed 7] [--workspace DIR] [--out FILE.json] [--no-reuse]

Runs a study of --trials trials (after its baseline) on a fresh copy of the workspace (the starter by
default) and counts every completed model call per role: prompt tokens sent, the part the model computed
(the rest it held from an earlier call: llama.cpp's prefix match and the embedded prefix states), seconds
computing the prompt, completion tokens and seconds in calls. The embedded backend reports what it
computed; a server backend that does not shows "?". The machine is printed with the figures.

The figures compare prompt layouts: run it before and after a change to a role's prompt, with the same
seed, on the same machine and build. The trials diverge once a reply differs, so compare per-call figures
(tokens computed and seconds a call), not totals.

Default size on the embedded SmolLM2-135M with 2 CPU cores: the baseline (2 seed sets × 4 tasks × 3 calls)
and 12 trials of 1–3 proposer calls and up to 12 pipeline calls each: about 150–200 calls, 3–5 minutes.

A reply the run reused for a request identical to one it sent before (lm/replies.py) is no call and is
counted apart ("replies reused"); --no-reuse makes every call. With the same seed on the embedded model the
two runs' trials are the same (its replies do not change), so their totals compare.

--backend fake (test-only) runs on a scripted pipeline in seconds; its figures mean nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from autoresearch.bench.call_costs import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
