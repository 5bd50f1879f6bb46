"""The pruner's shadow: where the shipped pruner would have stopped each trial of the `unpruned` ablation.

The A/B (pruner_ab.py) sets two runs side by side, and once the pruner first stops a trial their paths part: the
saving it measures is a difference of two searches that tried different variants. The shadow measures on one path.
The unpruned arm runs with the shipped pruner asked after every screen task, as in the loop, but never obeyed: each
trial it would have stopped is recorded with the calls the trial had made by then. Its full screen then runs
anyway, so each such stop is checked against what the trial went on to do (a prune is right where the screen
failed; one that passed its screen, and above all one that was kept, was wrong), and the calls the stop would have
saved are the trial's calls after that point: exact, paired, for every stop, not only the first. Where the loop's own
run of the seed is beside it, its first pruned trial (made before the paths part) must be among the shadow's stops,
at the same calls: a check that the shadow is the loop's pruner."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import optuna

from .call_shares import trial_records
from .leads import t_lower_bound
from .methods import LOOP, UNPRUNED

GOAL = 0.30  # goal 3: the share of model calls pruning should save at an equal best score
RIGHT, PASSED, KEPT, CUT = "failed its screen", "passed its screen, lost its race", "kept", "cut by the budget"
EXPLAINED = (
    "Per seed whose `unpruned` run recorded the shipped pruner's decisions (asked after every screen task as in the "
    "loop, never obeyed): each trial it would have stopped, the calls the trial had made by then and how the "
    "trial went on to end. *Right*: the trial failed its screen anyway; *passed*: it passed its screen and lost its "
    "race (the stop would have saved the race's calls too, at no cost to the pick); *kept*: a stop that would have "
    "cost a keep. *Calls saved*: every call the stopped trials made after the stop, as a share of the run's "
    "calls (goal 3 asks for 30% at an equal best score); *ceiling*: the calls of every trial that failed its screen, "
    "the most a screen pruner could save. *The loop's first prune*: whether the loop's run of the seed stopped the "
    "same trial at the same calls (the paths agree until then). Measured on one path, so free of the A/B's parted "
    "searches.")


class ShadowPruner(optuna.pruners.BasePruner):
    """Asks `pruner` as the loop would, records the first step at which it would stop each trial, and never stops
    one. `calls_so_far` says how many model calls the current trial has made."""

    def __init__(self, pruner: optuna.pruners.BasePruner, calls_so_far: Callable[[], int]):
        self.pruner, self.calls_so_far = pruner, calls_so_far
        self.stops: dict[int, tuple[int, int]] = {}  # trial number: (its calls then, the screen tasks seen)

    def against(self, reference: Any) -> None:
        """The incumbent a screen is compared with, handed on to a pruner that compares with one."""
        against = getattr(self.pruner, "against", None)
        if against is not None:
            against(reference)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if trial.number not in self.stops and self.pruner.prune(study, trial):
            self.stops[trial.number] = (self.calls_so_far(), len(trial.intermediate_values))
        return False

    def as_json(self) -> list[list[int]]:
        """[trial number, its calls at the stop, screen tasks seen] per trial it would have stopped."""
        return [[number, calls, tasks] for number, (calls, tasks) in sorted(self.stops.items())]


@dataclass
class Stop:
    trial: int
    at: int  # the trial's calls when the pruner would have stopped it
    calls: int  # all its calls (until the budget ended it, for the trial it cut)
    tasks: int  # screen tasks seen
    ended: str  # RIGHT, PASSED, KEPT or CUT
    delta: float | None

    @property
    def saved(self) -> int:
        return self.calls - self.at


@dataclass
class Shadow:
    seed: int
    calls: int  # the unpruned run's model calls
    screened: int  # trials after the baseline, the one the budget cut included
    failed_screens: int
    failed_screen_calls: int  # the ceiling: every call of the trials that failed their screens
    stops: list[Stop]
    # Whether the loop's first pruned trial is a stop here at the same calls; None without the loop's run or a prune
    loop_first_prune: bool | None = None

    @property
    def saved(self) -> float | None:
        return sum(s.saved for s in self.stops) / self.calls if self.calls else None

    @property
    def ceiling(self) -> float | None:
        return self.failed_screen_calls / self.calls if self.calls else None

    def count(self, ended: str) -> int:
        return sum(s.ended == ended for s in self.stops)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "saved": self.saved, "ceiling": self.ceiling}


def _ended(trial: dict[str, Any]) -> str:
    if trial["status"] == "keep":
        return KEPT
    if trial["status"] == "discard" and trial.get("stage") not in (None, "screen"):
        return PASSED
    return RIGHT  # discarded at its screen, or failed (a screen too faulty to compare is no gain either)


def read(record: dict[str, Any]) -> Shadow | None:
    """The shadow of one seed record's unpruned run; None where it has no such run or it recorded no decisions."""
    run = next((r for r in record["runs"] if r["method"] == UNPRUNED), None)
    if run is None or run.get("shadow_prunes") is None:
        return None
    trials = trial_records(run)
    by_number = {t["number"]: t for t in trials if "number" in t}
    cut = run["calls"] - sum(t["calls"] for t in trials)  # the trial the budget ended: no record but its calls
    stops = []
    for number, at, tasks in run["shadow_prunes"]:
        trial = by_number.get(number)
        if trial is None:
            stops.append(Stop(number, at, max(cut, at), tasks, CUT, None))
        else:
            stops.append(Stop(number, at, trial["calls"], tasks, _ended(trial), trial.get("delta")))
    after = [t for t in trials if t["status"] != "baseline"]
    failed = [t for t in after if t["status"] == "pruned" or (t["status"] == "discard" and t.get("stage") == "screen")]
    return Shadow(record["seed"], run["calls"], len(after) + (cut > 0), len(failed),
                  sum(t["calls"] for t in failed), stops, _loop_first_prune(record, stops))


