#!/usr/bin/env python3
"""What the framework costs around the model calls, what its cache saves, and what pruning saves.

    .venv/bin/python scripts/bench_overhead.py [--trials 4] [--workspace DIR] [--n-ctx N] [--out runs/bench]

Three measurements, each on a fresh copy of the workspace (the starter by default), written to
overhead.md and overhead.json under --out (the studies' own output goes to overhead.log):

  - Framework overhead: for every trial of the two pruning studies below, its wall time minus the time
    during which a model call ran (measured around each backend call; overlapping calls, as tasks run side
    by side, count once), as a share of the trial. Target: < 2%.
  - Cache: a study of two trials whose proposer (scripted for this check only) proposes the same variant
    twice; the second time the loop finds it in the store (find_variant) and makes no model call.
  - Pruning: two studies with the same seed and --trials trials each, one with the Wilcoxon pruner and one
    without: model calls per study and the best composite each reached. Every task of the workspace is a
    search task here (the starter's 4 + 2): the pruner needs 4 paired tasks before it can stop a variant,
    so with only 4 search tasks it could never save a call.

Default size, on the embedded SmolLM2-135M with 2 CPU cores (a task: 3 calls at about 2–4 s each):
pruning: 2 studies × (baseline 6 tasks × 3 = 18 + 4 trials × (1 proposer call + at most 18)) ≤ 188 calls;
cache: baseline 18 (4 search + 2 holdout tasks) + 12 + 0 = 30 calls → at most about 220 calls ≈ 7–15 min.
Together with scripts/bench_search.py at its defaults (≈ 550 calls) that is about 25–52 min.

--backend fake (test-only) runs everything on a scripted pipeline in seconds; its figures mean nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from autoresearch.bench.overhead import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
