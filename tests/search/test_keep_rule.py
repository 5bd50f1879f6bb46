"""The keep rule's decisions, each on its own: the screen, the threshold, the bound, the holdout gate."""

from __future__ import annotations

import pytest

from autoresearch.evaluation.paired import compare
from autoresearch.search.keep_rule import PairedKeepRule
from autoresearch.workspace.config import ScoringConfig

RULE = PairedKeepRule.from_settings(ScoringConfig(), repeats=3)


def comparison(deltas):
    """Differences over 4 tasks, a seed set each 4; both sides' scores move 0.1 a seed (not a copy of seed 0)."""
    return compare({(f"t{i % 4}", i // 4): 0.1 * (i // 4) + d for i, d in enumerate(deltas)},
                   {(f"t{i % 4}", i // 4): 0.1 * (i // 4) for i in range(len(deltas))})


def test_settings_give_the_rule_its_threshold_confidence_and_gate():
    rule = PairedKeepRule.from_settings(ScoringConfig(keep_threshold=0.3, confidence=0.9, holdout_gate=False), 5)
    assert (rule.threshold, rule.confidence, rule.repeats, rule.holdout_gate) == (0.3, 0.9, 5, False)
    assert rule.early_keep and not PairedKeepRule.from_settings(ScoringConfig(early_keep=False), 5).early_keep


def test_an_early_keep_must_clear_zero_at_a_fiftieth_of_the_rules_chance_of_error():
    rule = PairedKeepRule.from_settings(ScoringConfig(), repeats=4)
    assert rule.early_confidence == pytest.approx(0.999)
    assert PairedKeepRule.from_settings(ScoringConfig(confidence=0.99), 4).early_confidence == pytest.approx(0.9998)
    clear = comparison([0.9, 1.0, 1.1, 1.0] * 3)  # 4 tasks × 3 seed sets, sd 0.08: far beyond the noise
    assert clear.lower_bound(0.999) > 0 and rule.sure_early(clear)
    # 8 pairs all alike are still no 99.9% claim: a sign test would need 10 (paired.sure_enough).
    assert clear.lower_bound(0.95) > 0 and not rule.sure_early(comparison([0.9, 1.0, 1.1, 1.0] * 2))
    # Sure at 95% (what the last seed set asks), not at 99.9%: it must run the remaining seed set.
    likely = comparison([1.5, -0.3, 1.4, 0.2] * 3)
    assert likely.lower_bound(0.95) > 0 >= likely.lower_bound(0.999)
    assert not rule.sure_early(likely)
    assert not rule.sure_early(comparison([0.05] * 12))  # certain, but not above the threshold
    assert not PairedKeepRule.from_settings(ScoringConfig(early_keep=False), 4).sure_early(clear)


def test_an_early_keep_says_after_how_many_seed_sets_it_was_kept():
    rule = PairedKeepRule.from_settings(ScoringConfig(), repeats=4)
    verdict = rule.confirm(comparison([0.9, 1.0, 1.1, 1.0] * 3), 1.0, 0.5, early=True)
    assert verdict.keep and verdict.reason.endswith("; kept after 3 of 4 seed sets, its bound above zero at 99.9% too")
    last = rule.confirm(comparison([0.9, 1.0, 1.1, 1.0] * 4), 1.0, 0.5)  # after the last seed set: nothing added
    assert last.reason == "+1.00 over 4 tasks × 4 seeds, 95% lower bound +0.97"
    fewer = rule.confirm(comparison([0.9, 1.0, 1.1, 1.0] * 3), 1.0, 0.5)  # a seed set lost to failures: not early
    assert fewer.keep and "kept after" not in fewer.reason


def test_the_screen_stops_a_challenger_at_or_under_the_threshold():
    assert not RULE.still_in_race(comparison([0.1, 0.1, 0.1, 0.1]))  # exactly the threshold is not more
    assert RULE.still_in_race(comparison([0.2, 0.1, 0.1, 0.1]))
    assert not RULE.still_in_race(compare({("a", 0): None}, {("a", 0): 5.0}))  # nothing compared
    verdict = RULE.out_of_race(comparison([0.0, 0.1, 0.0, 0.1]), 0.05, "screen")
    assert not verdict.keep and verdict.reason == "screen: +0.05 over 4 tasks × 1 seed, not above 0.1"


def test_a_mean_above_the_threshold_with_a_bound_above_zero_is_kept():
    verdict = RULE.confirm(comparison([0.5, 0.4, 0.6, 0.3] * 3), 0.45, 0.5)
    assert verdict.keep and verdict.stage == "kept" and verdict.lower_bound > 0


def test_a_mean_above_the_threshold_inside_the_noise_is_not_kept():
    verdict = RULE.confirm(comparison([2.0, -1.5, 1.8, -1.2] * 3), 0.3, 1.5)
    assert verdict.comparison.mean > RULE.threshold and verdict.lower_bound < 0
    assert not verdict.keep and verdict.stage == "bound" and verdict.reason.startswith("inside the noise: +0.28 over 4 tasks × 3 seeds, 95% lower bound -0.61")


def test_across_tasks_a_gain_one_task_carries_under_every_seed_is_not_kept():
    # What a null edit can do on a small model: task t0 re-drawn for the better under every seed, the rest moved
    # a little either way.
    one_task = comparison([1.2, 0.1, -0.1, 0.1] * 3)
    assert RULE.confirm(one_task, 0.3, 0.5).keep  # over the pairs it looks sure
    # With the rest tied (the same score on both sides) the pairs alone refuse it: 3 untied differences.
    assert not RULE.confirm(comparison([1.2, 0.0, 0.0, 0.0] * 3), 0.3, 0.5).keep
    across = PairedKeepRule.from_settings(ScoringConfig(across_tasks=True), repeats=3)
    verdict = across.confirm(one_task, 0.3, 0.5)
    assert verdict.comparison.pair_lower_bound(RULE.confidence) > 0 > verdict.lower_bound
    assert not verdict.keep and verdict.stage == "bound"
    assert verdict.trailers()["Autoresearch-Lower-Bound"].endswith("; over 4 task means -0.370)")


def test_a_certain_but_small_improvement_is_not_kept():
    verdict = RULE.confirm(comparison([0.05] * 12), 0.05, 0.5)  # bound 0.05 > 0, but not above 0.1
    assert not verdict.keep and verdict.stage == "confirm"


def test_equal_differences_on_two_tasks_are_inside_the_noise_and_on_five_are_kept():
    # Two tasks × two seeds all +0.49, as a temperature-0 judge gave on a 2-task workspace: no spread measured.
    two = compare({(t, r): 1.49 for t in "ab" for r in range(2)}, {(t, r): 1.0 for t in "ab" for r in range(2)})
    verdict = RULE.confirm(two, 0.49, 0.0)
    assert not verdict.keep and verdict.stage == "bound" and "no spread measured" in verdict.reason
    five = compare({(t, 0): 1.49 for t in "abcde"}, {(t, 0): 1.0 for t in "abcde"})
    assert RULE.confirm(five, 0.49, 0.0).keep


def test_the_holdout_gate_vetoes_a_regression_beyond_its_noise_only():
    kept = RULE.confirm(comparison([0.5, 0.6, 0.4, 0.5] * 3), 0.5, 0.5)
    worse = compare({("h", 0): 3.0, ("i", 0): 3.0}, {("h", 0): 4.0, ("i", 0): 4.0})  # −1.0
    slightly = compare({("h", 0): 3.8, ("i", 0): 3.8}, {("h", 0): 4.0, ("i", 0): 4.0})  # −0.2
    vetoed = RULE.gate(kept, worse, margin=0.5)
    assert not vetoed.keep and vetoed.stage == "holdout" and "holdout delta -1.00 over 2 tasks" in vetoed.reason
    assert RULE.gate(kept, slightly, margin=0.5).keep
    off = PairedKeepRule(0.1, 0.95, 3, holdout_gate=False)
    assert off.gate(kept, worse, margin=0.5).keep
    assert RULE.gate(kept, worse, margin=0.5).to_json()["holdout"]["mean"] == -1.0


def test_a_keeps_trailers_carry_the_evidence():
    verdict = RULE.gate(RULE.confirm(comparison([0.5, 0.4, 0.6, 0.3] * 3), 0.45, 0.6),
                        compare({("h", 0): 4.2}, {("h", 0): 4.0}), margin=0.85)
    trailers = verdict.trailers()
    assert trailers["Autoresearch-Evidence"].startswith("+0.45 over 4 tasks × 3 seeds, 95% lower bound +0.")
    assert trailers["Autoresearch-Pairs"] == "12 (4 tasks × 3 seeds; 0 left out for faults)"
    c = verdict.comparison
    assert trailers["Autoresearch-Lower-Bound"] == (
        f"{c.pair_lower_bound(0.95):+.3f} (95%, one-sided t: over 12 pairs {c.pair_lower_bound(0.95):+.3f}; "
        "over 4 task means none (5 untied needed), not required)")  # 4 tasks all up: chance 1 in 16
    assert trailers["Autoresearch-Holdout-Delta"] == "+0.200 (1 task, veto below -0.850: the noise of such a difference)"
    assert trailers["Autoresearch-Task-Noise-Sd"] == "0.600 (one task's score over seeds)"


def test_a_rule_that_could_never_bound_a_gain_says_why():
    assert RULE.cannot_keep(2) is None  # 2 tasks × 3 seed sets: 6 differences
    one_set = PairedKeepRule(0.1, 0.95, 1, True)
    assert "at most 4 independent differences (4 search tasks × 1 seed set" in one_set.cannot_keep(4)
    assert one_set.cannot_keep(5) is None
    copied = RULE.cannot_keep(4, copies=True)
    assert "at most 4 independent differences (its 4 search tasks, each counted once" in copied
    assert "a 95% bound needs 5" in copied and PairedKeepRule(0.1, 0.9, 4, True).cannot_keep(4, copies=True) is None



def test_a_bound_across_too_few_tasks_could_never_keep_and_says_so():
    across = PairedKeepRule(0.1, 0.95, 4, True, across_tasks=True)
    assert RULE.cannot_keep_across_tasks(2) is None  # not required: the pairs' bound alone
    said = across.cannot_keep_across_tasks(4)
    assert "rests on at most 4 search tasks, and a 95% bound needs 5" in said and "across_tasks = false" in said
    assert across.cannot_keep_across_tasks(5) is None
    assert PairedKeepRule(0.1, 0.9, 4, True, across_tasks=True).cannot_keep_across_tasks(4) is None  # 1 in 16 ≤ 10%
