#!/usr/bin/env python3
"""Five ways to search for better instructions, side by side, on one budget of model calls.

    .venv/bin/python scripts/bench_search.py [--budget 100] [--seed N | --seeds K] [--methods autoresearch,mipro,…]
                                             [--workspace DIR] [--holdout-repeats 3] [--n-ctx N] [--out runs/bench]

Every method gets the same harness program (planner → producer → judge, autoresearch.pipeline.program.Pipeline),
the same task suite (search tasks to search on, holdout tasks to check the pick afterwards), the same
portfolio, adapter and n_ctx, and the same budget of model calls, counted at the backend: the (budget + 1)-th
call is refused and the method stops there. The methods:

  1. autoresearch: the loop as shipped (Study.optimize: the answer's shape first, TPE recipes, the paired
     pruner, the paired keep rule);
  2. dspy.MIPROv2 on the same dspy.Module, instruction-only (0 demos in the prompts), 3 candidates per
     predictor and MIPROv2's recommended number of trials for that;
  3. dspy.GEPA on the same module, the proposer role's model as its reflection LM;
  4. greedy: one proposal per step from the incumbent (recipes drawn uniformly), the same keep rule, no pruner;
  5. random: the same proposer with every recipe drawn uniformly (parent included), no pruner.

and one ablation, run only when named and never counted as a peer: `unpruned`, the loop as shipped with
`[search] pruner = "none"`. `--methods unpruned --seed N` beside the loop's run of seed N adds the pruner's A/B to
the report (search.md's last section: whether the arms agree until the first prune, what that pruned trial became
without the pruner, the calls a variant cost in each arm and whether the pick is the same: goal 3 measured, not
estimated), and its shadow (the unpruned run asks the loop's pruner after every screen task and never obeys it:
where it would have stopped each trial, what that trial went on to do, the calls each stop would have saved, and
the same screens replayed at bolder levels).

One command per seed: `--seed N` runs every method with seed N and writes seed-N.json under --out; the report
(search.md: a row per method, mean ± sd over seeds, and a row per seed; search.svg: best search composite
against model calls, mean over seeds, with the target; search.json: each method's summary) is rebuilt from
every seed file there, so seeds run on different days add up. Seed files of other settings (budget, workspace,
holdout repeats, …) are refused. `--seeds K` runs seeds 0 … K-1 in one command. `--methods gepa --seed N` where
seed-N.json exists runs GEPA again and keeps that file's runs of the other methods, if they were measured from the
same start (options, suite and the start's scores; else refused before any method runs). search.log keeps the
methods' own output.

The benchmark as the issue sets it (docs/BENCHMARKS.md): the house-style suite, 300 calls per method, 5 seeds,
a 4096-token window for every role (MIPROv2's proposal prompt outgrows 2048 tokens and stops it):

    for seed in 0 1 2 3 4; do
      .venv/bin/python scripts/bench_search.py --workspace benchmarks/suite --budget 300 --n-ctx 4096 \
          --seed $seed --out docs/bench/house-style
    done

Size on the embedded SmolLM2-135M with 2 CPU cores: a task costs 3 calls (plan, draft, judge) at about 1–2 s.
5 methods × 300 calls = 1,500 calls per seed, plus the calls outside the budgets: the starting instructions on
the 8 search tasks once and the 8 holdout tasks 3 times (96 calls), and each method's pick on the holdout tasks
3 times (72 calls, none when the pick is the start) → 1,600–1,950 calls, under an hour and a half per seed.

Without --draws every seed evaluates under the portfolio's own seeds (the answers and judgements of seed 1 are those
of seed 0; only the methods' proposals and samplers differ), so a method that follows rules walks one path on every
seed. `--draws` makes each seed its own evaluation draw: seed N moves every pipeline role's seed by 1000 × N, for
every method and for the start, whose composites are then measured per seed (seed 0 is the configured draw):

    .venv/bin/python scripts/bench_search.py --workspace benchmarks/suite --budget 300 --n-ctx 4096 --draws \
        --seed N --out docs/bench/house-style-draws

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