def _loop_first_prune(record: dict[str, Any], stops: list[Stop]) -> bool | None:
    loop = next((r for r in record["runs"] if r["method"] == LOOP), None)
    first = next((t for t in trial_records(loop) if t["status"] == "pruned"), None) if loop else None
    if first is None or "number" not in first:
        return None
    return any(s.trial == first["number"] and s.at == first["calls"] for s in stops)


def shadows(records: Sequence[dict[str, Any]]) -> list[Shadow]:
    return [s for s in map(read, records) if s is not None]


def table(records: Sequence[dict[str, Any]]) -> str:
    """A row per seed with the shadow, then what they add up to; "" where none has it."""
    found = shadows(records)
    if not found:
        return ""
    lines = ["| seed | trials screened | failed screens (their calls) | would stop: right / passed / kept | "
             "each stop: trial, at calls of its calls, how it ended | calls saved (of the run's) | ceiling | "
             "the loop's first prune: same trial, same calls |",
             "| ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for s in found:
        each = "; ".join(f"{t.trial} at {t.at}/{t.calls} ({t.ended}"
                         + (f", {t.delta:+.2f}" if t.delta is not None else "") + ")" for t in s.stops) or "–"
        lines.append(f"| {s.seed} | {s.screened} | {s.failed_screens} ({s.failed_screen_calls}) | "
                     f"{s.count(RIGHT)} / {s.count(PASSED)} / {s.count(KEPT)} | {each} | "
                     f"{sum(t.saved for t in s.stops)} ({_share(s.saved)}) | {_share(s.ceiling)} | "
                     f"{ {True: 'yes', False: '**no**', None: '–'}[s.loop_first_prune]} |")
    return "\n".join(lines) + "\n\n" + summary_line(found)


def summary_line(found: Sequence[Shadow]) -> str:
    stops = [t for s in found for t in s.stops]
    saved = [s.saved for s in found if s.saved is not None]
    ceiling = [s.ceiling for s in found if s.ceiling is not None]
    matched = [s.loop_first_prune for s in found if s.loop_first_prune is not None]
    bound = t_lower_bound(saved)
    spread = (f"{statistics.fmean(saved):+.0%}" + (f" ± {statistics.stdev(saved):.0%}" if len(saved) > 1 else "")
              + f" (from {min(saved):+.0%} to {max(saved):+.0%}; {GOAL:.0%} or more on "
              f"{sum(v >= GOAL - 1e-9 for v in saved)} of {len(saved)}"
              + (f"; one-sided 95% t bound on the mean {bound:+.0%}" if bound is not None else "") + ")") if saved else "–"
    return (f"Over {len(found)} seed(s): the pruner would have stopped {len(stops)} trial(s), "
            f"{sum(t.ended == RIGHT for t in stops)} of which failed their screens anyway, "
            f"{sum(t.ended == PASSED for t in stops)} passed theirs and lost their races, "
            f"{sum(t.ended == KEPT for t in stops)} went on to be kept (a stop that costs a keep)"
            + (f", {sum(t.ended == CUT for t in stops)} the budget cut" if any(t.ended == CUT for t in stops) else "")
            + f"; calls saved, of each run's: {spread}; ceiling "
            + (f"{statistics.fmean(ceiling):.0%}" if ceiling else "–")
            + (f"; the loop's first prune found among the stops at the same calls on {sum(matched)} of {len(matched)}"
               if matched else "") + ".")


def section(records: Sequence[dict[str, Any]]) -> list[str]:
    """search.md's lines for the shadow; [] where no unpruned run recorded it."""
    found = table(records)
    return ["## The pruner's shadow: where it would have stopped the unpruned arm's trials", "", EXPLAINED, "",
            found, ""] if found else []


def as_json(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s.as_json() for s in shadows(records)]


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"
