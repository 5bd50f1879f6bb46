#!/usr/bin/env python3
"""Five ways to search for better instructions, side by side, on one budget of model calls.

    .venv/bin/python scripts/bench_search.py [--budget 100] [--seeds 1] [--methods autoresearch,mipro,…]
                                             [--workspace DIR] [--n-ctx N] [--out runs/bench]

Every method gets the same harness program (planner → producer → judge, autoresearch.pipeline.harness.Pipeline),
the same task suite (search tasks to search on, holdout tasks to check the pick afterwards), the same
portfolio and the same budget of model calls, counted at the backend: the (budget + 1)-th call is refused
and the method stops there. The methods:

  1. autoresearch: the loop as shipped (Study.optimize: TPE recipes, Wilcoxon pruning, keep above 0.1);
  2. dspy.MIPROv2 on the same dspy.Module, instruction-only (0 demos in the prompts), 3 candidates per
     predictor and MIPROv2's recommended number of trials for that;
  3. dspy.GEPA on the same module, the proposer role's model as its reflection LM;
  4. greedy: one proposal per step from the incumbent (recipes drawn uniformly), keep above 0.1, no pruner;
  5. random: the same proposer with every recipe drawn uniformly (parent included), no pruner.

Written under --out: search.md (the table, with the machine), search.svg (best search composite against
model calls, per method and seed), search.json (everything, per run) and search.log (the methods' own output).

Default size, on the embedded SmolLM2-135M with 2 CPU cores: a task costs 3 calls (plan, draft, judge;
the starter turns revisions off) at about 2–4 s each. 5 methods × 100 calls = 500 calls, plus at most
18 + 5 × 6 = 48 calls outside the budgets (the starting instructions on the 4 search and 2 holdout tasks;
each method's pick on the holdout tasks) → about 550 calls ≈ 18–37 min. With --seeds 3 it is three
times that. A budget of 100 calls is about 6–7 trials of the loop (a trial: 1 proposer call + 12 calls
on the search tasks, + 6 on the holdout tasks when kept; the baseline 18).

--backend fake (test-only) runs everything on a scripted pipeline in seconds; its figures mean nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from autoresearch.bench.search import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
