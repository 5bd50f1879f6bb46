"""The keep rule: when a challenger has really beaten the incumbent, and the evidence a keep carries.

A race in three steps, so that trust costs few model calls:
1. screen: the challenger's search tasks under the configured seeds (repeat 0), paired task by task with the
   incumbent's; a mean difference at or under keep_threshold stops it (it cannot plausibly win);
2. confirm: a contender is evaluated under the next seed sets (repeat 1, 2, …: [search] noise_repeats in all),
   stopped after any task that brings its running mean to the threshold, and after the first when the seeds
   changed no score on either side (a deterministic backend: further sets would be copies, and each task counts
   once); a contender already far beyond the noise after an earlier set is kept there ([scoring] early_keep:
   its bound at a much stricter level, so that looking more than once adds almost nothing to the chance of
   keeping a null edit); after the last, it is kept only when the
   mean paired difference over tasks × seeds exceeds keep_threshold AND its one-sided paired-t lower bound at
   [scoring] confidence is above zero (with [scoring] across_tasks, the bound over the tasks' means too:
   evaluation/paired.py says why, and bench_validity what it costs);
3. holdout gate ([scoring] holdout_gate): its holdout tasks may not fall below the incumbent's by more than
   the measured noise of such a difference (√2 · the per-task sd over seeds / √holdout tasks); where the seeds
   changed no score (a deterministic backend, or noise_repeats = 1) there is no seed noise, and the margin is the
   spread of the search differences over their tasks / √holdout tasks (an edit still re-draws every reply).
Only tasks that succeeded on both sides are compared: a backend fault is not evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..evaluation.paired import NOISE_BASIS, PairedComparison, tasks_for_sign_test
from ..workspace.config import ScoringConfig

EPSILON = 1e-9  # "more than the threshold", with float noise (7.7 − 7.0 = 0.70000…01) not counting as more
# An early keep's share of the rule's chance of error: a look before the last seed set must clear zero at
# 1 − (1 − confidence) / 50 (99.9% at 95%), the Haybittle–Peto way of stopping a trial early for benefit. Each
# earlier look then adds at most 1/50 of the rule's own false-keep chance, and the last look keeps its level.
EARLY_SHARE = 1 / 50


@dataclass(frozen=True)
class Verdict:
    """How the rule decided one challenger, and on what."""

    keep: bool
    stage: str  # screen | confirm | bound | holdout | kept: where the race ended
    reason: str  # one line, for the trial's description
    comparison: PairedComparison  # search tasks × seeds, the last one computed
    confidence: float
    screen_delta: float  # the mean paired difference under the configured seeds alone (repeat 0)
    holdout: PairedComparison | None = None
    holdout_margin: float | None = None
    noise_sd: float | None = None  # the incumbent's per-task sd over seeds, where measured
    extra: dict[str, Any] = field(default_factory=dict)
    margin_basis: str | None = None  # what holdout_margin was measured from (paired.gate_margin)

    @property
    def lower_bound(self) -> float | None:
        return self.comparison.lower_bound(self.confidence)

    def to_json(self) -> dict[str, Any]:
        return {"keep": self.keep, "stage": self.stage, "reason": self.reason,
                "search": self.comparison.to_json(self.confidence), "screen_delta": self.screen_delta,
                "holdout": self.holdout.to_json(self.confidence) if self.holdout else None,
                "holdout_margin": self.holdout_margin, "holdout_margin_basis": self.margin_basis,
                "task_noise_sd": self.noise_sd, **self.extra}

    def trailers(self) -> dict[str, str]:
        """The evidence as commit trailers: `git log` alone says why this was kept."""
        c = self.comparison
        bound = self.lower_bound
        independent = f", the seeds having changed no score: {c.tasks} independent" if c.copied_repeats else ""
        trailers = {
            "Autoresearch-Evidence": c.text(self.confidence),
            "Autoresearch-Pairs": f"{c.n} ({c.tasks} tasks × {c.repeats} seeds{independent}; "
                                  f"{c.dropped} left out for faults)",
            "Autoresearch-Lower-Bound": "none" if bound is None else f"{bound:+.3f} ({self.confidence:.0%}, "
                                                                    f"one-sided t: {_bounds(c, self.confidence)})",
        }
        if self.noise_sd is not None:
            trailers["Autoresearch-Task-Noise-Sd"] = f"{self.noise_sd:.3f} (one task's score over seeds)"
        if self.holdout is not None:
            margin = "" if self.holdout_margin is None else f", veto below {0.0 - self.holdout_margin:+.3f}"
            if margin and self.margin_basis:  # what the margin was measured from
                margin += f": {self.margin_basis}"
            tasks = f"{self.holdout.n} task{'' if self.holdout.n == 1 else 's'}"
            trailers["Autoresearch-Holdout-Delta"] = f"{self.holdout.mean:+.3f} ({tasks}{margin})"
        return trailers


def _bounds(c: PairedComparison, confidence: float) -> str:
    """"over 12 pairs +0.31; over 4 task means +0.12, not required": the bounds, and which the rule used."""
    pairs, tasks = c.pair_lower_bound(confidence), c.task_lower_bound(confidence)
    units = f"{c.tasks} tasks, the seeds having changed no score" if c.copied_repeats else f"{c.n} pairs"
    found = [f"over {units} {pairs:+.3f}"] if pairs is not None else []
    required = "" if c.across_tasks else ", not required"
    if tasks is not None:
        found.append(f"over {c.tasks} task means {tasks:+.3f}{required}")
    elif c.tasks >= 2:  # a gain over too few tasks' means to be sure of (sure_enough)
        found.append(f"over {c.tasks} task means none ({tasks_for_sign_test(confidence)} untied needed){required}")
    return "; ".join(found)


@dataclass(frozen=True)
class PairedKeepRule:
    """The rule's settings and its three decisions; the Study runs the race and asks it at each step."""

    threshold: float
    confidence: float
    repeats: int  # seed sets a contender is confirmed on, the screen's included
    holdout_gate: bool
    across_tasks: bool = False  # the bound over the tasks' means too
    early_keep: bool = False  # a contender far beyond the noise after an earlier seed set is kept there

    @classmethod
    def from_settings(cls, scoring: ScoringConfig, repeats: int) -> "PairedKeepRule":
        return cls(scoring.keep_threshold, scoring.confidence, max(repeats, 1), scoring.holdout_gate,
                   scoring.across_tasks, scoring.early_keep)

    @property
    def early_confidence(self) -> float:
        """The level an early keep's bound must clear zero at (99.9% for a rule at 95%)."""
        return 1 - (1 - self.confidence) * EARLY_SHARE

    def cannot_keep(self, tasks: int, copies: bool = False) -> str | None:
        """Why no challenger could be kept on `tasks` search tasks, or None: a race gathers at most tasks ×
        seed sets independent differences (each task once where the seeds change no reply), and a bound
        above zero needs as many as a sign test would (evaluation/paired.py: sure_enough)."""
        units = tasks if copies else tasks * self.repeats
        needed = tasks_for_sign_test(self.confidence)
        if units >= needed:
            return None
        what = (f"its {tasks} search task{'' if tasks == 1 else 's'}, each counted once as the seeds change no reply"
                if copies else f"{tasks} search task{'' if tasks == 1 else 's'} × {self.repeats} seed "
                               f"set{'' if self.repeats == 1 else 's'} ([search] noise_repeats)")
        return (f"nothing could be kept: a keep's bound rests on at most {units} independent differences ({what}), "
                f"and a {self.confidence:.0%} bound needs {needed}; add search tasks"
                + (", give the producer a temperature above 0" if copies else ", raise noise_repeats")
                + " or lower [scoring] confidence")

    def cannot_keep_across_tasks(self, tasks: int) -> str | None:
        """Why no challenger could be kept when the bound over the tasks' means is required too, or None: it
        stands above zero only from as many tasks as a sign test needs, whatever the seed sets."""
        needed = tasks_for_sign_test(self.confidence)
        if not self.across_tasks or tasks >= needed:
            return None
        return (f"nothing could be kept: with across_tasks a keep's bound over the tasks' means rests on at most "
                f"{tasks} search task{'' if tasks == 1 else 's'}, and a {self.confidence:.0%} bound needs {needed}; "
                "add search tasks, set [scoring] across_tasks = false or lower [scoring] confidence")

    def still_in_race(self, comparison: PairedComparison) -> bool:
        """Screen and each confirmation step: a challenger whose running mean is at or under the threshold
        stops here (with nothing compared, too: every pair failed on a side)."""
        return comparison.n > 0 and comparison.mean > self.threshold + EPSILON

    def sure_early(self, comparison: PairedComparison) -> bool:
        """After a confirmation seed set before the last: whether the challenger is already kept (early_keep),
        its mean above the threshold and its bound (and, with across_tasks, the tasks' bound) above zero at
        early_confidence."""
        if not (self.early_keep and self.still_in_race(comparison)):
            return False
        bound = replace(comparison, across_tasks=self.across_tasks).lower_bound(self.early_confidence)
        return bound is not None and bound > 0

    def out_of_race(self, comparison: PairedComparison, screen_delta: float, stage: str) -> Verdict:
        seeds = f"{comparison.repeats} seed{'s' if comparison.repeats != 1 else ''}"
        what = "no task succeeded on both sides" if comparison.n == 0 else (
            f"{comparison.mean:+.2f} over {comparison.tasks} tasks × {seeds}, not above {self.threshold:g}")
        return Verdict(False, stage, f"{stage}: {what}", comparison, self.confidence, screen_delta)

    def confirm(self, comparison: PairedComparison, screen_delta: float, noise_sd: float | None,
                early: bool = False) -> Verdict:
        """After the last seed set, or an earlier one where sure_early (early): the mean above the threshold, and
        its lower bound above zero."""
        comparison = replace(comparison, across_tasks=self.across_tasks)
        bound = comparison.lower_bound(self.confidence)
        if not self.still_in_race(comparison):
            return self.out_of_race(comparison, screen_delta, "confirm")
        if bound is None or bound <= 0:
            return Verdict(False, "bound", f"inside the noise: {comparison.text(self.confidence)}",
                           comparison, self.confidence, screen_delta, noise_sd=noise_sd)
        early_note = ""
        if early:
            early_note = (f"; kept after {comparison.repeats} of {self.repeats} seed sets, its bound above zero "
                          f"at {self.early_confidence:.1%} too")
        return Verdict(True, "kept", f"{comparison.text(self.confidence)}{early_note}", comparison, self.confidence,
                       screen_delta, noise_sd=noise_sd)

    def gate(self, verdict: Verdict, holdout: PairedComparison | None, margin: float | None,
             basis: str = NOISE_BASIS) -> Verdict:
        """The holdout gate on a confirmed challenger: vetoed when its holdout difference is below −margin (what
        margin was measured from: basis)."""
        found = Verdict(verdict.keep, verdict.stage, verdict.reason, verdict.comparison, verdict.confidence,
                        verdict.screen_delta, holdout, margin, verdict.noise_sd, margin_basis=basis)
        if not (self.holdout_gate and holdout is not None and holdout.n and margin is not None):
            return found
        if holdout.mean < -margin - EPSILON:
            return Verdict(False, "holdout", f"holdout veto: holdout delta {holdout.mean:+.2f} over {holdout.n} "
                           f"tasks is below -{margin:.2f}, {basis}; search "
                           f"{verdict.comparison.mean:+.2f}", verdict.comparison, verdict.confidence,
                           verdict.screen_delta, holdout, margin, verdict.noise_sd, margin_basis=basis)
        return found
