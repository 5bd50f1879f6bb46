"""The pruner's shadow: where the shipped pruner would have stopped each trial of the `unpruned` ablation.

The A/B (pruner_ab.py) sets two runs side by side, and once the pruner first stops a trial their paths part: the
saving it measures is a difference of two searches that tried different variants. The shadow measures on one path.
The unpruned arm runs with the shipped pruner asked after every screen task, as in the loop, but never obeyed: each
trial it would have stopped is recorded with the calls the trial had made by then. Its full screen then runs
anyway, so each such stop is checked against what the trial went on to do (a prune is right where the screen
failed; one that passed its screen, and above all one that was kept, was wrong), and the calls the stop would have
saved are the trial's calls after that point: exact, paired, for every stop, not only the first. Where the loop's own
run of the seed is beside it, its first pruned trial (made before the paths part) must be among the shadow's stops,
at the same calls: a check that the shadow is the loop's pruner. Each screen is recorded as the pruner saw it (the
incumbent's scores and noise, each task's score with the trial's calls then), so the same screens replay exactly at
bolder levels ([search] prune_confidence): what a bolder pruner would save on these paths, against the stops of
trials that passed."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import optuna

from ..search.pruning import (
    CONFIDENCE,
    FAILED_TASKS_ATTR,
    ScreenReference,
    Z,
    would_stop,
    z_of,
)
from .call_shares import part, trial_records
from .methods import LOOP, UNPRUNED
from .pruner_ab import spread

# [search] prune_confidence's levels replayed: the default, then bolder ones (z 1.645, 1.282, 0.842)
LEVELS = (CONFIDENCE, 0.90, 0.80)
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
    "searches. Below the table, the same recorded screens replayed at bolder levels.")


class ShadowPruner(optuna.pruners.BasePruner):
    """Asks `pruner` as the loop would and never stops a trial. It records the first step at which the pruner would
    have stopped each trial and, for replays at other levels, each screen as the pruner saw it: the incumbent's
    scores and noise it was compared with, and each task's score with the trial's calls when it was told.
    `calls_so_far` says how many model calls the current trial has made."""

    def __init__(self, pruner: optuna.pruners.BasePruner, calls_so_far: Callable[[], int]):
        self.pruner, self.calls_so_far = pruner, calls_so_far
        self.reference: ScreenReference | None = None
        self.stops: dict[int, tuple[int, int]] = {}  # trial number: (its calls then, the screen tasks seen)
        self.screens: dict[int, dict[str, Any]] = {}  # trial number: what its screen told the pruner

    def against(self, reference: ScreenReference | None) -> None:
        """The incumbent a screen is compared with, kept for the record and handed on to the pruner."""
        self.reference = reference
        against = getattr(self.pruner, "against", None)
        if against is not None:
            against(reference)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        calls = self.calls_so_far()
        screen = self.screens.get(trial.number)
        if screen is None and self.reference is not None:
            screen = self.screens[trial.number] = {
                "sd": self.reference.sd, "incumbent": sorted([step, score] for step, score in
                                                             self.reference.incumbent.items()), "tasks": []}
        if screen is not None:
            failed = set(trial.user_attrs.get(FAILED_TASKS_ATTR, ()))
            told = {step for step, *_ in screen["tasks"]}
            screen["tasks"] += [[step, value, calls, step in failed]
                                for step, value in sorted(trial.intermediate_values.items()) if step not in told]
        if trial.number not in self.stops and self.pruner.prune(study, trial):
            self.stops[trial.number] = (calls, len(trial.intermediate_values))
        return False

    def as_json(self) -> dict[str, Any]:
        """The stops ([trial, its calls then, tasks seen]) and screens, with the level and threshold they ran at."""
        return {"z": getattr(self.pruner, "z", None), "threshold": getattr(self.pruner, "threshold", None),
                "stops": [[number, calls, tasks] for number, (calls, tasks) in sorted(self.stops.items())],
                "screens": {str(number): screen for number, screen in sorted(self.screens.items())}}


def replay(screen: dict[str, Any], threshold: float, z: float) -> tuple[int, int] | None:
    """Where the paired pruner at level z would have stopped this recorded screen: (the trial's calls then, tasks
    seen), or None. A screen without a measured noise (the shipped pruner asked its fallback then) is never
    stopped here."""
    if not screen["sd"]:
        return None
    reference = ScreenReference({step: score for step, score in screen["incumbent"]}, screen["sd"])
    values: dict[int, float] = {}
    failed: set[int] = set()
    for step, value, calls, task_failed in screen["tasks"]:
        values[step] = value
        if task_failed:
            failed.add(step)
        if would_stop(reference, values, failed, threshold, z):
            return calls, len(values)
    return None


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
    stops: list[Stop]  # the shipped pruner's, as it decided them
    levels: dict[float, list[Stop]]  # the stops replayed from the recorded screens at each confidence (LEVELS)
    # Whether the replay at the shipped level makes the shipped pruner's stops (the replay's own check)
    replay_agrees: bool = True
    # Whether the loop's first pruned trial is a stop here at the same calls; None without the loop's run or a prune
    loop_first_prune: bool | None = None

    def saved(self, stops: Sequence[Stop] | None = None) -> float | None:
        """The share of the run's calls `stops` (the shipped pruner's by default) would have saved."""
        stops = self.stops if stops is None else stops
        return sum(s.saved for s in stops) / self.calls if self.calls else None

    @property
    def ceiling(self) -> float | None:
        return self.failed_screen_calls / self.calls if self.calls else None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "levels": {str(z): [asdict(s) for s in stops] for z, stops in self.levels.items()},
                "saved": self.saved(), "ceiling": self.ceiling,
                "saved_at": {str(z): self.saved(stops) for z, stops in self.levels.items()}}


def count(stops: Sequence[Stop], ended: str) -> int:
    return sum(s.ended == ended for s in stops)


def _ended(trial: dict[str, Any]) -> str:
    if trial["status"] == "keep":
        return KEPT
    if trial["status"] == "discard" and trial.get("stage") not in (None, "screen"):
        return PASSED
    return RIGHT  # discarded at its screen, or failed (a screen too faulty to compare is no gain either)


def read(record: dict[str, Any]) -> Shadow | None:
    """The shadow of one seed record's unpruned run; None where it has no such run or it recorded no decisions."""
    run = next((r for r in record["runs"] if r["method"] == UNPRUNED), None)
    shadow = run.get("shadow") if run is not None else None
    if shadow is None:
        return None
    trials = trial_records(run)
    by_number = {t["number"]: t for t in trials if "number" in t}
    cut = run["calls"] - sum(t["calls"] for t in trials)  # the trial the budget ended: no record but its calls

    def stop(number: int, at: int, tasks: int) -> Stop:
        trial = by_number.get(number)
        if trial is None:
            return Stop(number, at, max(cut, at), tasks, CUT, None)
        return Stop(number, at, trial["calls"], tasks, _ended(trial), trial.get("delta"))

    stops = [stop(*entry) for entry in shadow["stops"]]
    levels, agrees = {}, True
    if shadow.get("threshold") is not None:
        for confidence in LEVELS:
            replayed = [(int(number), replay(screen, shadow["threshold"], z_of(confidence)))
                        for number, screen in shadow["screens"].items()]
            levels[confidence] = sorted((stop(number, *where) for number, where in replayed if where is not None),
                               key=lambda s: s.trial)
        shipped = next((c for c in LEVELS if z_of(c) == (shadow.get("z") or Z)), None)
        agrees = shipped is None or [(s.trial, s.at) for s in stops] == [(s.trial, s.at) for s in levels[shipped]]
    after = [t for t in trials if t["status"] != "baseline"]
    # The trials that ended in their screen, by the rule the A/B's arms use (call_shares.part)
    screen_calls = record.get("screen_calls") or 0
    failed = [t for t in after if part(t["status"], t["calls"], screen_calls, t.get("stage")) == "screen"]
    return Shadow(record["seed"], run["calls"], len(after) + (cut > 0), len(failed),
                  sum(t["calls"] for t in failed), stops, levels, agrees, _loop_first_prune(record, stops))


