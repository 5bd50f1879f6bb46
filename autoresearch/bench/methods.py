"""The five search methods, each run on its own copy of the workspace against one budget of model calls.

- autoresearch: `Study.optimize` as the workspace configures it (by default the answer's shape first, TPE sampler,
  the paired pruner, the paired keep rule).
- mipro: `dspy.MIPROv2` on the harness's own `dspy.Module`, instruction-only (0 demos).
- gepa: `dspy.GEPA` on the same module, the proposer role's model as its reflection LM.
- greedy: the Study with one parent (always the incumbent), recipes drawn uniformly (the first too), no pruner.
- random: the Study with every recipe drawn uniformly (the first and the parent too), no pruner.

And one ablation, run only when named (`--methods unpruned`) and never counted as a peer:

- unpruned: the loop as shipped but `[search] pruner = "none"`, to measure what the pruner saves at an equal best
  score (bench/pruner_ab.py compares it with the loop's run of the same seed); its Study asks the loop's pruner
  in a shadow, never obeyed (bench/pruner_shadow.py: where it would have stopped each trial, on the same path).

Each returns a MethodRun: its model calls (as the store keeps them), the best instructions it would hand
back, their search composite as measured within the budget, and the best composite after each call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..lm.calls import CallRecord, CallTotals

LOOP = "autoresearch"  # the method under test: every other in METHODS is its peer
METHODS = (LOOP, "mipro", "gepa", "greedy", "random")  # what a seed runs by default
UNPRUNED = "unpruned"  # the loop without its pruner: an ablation of the loop, not a peer
ABLATIONS = (UNPRUNED,)
KNOWN = METHODS + ABLATIONS  # in the order a seed file lists its runs
LABELS = {
    "autoresearch": "autoresearch loop (as shipped)",
    "mipro": "dspy.MIPROv2 (0 demos)",
    "gepa": "dspy.GEPA",
    "greedy": "greedy (incumbent only)",
    "random": "random recipes, no pruner",
    UNPRUNED: "the loop without its pruner (ablation)",
}


@dataclass
class BenchContext:
    """What every method shares: the prepared workspace, the backends, a scratch folder."""

    root: Path  # the benchmark's workspace (already prepared: n_ctx and the like applied)
    scratch: Path  # each method and seed gets a copy of root under here
    portfolio: str
    inner_factory: Callable | None = None  # None: the configured backends (create_backend)
    retries: int = 2
    backoff_s: float = 1.0
    mipro_candidates: int = 3


@dataclass
class MethodRun(CallTotals):
    method: str
    seed: int
    limit: int
    calls: list[CallRecord]  # made (the replies reused for identical requests are counted in `reused`)
    wall_s: float
    model_s: float  # seconds inside backend calls
    best_instructions: dict[str, str]
    best_search: float | None  # the best's search composite as measured within the budget (None: never completed)
    trajectory: list[tuple[int, float]]  # (model calls so far, best search composite so far)
    keeps: int  # how often the method replaced its best
    stop: str  # budget | finished | stopped: … | error: …
    used: int = 0  # calls counted by the budget (equals len(calls) unless a call escaped every recorder)
    holdout: float | None = None  # filled in outside the budget
    search_outside: bool = False  # best_search was measured outside the budget (the method never completed one)
    notes: list[str] = field(default_factory=list)
    trials: list[tuple[str, int]] = field(default_factory=list)  # a Study's trials: (status, model calls it made)
    trial_details: list[dict[str, Any]] = field(default_factory=list)  # the same: recipe, delta, stage, why
    holdout_repeats: list[float | None] = field(default_factory=list)  # the pick's holdout composite per repeat
    reused: int = 0  # replies reused for requests identical to earlier ones, instead of calls (lm/replies.py)
    holdout_calls: int = 0  # made evaluating the pick on the holdout tasks, outside the budget
    holdout_s: float = 0.0  # the wall time of that evaluation
    # The unpruned ablation's: where the loop's pruner would have stopped each trial, and each screen it saw
    shadow: dict[str, Any] | None = None

    def joules_after(self, calls: int) -> float:
        """Joules of the method's first `calls` calls, in the order they were recorded."""
        return sum(c.joules for c in self.calls[:calls])

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method, "seed": self.seed, "limit": self.limit, "calls": len(self.calls),
            "budget_used": self.used, "reused": self.reused, "tokens": self.tokens, "joules": self.joules,
            "energy_source": self.energy_source, "wall_s": self.wall_s, "model_s": self.model_s,
            "best_search": self.best_search, "search_outside": self.search_outside, "holdout": self.holdout,
            "holdout_repeats": self.holdout_repeats, "holdout_calls": self.holdout_calls,
            "holdout_s": self.holdout_s, "keeps": self.keeps, "stop": self.stop,
            # (model calls so far, best search composite so far, joules so far)
            "trajectory": [[n, value, self.joules_after(n)] for n, value in self.trajectory],
            "trials": [list(t) for t in self.trials], "trial_details": self.trial_details,
            "best_instructions": self.best_instructions, "notes": self.notes,
            **({"shadow": self.shadow} if self.shadow is not None else {}),
        }


def run_method(ctx: BenchContext, method: str, seed: int, limit: int) -> MethodRun:
    # The methods' modules build on this one's types: imported here, where a method is run.
    from .dspy_methods import run_dspy_method
    from .study_methods import STUDY_METHODS, run_study_method

    if method in STUDY_METHODS:
        return run_study_method(ctx, method, seed, limit)
    if method in ("mipro", "gepa"):
        return run_dspy_method(ctx, method, seed, limit)
    raise ValueError(f"unknown method {method!r}; one of {', '.join(KNOWN)}")


def without_ablations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seed records with only the methods' runs, the ablations' left out: the comparison of the loop with its
    peers never sees them."""
    return [{**record, "runs": [run for run in record["runs"] if run["method"] in METHODS]} for record in records]


def normalise(text: str) -> str:
    """Instruction text as a file holds it; the adapter strips it anyway, so this changes no prompt."""
    return str(text).strip() + "\n"


def instructions_key(instructions: dict[str, str]) -> str:
    return json.dumps({k: normalise(v) for k, v in sorted(instructions.items())})
