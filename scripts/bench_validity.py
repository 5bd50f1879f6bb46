#!/usr/bin/env python3
"""Can a keep be trusted? The keep rule measured on the embedded model, beside the rule it replaced.

    .venv/bin/python scripts/bench_validity.py [--aa-trials 16] [--aa-studies 4] [--aa-seed 200]
        [--power-tries 5] [--normal-trials 8] [--planted-repeats 3] [--table-nulls 5] [--table-sets 6]
        [--table-seed 500] [--table FILE] [--stages planted,table,aa,power,normal] [--workspace DIR] [--out runs/bench]

Five stages, each on a fresh copy of the starter workspace (or of --workspace DIR, such as benchmarks/suite),
written to validity.md and validity.json:

  - planted: whether an instruction edit has a real effect on this model at all: each edit tried as a
    planted improvement (a producer.md that restates the task, a planner.md sabotaged to one sentence)
    against the starter, paired on the search tasks under fresh seed sets (1000, 1001, …) no try uses;
  - table: the starter, 5 null edits of its producer.md and the planted improvement (spiked, as below),
    each evaluated once under 6 seed sets (500 …) on the search and holdout tasks (bench/score_table.py);
    then the keep rule's race (search/race.py itself) replayed over every ordered pair of them and every
    ordered choice of seed sets (bench/resample.py): thousands of A/A and power decisions for ~750 calls,
    under the configured rule and under other noise_repeats / across_tasks settings. --table FILE keeps
    the table there: an existing one is resumed, a complete one costs no model call
    (docs/bench/validity-table.json is the starter's behind docs/BENCHMARKS.md, house-style/validity-table.json
    the 8-task suite's); a table grows when asked for more null edits or seed sets. Behind the paired pruner
    too, at its own level and bolder ones;
  - aa: studies whose every variant is a null edit (more spaces at one place), 4 studies × 4 trials, each
    study with its own seeds (200, 210, …: one incumbent draw, lucky or not, is not the noise): every keep
    is a false keep. Beside it, how many the old rule (one evaluation, > keep_threshold) would have kept;
  - power: SmolLM2-135M all but ignores its instructions, so no edit has a real effect to detect; the power
    check spikes one of known size into real runs (autoresearch/bench/spike.py: the judge gives answers
    written under the planted producer.md one point more per dimension, +0.7 on a task's composite, while
    plans, answers, criteria and noise stay the model's). 5 studies, each with its own seeds (100, 110, …),
    whose one trial proposes the planted producer.md: how often the rule keeps it;
  - normal: a study of 8 trials with the model's own proposals: of its keeps, how many also gained on the
    holdout tasks (and the same over every keep of the run).
Model calls per trial are counted for both rules: the paired rule's as spent; the old rule's as it would
have spent them (the proposer, the screen, and the holdout tasks of each trial it would have kept).

Default size on the embedded SmolLM2-135M, 2 cores (a task: 3 calls; the starter confirms on 4 seed sets):
planted 3 × 3 × 4 tasks = 108 calls; table 7 × 6 × 6 tasks × 3 = 756; aa 4 × (baseline 54 + 4 trials × 13
to 55); power 5 × (54 + 55); normal 54 + 8 × (1 + 12 to 54) → roughly 2,100 calls, about 1 h 45 min.

--backend fake (test-only) runs everything on a scripted pipeline in seconds; its figures mean nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from autoresearch.bench.validity import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
