"""The pruner's A/B: per seed, the loop as shipped beside the same loop without its pruner (the `unpruned`
ablation), each on the same budget of model calls from the same start.

Goal 3 asks that pruning save at least 30% of model calls at an equal best score. The estimate in the method table
counts each pruned trial as the full screen it cut short; this measures it: the calls a variant cost in each arm
(every finished trial after the baseline), whether both arms handed back the same pick, and when each first held
it. The arms run the same code on the same draw, so until the pruner first stops a trial they make the same trials
with the same calls; a seed whose arms differ before that (another commit, build or machine for one arm) is shown
but left out of the summary. The unpruned arm's copy of the first pruned trial says whether that prune was right:
a prune is wrong only where the unpruned copy went on to be kept."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from .call_shares import finished_trials, part, trial_records
from .leads import t_lower_bound
from .methods import LOOP, UNPRUNED, instructions_key
from .report import num

GOAL = 0.30  # goal 3: the share of calls pruning should save at an equal best score
EXPLAINED = (
    "Per seed that ran the `unpruned` ablation (`--methods unpruned`): the loop as shipped beside the same loop "
    "with `[search] pruner = \"none\"`, on the same budget from the same start. Until the pruner first stops a "
    "trial both arms make the same trials (else a row says they differ and the summary leaves it out: another "
    "commit or build for one arm); the unpruned copy of that trial shows whether the prune was right. *Variants*: "
    "trials after the baseline, the one the budget cut short included (its calls too); *calls a variant saved*: 1 − the loop's calls a variant ÷ the unpruned "
    "arm's (goal 3 asks for 30% at an equal best score); *failed screens*: trials that ended in their screen "
    "(pruned, or discarded at it), what a screen pruner acts on, free of the races after a screen whose length "
    "swamps a few variants' mean; *pick first held at*: the model calls when the arm's final "
    "pick became its best. None of these rows counts in the tables above.")


@dataclass
class Arm:
    """One arm's run, as the A/B reads it."""

    variants: int  # trials after the baseline, the one the budget cut short included
    variant_calls: int  # every call after the baseline
    search: float | None
    holdout: float | None
    held_at: int | None  # model calls when its final pick was first its best (its baseline's, if never replaced)
    pruned: int
    failed_screens: int = 0  # trials that ended in their screen (pruned, or discarded at it: call_shares.part)
    failed_screen_calls: int = 0

    @property
    def calls_a_variant(self) -> float | None:
        return self.variant_calls / self.variants if self.variants else None

    @property
    def calls_a_failed_screen(self) -> float | None:
        return self.failed_screen_calls / self.failed_screens if self.failed_screens else None


@dataclass
class PrunerAB:
    seed: int
    loop: Arm
    unpruned: Arm
    same_pick: bool
    agreed: bool  # the arms made the same trials until the loop's first pruned one (all of them, if none)
    compared: int  # trials compared for that (the baseline included)
    first_prune: str | None  # how the unpruned arm's copy of the loop's first pruned trial ended; None: no prune

    @property
    def saved(self) -> float | None:
        """The share of a variant's calls the pruner saved: 1 − the loop's calls a variant ÷ the unpruned arm's."""
        return _saved(self.loop.calls_a_variant, self.unpruned.calls_a_variant)

    @property
    def saved_a_failed_screen(self) -> float | None:
        """The same for the trials that ended in their screen, the only ones a screen pruner acts on: free of the
        races either arm ran after a screen, whose length swamps a few variants' mean."""
        return _saved(self.loop.calls_a_failed_screen, self.unpruned.calls_a_failed_screen)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "saved": self.saved, "saved_a_failed_screen": self.saved_a_failed_screen}


def _saved(mine: float | None, theirs: float | None) -> float | None:
    return None if mine is None or not theirs else 1 - mine / theirs


