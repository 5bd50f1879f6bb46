"""The race as run: which seed sets of either side it asks for, and where it stops."""

from __future__ import annotations

from dataclasses import replace

from autoresearch.search.keep_rule import PairedKeepRule
from autoresearch.search.race import run_race

RULE = PairedKeepRule(0.1, 0.95, repeats=4, holdout_gate=True, early_keep=True)
TASKS = ("a", "b", "c", "d")


class Recorded:
    """A ScoreSource whose challenger scores `gain` (one value per task, the same under every seed set) above an
    incumbent that moves 0.1 a seed set; remembers which seed sets the race asked for."""

    def __init__(self, gain: tuple[float, ...]):
        self.gain = gain
        self.asked: list[tuple[str, int]] = []

    def _incumbent(self, repeat: int) -> dict[tuple[str, int], float]:
        return {(task, repeat): 3.0 + 0.1 * repeat for task in TASKS}

    def confirm(self, repeat, on_score):
        self.asked.append(("challenger", repeat))
        found = {}
        for (task, _), score in self._incumbent(repeat).items():
            found[(task, repeat)] = score + self.gain[TASKS.index(task)]
            if not on_score((task, repeat), found[(task, repeat)]):
                break
        return found

    def incumbent(self, split, repeat):
        self.asked.append((f"incumbent {split}", repeat))
        return self._incumbent(repeat) if split == "search" else {("h", 0): 3.0}

    def holdout(self):
        return {("h", 0): 3.5}, {}

    def screen(self):
        return {(task, 0): score + self.gain[TASKS.index(task)] for (task, _), score in self._incumbent(0).items()}


def test_a_clear_winner_is_kept_before_the_last_seed_set_and_neither_side_spends_it():
    clear = Recorded((0.9, 1.0, 1.1, 1.0))
    verdict = run_race(RULE, clear, clear.screen())
    assert verdict.keep and verdict.comparison.repeats == 3  # 12 pairs: a 99.9% claim (8 would be too few)
    assert ("challenger", 3) not in clear.asked and ("incumbent search", 3) not in clear.asked
    assert "kept after 3 of 4 seed sets" in verdict.reason
    assert verdict.holdout is not None  # the holdout gate still judged it

    full = Recorded((0.9, 1.0, 1.1, 1.0))
    verdict = run_race(replace(RULE, early_keep=False), full, full.screen())
    assert verdict.keep and verdict.comparison.repeats == 4 and ("incumbent search", 3) in full.asked


def test_a_likely_winner_runs_every_seed_set():
    # Sure at 95% after 3 seed sets, not at 99.9%: confirmed over all 4, as without early keeps.
    likely = Recorded((1.5, -0.3, 1.4, 0.2))
    verdict = run_race(RULE, likely, likely.screen())
    assert verdict.keep and verdict.comparison.repeats == 4 and ("challenger", 3) in likely.asked
    assert "kept after" not in verdict.reason


class LastSetFailed(Recorded):
    """The challenger's every call of the last seed set failed (no score): the race ran all its seed sets."""

    def confirm(self, repeat, on_score):
        if repeat < RULE.repeats - 1:
            return super().confirm(repeat, on_score)
        self.asked.append(("challenger", repeat))
        return {(task, repeat): None for task in TASKS}


def test_a_keep_whose_last_seed_set_failed_is_not_called_early():
    # Sure at 95% on the 3 seed sets that scored, not at 99.9%: kept at the end, with 3 sets compared.
    failed = LastSetFailed((1.5, -0.3, 1.4, 0.2))
    verdict = run_race(RULE, failed, failed.screen())
    assert verdict.keep and verdict.comparison.repeats == 3 and ("challenger", 3) in failed.asked
    assert "kept after" not in verdict.reason