def _loop_first_prune(record: dict[str, Any], stops: list[Stop]) -> bool | None:
    loop = next((r for r in record["runs"] if r["method"] == LOOP), None)
    first = next((t for t in trial_records(loop) if t["status"] == "pruned"), None) if loop else None
    if first is None or "number" not in first:
        return None
    return any(s.trial == first["number"] and s.at == first["calls"] for s in stops)


def shadows(records: Sequence[dict[str, Any]]) -> list[Shadow]:
    return [s for s in map(read, records) if s is not None]


def table(records: Sequence[dict[str, Any]]) -> str:
    """A row per seed with the shadow, what they add up to, and the replays at other levels; "" where none has it."""
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
                     f"{count(s.stops, RIGHT)} / {count(s.stops, PASSED)} / {count(s.stops, KEPT)} | {each} | "
                     f"{sum(t.saved for t in s.stops)} ({_share(s.saved())}) | {_share(s.ceiling)} | "
                     f"{ {True: 'yes', False: '**no**', None: '–'}[s.loop_first_prune]} |")
    return "\n".join(lines) + "\n\n" + summary_line(found) + levels_table(found)


def summary_line(found: Sequence[Shadow]) -> str:
    stops = [t for s in found for t in s.stops]
    ceiling = [s.ceiling for s in found if s.ceiling is not None]
    matched = [s.loop_first_prune for s in found if s.loop_first_prune is not None]
    screens = sum(s.failed_screen_calls for s in found)
    return (f"Over {len(found)} seed(s): the pruner would have stopped {len(stops)} trial(s), "
            f"{count(stops, RIGHT)} of which failed their screens anyway, {count(stops, PASSED)} passed theirs and "
            f"lost their races, {count(stops, KEPT)} went on to be kept (a stop that costs a keep)"
            + (f", {count(stops, CUT)} the budget cut" if count(stops, CUT) else "")
            + f"; calls saved, of each run's: {_saving([s.saved() for s in found])}; ceiling "
            + (f"{statistics.fmean(ceiling):.0%}" if ceiling else "–")
            + (f"; of the {screens} calls of the screens that failed, the stops of those trials saved "
               f"{sum(t.saved for t in stops if t.ended == RIGHT) / screens:.0%}" if screens else "")
            + (f"; the loop's first prune found among the stops at the same calls on {sum(matched)} of {len(matched)}"
               if matched else "") + ".")