def _arm(run: dict[str, Any], screen_calls: float | None) -> Arm:
    trials = finished_trials(run)
    after = [(status, calls) for status, calls, _ in trials if status != "baseline"]
    # Where a trial's race ended is on record since draw 11011; before, a discard's calls say (SCREEN_SLACK).
    failed = [calls for status, calls, stage in trials if status != "baseline" and screen_calls
              and part(status, calls, screen_calls, stage) == "screen"]
    trajectory = run.get("trajectory") or []
    # The trial the budget cut short is a variant tried too: leaving it out would drop a long race's calls.
    cut = run["calls"] - sum(calls for _, calls, _ in trials)
    baseline = sum(calls for status, calls, _ in trials if status == "baseline")
    return Arm(variants=len(after) + (cut > 0), variant_calls=run["calls"] - baseline, search=run["best_search"],
               holdout=run["holdout"], held_at=trajectory[-1][0] if trajectory else None,
               pruned=sum(status == "pruned" for status, _ in after), failed_screens=len(failed),
               failed_screen_calls=sum(failed))


def _same_trial(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same trial in both arms: every field both records have, but the number and the failure's wording."""
    shared = (set(a) & set(b)) - {"number", "why"}
    return all(_close(a[key], b[key]) for key in shared)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9
    return a == b


def _outcome(trial: dict[str, Any]) -> str:
    """How a trial ended, in a few words: "discard at its screen, −0.95", "kept, +1.38"."""
    status, stage, delta = trial["status"], trial.get("stage"), trial.get("delta")
    words = {"keep": "kept", "pruned": "pruned", "failed": "failed"}.get(status, status)
    if status == "discard" and stage:
        words += " at its screen" if stage == "screen" else f" in its race ({stage})"
    return words + (f", {delta:+.2f}" if isinstance(delta, (int, float)) else "")


def compare(record: dict[str, Any]) -> PrunerAB | None:
    """The A/B of one seed record; None where it lacks either arm."""
    runs = {run["method"]: run for run in record["runs"]}
    if LOOP not in runs or UNPRUNED not in runs:
        return None
    loop, unpruned = runs[LOOP], runs[UNPRUNED]
    mine, theirs = trial_records(loop), trial_records(unpruned)
    agreed, compared, first_prune = True, 0, None
    for a, b in zip(mine, theirs):
        compared += 1
        if a["status"] == "pruned":
            # The unpruned copy of the trial the pruner stopped: the same recipe, at least the calls it was stopped at.
            agreed = all(a.get(k) == b.get(k) for k in ("operator", "file") if k in a and k in b) \
                and b["calls"] >= a["calls"] and b["status"] != "pruned"
            first_prune = f"{_outcome(b)}; pruned at {a['calls']} of its {b['calls']} calls" if agreed else None
            break
        if not _same_trial(a, b):
            agreed = False
            break
    screen = record.get("screen_calls")
    return PrunerAB(record["seed"], _arm(loop, screen), _arm(unpruned, screen),
                    instructions_key(loop["best_instructions"]) == instructions_key(unpruned["best_instructions"]),
                    agreed, compared, first_prune)


def comparisons(records: Sequence[dict[str, Any]]) -> list[PrunerAB]:
    return [ab for ab in map(compare, records) if ab is not None]


def table(records: Sequence[dict[str, Any]]) -> str:
    """A row per seed with both arms, then what the seeds whose arms agree add up to; "" where none has both."""
    found = comparisons(records)
    if not found:
        ran = [r["seed"] for r in records if any(run["method"] == UNPRUNED for run in r["runs"])]
        return (f"The unpruned ablation ran on seed(s) {', '.join(map(str, ran))} without the loop's run of the same "
                "seed beside it: nothing to compare (run `--methods autoresearch` for those seeds into the same "
                "--out).") if ran else ""
    lines = ["| seed | arms agree until the first prune | the first pruned trial, unpruned | same pick | "
             "best search: loop / unpruned | holdout: loop / unpruned | variants in the budget: loop / unpruned | "
             "calls a variant: loop / unpruned | calls a variant saved | failed screens: loop / unpruned (calls "
             "each) | calls a failed screen saved | pick first held at (calls): loop / unpruned |",
             "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for ab in found:
        agree = f"yes ({ab.compared} trials)" if ab.agreed else f"**no** (trial {ab.compared - 1} differs)"
        lines.append(
            f"| {ab.seed} | {agree} | {ab.first_prune or '– (no prune)'} | {'yes' if ab.same_pick else 'no'} | "
            f"{num(ab.loop.search)} / {num(ab.unpruned.search)} | {num(ab.loop.holdout)} / {num(ab.unpruned.holdout)} | "
            f"{ab.loop.variants} / {ab.unpruned.variants} | {_calls(ab.loop)} / {_calls(ab.unpruned)} | "
            f"{_share(ab.saved)} | {_screens(ab.loop)} / {_screens(ab.unpruned)} | {_share(ab.saved_a_failed_screen)} | "
            f"{ab.loop.held_at} / {ab.unpruned.held_at} |")
    return "\n".join(lines) + "\n\n" + summary_line(found)


def summary_line(found: Sequence[PrunerAB]) -> str:
    """What the seeds whose arms agree add up to: equal picks, the calls a variant and a failed screen saved, the
    first prunes' verdicts."""
    agreeing = [ab for ab in found if ab.agreed]
    left_out = len(found) - len(agreeing)
    if not agreeing:
        return f"No seed's arms agree until the first prune ({left_out} left out): nothing to add up."
    per_variant = spread([ab.saved for ab in agreeing if ab.saved is not None])
    per_screen = spread([ab.saved_a_failed_screen for ab in agreeing if ab.saved_a_failed_screen is not None])
    prunes = [ab.first_prune for ab in agreeing if ab.first_prune]
    kept = sum(p.startswith("kept") for p in prunes)
    return (f"Over {len(agreeing)} seed(s) whose arms agree until the first prune"
            + (f" ({left_out} left out)" if left_out else "") + ": "
            f"the same pick on {sum(ab.same_pick for ab in agreeing)}; the calls a variant cost, saved by the pruner: "
            f"{per_variant}; the calls a failed screen cost, saved: {per_screen}; of the {len(prunes)} first pruned "
            f"trials, {kept} went on to be kept without the pruner (a prune that cost a keep).")


def spread(saved: Sequence[float], *, of_all: bool = False) -> str:
    """Savings over seeds: mean ± sd, range, how many reach GOAL (`of_all`: "… of N") and the one-sided bound on
    the mean."""
    if not saved:
        return "–"
    bound = lower_bound(saved)
    return (f"{statistics.fmean(saved):+.0%}" + (f" ± {statistics.stdev(saved):.0%}" if len(saved) > 1 else "")
            + f" (from {min(saved):+.0%} to {max(saved):+.0%}; {GOAL:.0%} or more on {sum(s >= GOAL - 1e-9 for s in saved)}"
            + (f" of {len(saved)}" if of_all else "")
            + (f"; one-sided 95% t bound on the mean {bound:+.0%}" if bound is not None else "") + ")")


def section(records: Sequence[dict[str, Any]]) -> list[str]:
    """search.md's lines for the A/B (a heading, what it measures, the table); [] where no seed ran both arms."""
    found = table(records)
    return ["## The pruner's A/B: the loop with and without its pruner", "", EXPLAINED, "", found, ""] if found else []


def lower_bound(values: Sequence[float], confidence: float = 0.95) -> float | None:
    """One-sided lower t bound on the mean of `values` (leads.t_lower_bound); None from fewer than 2. Goal 3 is
    shown only where it clears GOAL: a mean above it from a few draws is not yet a saving of that size."""
    return t_lower_bound(values, confidence)


def as_json(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [ab.as_json() for ab in comparisons(records)]


def _calls(arm: Arm) -> str:
    value = arm.calls_a_variant
    return "–" if value is None else f"{value:.1f}"


def _screens(arm: Arm) -> str:
    value = arm.calls_a_failed_screen
    return f"{arm.failed_screens} ({'–' if value is None else f'{value:.1f}'})"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:+.0%}"
