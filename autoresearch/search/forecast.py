"""What a run's stop conditions buy, from what this study's evaluations have cost so far.

Before the first trial of a run the loop says how many trials, model calls, joules and hours its
--trials and --timeout come to. The cost of a trial is the study's own mean once it has a few finished
trials; before that it is the baseline's screen evaluation (the search tasks once) scaled by what the
keep rule's confirmations add (keep_rule_cost: by the seed sets confirmed over), plus the proposer's call,
less the planner calls a trial is expected to answer with replies reused (lm/replies.py; reused_shares). It
is the higher figure until the study's own trials say: it leaves out what pruning saves, trials that end
after the proposer's call, and the judge's replies reused where a variant's answer came out the same.
The incumbent's seed sets not measured yet are a one-off beside it (late_sets): the first contender that
reaches them pays for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..store import Store
from ..store.queries import (
    baseline_screen_cost,
    evaluation_role_costs,
    finished_trial_costs,
)

# A trial's calls over one screen evaluation's, by the seed sets a contender is confirmed over (noise_repeats;
# 2 where the seeds changed no reply): the paired rule's screen plus its confirmations, replayed on the
# starter (docs/BENCHMARKS.md, bench_validity's table: 1.08x, 1.23x, 1.34x, 1.41x at 2 to 5). Past 5 the last
# replayed figure stands.
KEEP_RULE_COST = {1: 1.0, 2: 1.08, 3: 1.23, 4: 1.34, 5: 1.41}


def keep_rule_cost(seed_sets: int) -> float:
    """A trial's calls over one screen's when contenders are confirmed over `seed_sets` seed sets in all."""
    return KEEP_RULE_COST[min(max(seed_sets, 1), max(KEEP_RULE_COST))]

HISTORY_TRIALS = 3  # finished trials of the study from which their own mean is the better guide


def reused_shares(optimizable: Sequence[str], reuses: bool) -> dict[str, float]:
    """The share of each role's screen calls a trial is expected to answer with a reply reused. A producer.md
    variant sends its planner the incumbent's requests (the same planner.md, task and seed), and the sampler
    draws the file to change from `optimizable`, uniformly until it learns which one pays; a planner.md variant
    reuses only what happens to come out the same, which cannot be told before the run."""
    if not reuses or not optimizable:
        return {}
    return {"planner": sum(name == "producer.md" for name in optimizable) / len(optimizable)}


@dataclass(frozen=True)
class TrialCost:
    """What one trial costs on average, and from what that was measured."""

    calls: float
    joules: float
    seconds: float  # model time: the calls' own seconds (the framework adds well under 1%)
    energy_source: str
    basis: str
    from_trials: bool = False  # the mean of the study's finished trials (else estimated from the baseline's screen)


@dataclass(frozen=True)
class LateSets:
    """The incumbent's seed sets a contender is confirmed over that are not evaluated yet ([search]
    noise_repeats_upfront): the first contender to reach them pays for them once, about a screen each."""

    first: int  # 1-based, as the live lines number seed sets
    last: int
    calls: float
    joules: float


@dataclass(frozen=True)
class Forecast:
    trials: int | None  # None: only --plateau bounds the run
    cost: TrialCost
    late: LateSets | None = None  # a one-off beside the per-trial cost, paid only if a contender gets that far
    after: int = 0  # the run's trials before it was made (a shared worker measures its first cost in a trial)

    @property
    def calls(self) -> float | None:
        return None if self.trials is None else self.trials * self.cost.calls

    @property
    def joules(self) -> float | None:
        return None if self.trials is None else self.trials * self.cost.joules

    @property
    def hours(self) -> float | None:
        return None if self.trials is None else self.trials * self.cost.seconds / 3600

    def to_dict(self) -> dict[str, object]:
        return {"trials": self.trials, "calls": self.calls, "joules": self.joules, "hours": self.hours,
                "per_trial": {"calls": self.cost.calls, "joules": self.cost.joules, "seconds": self.cost.seconds},
                "energy_source": self.cost.energy_source, "basis": self.cost.basis,
                "late": None if self.late is None else {"first": self.late.first, "last": self.late.last,
                                                        "calls": self.late.calls, "joules": self.late.joules},
                "after": self.after}


def trial_cost(store: Store, study: str, seed_sets: int, reused: Mapping[str, float] | None = None) -> TrialCost | None:
    """A trial's expected cost in this study, where a contender is confirmed over `seed_sets` seed sets in all
    and `reused` says what share of each role's calls it answers with replies reused (reused_shares); None
    before the baseline was evaluated."""
    finished = finished_trial_costs(store, study)
    if len(finished) >= HISTORY_TRIALS:
        n = len(finished)
        return TrialCost(calls=sum(r["calls"] for r in finished) / n, joules=sum(r["joules"] for r in finished) / n,
                         seconds=sum(r["seconds"] for r in finished) / n, energy_source=_sources(finished),
                         basis=f"the mean of this study's {n} finished trials", from_trials=True)
    screen = baseline_screen_cost(store, study)
    if screen is None or not screen["calls"]:
        return None
    factor = keep_rule_cost(seed_sets)
    calls, joules, seconds = screen["calls"], screen["joules"], screen["seconds"]
    less = ""
    for role in evaluation_role_costs(store, screen["id"]):
        share = (reused or {}).get(role["role"], 0.0)
        if share > 0:
            calls, joules, seconds = (calls - share * role["calls"], joules - share * role["joules"],
                                      seconds - share * role["seconds"])
            less += f", less {share * role['calls']:g} of its {role['calls']} {role['role']} calls reused"
    # The proposer's call, costed like an average call of the screen.
    average = (screen["joules"] / screen["calls"], screen["seconds"] / screen["calls"])
    return TrialCost(calls=factor * calls + 1, joules=factor * joules + average[0],
                     seconds=factor * seconds + average[1], energy_source=_sources([screen]),
                     basis=f"the baseline's screen ({screen['calls']} calls{less}) × {factor:g} for the keep rule's "
                           f"confirmations over {seed_sets} seed set{'' if seed_sets == 1 else 's'}, "
                           f"+ 1 proposer call")


def late_sets(store: Store, study: str, measured: int, seed_sets: int) -> LateSets | None:
    """What the incumbent's seed sets measured + 1 … seed_sets will cost when a contender first reaches them:
    the baseline's screen each (the same tasks under other seeds); None when all are measured."""
    screen = baseline_screen_cost(store, study)
    if seed_sets <= measured or screen is None:
        return None
    sets = seed_sets - measured
    return LateSets(measured + 1, seed_sets, sets * screen["calls"], sets * screen["joules"])


def forecast(cost: TrialCost, *, n_trials: int | None, timeout_s: float | None,
             late: LateSets | None = None, after: int = 0) -> Forecast:
    """The trials a run will make: --trials, or as many as --timeout allows at this cost, the fewer of both
    (the rest of each, for a forecast made `after` trials into the run)."""
    limits = [n_trials] if n_trials is not None else []
    if timeout_s is not None and cost.seconds > 0:
        limits.append(max(1, math.ceil(timeout_s / cost.seconds)))  # a trial starts while time is left
    return Forecast(min(limits) if limits else None, cost, late, after)


def _sources(rows) -> str:
    found = {s for r in rows for s in (r["sources"] or "").split(",") if s}
    return "+".join(sorted(found)) or "none"