def levels_table(found: Sequence[Shadow]) -> str:
    """The same screens replayed at each prune_confidence (the default first): what a bolder pruner would have
    saved on these paths, and what it would have cost in stops of trials that passed their screens or were kept."""
    replayed = [s for s in found if s.levels]
    if not replayed:
        return ""
    lines = ["", "", "Replayed from the recorded screens at other levels (`[search] prune_confidence`: how sure the "
             "pruner must be that a variant cannot beat the incumbent by the threshold; the default 0.95) on the same "
             "paths:", "",
             "| prune_confidence (z) | stops | right / passed / kept | calls saved, of each run's |",
             "| ---: | ---: | ---: | --- |"]
    for confidence in LEVELS:
        stops = [t for s in replayed for t in s.levels[confidence]]
        lines.append(f"| {confidence:.2f} ({z_of(confidence):.3f}) | {len(stops)} | {count(stops, RIGHT)} / "
                     f"{count(stops, PASSED)} / {count(stops, KEPT)} "
                     f"| {_saving([s.saved(s.levels[confidence]) for s in replayed])} |")
    disagree = [str(s.seed) for s in replayed if not s.replay_agrees]
    lines += ["", "The replay at the shipped level makes the shipped pruner's stops on "
              f"{len(replayed) - len(disagree)} of {len(replayed)} seed(s)"
              + (f" (not on {', '.join(disagree)})" if disagree else "") + "."]
    return "\n".join(lines)


def section(records: Sequence[dict[str, Any]]) -> list[str]:
    """search.md's lines for the shadow; [] where no unpruned run recorded it."""
    found = table(records)
    return ["## The pruner's shadow: where it would have stopped the unpruned arm's trials", "", EXPLAINED, "",
            found, ""] if found else []


def as_json(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s.as_json() for s in shadows(records)]


def _saving(saved: Sequence[float | None]) -> str:
    return spread([v for v in saved if v is not None], of_all=True)


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"
