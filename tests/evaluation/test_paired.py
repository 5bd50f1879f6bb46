"""The keep rule's statistics: paired differences over tasks × seeds, their one-sided bound, faults left out."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest
from scipy import stats

from autoresearch.evaluation.paired import (
    NOISE_BASIS,
    SPREAD_BASIS,
    PairedComparison,
    compare,
    gate_margin,
    holdout_margin,
    sd_by_task,
    task_sd,
    tasks_for_sign_test,
    untied,
)


def test_pairs_are_matched_by_task_and_seed_and_faults_are_left_out():
    mine = {("a", 0): 5.0, ("b", 0): 4.0, ("a", 1): 6.0, ("b", 1): None}
    theirs = {("a", 0): 4.0, ("b", 0): 4.5, ("a", 1): 5.0, ("b", 1): 3.0}
    c = compare(mine, theirs)
    assert c.deltas == (1.0, -0.5, 1.0) and c.dropped == 1
    assert (c.tasks, c.repeats, c.n) == (2, 2, 3)
    assert c.mean == pytest.approx(0.5)


def test_a_fault_on_the_incumbents_side_is_left_out_too():
    c = compare({("a", 0): 5.0, ("b", 0): 9.0}, {("a", 0): 4.0, ("b", 0): None})
    assert c.deltas == (1.0,) and c.dropped == 1 and c.lower_bound(0.95) is None  # one pair: no bound


def test_the_pairs_bound_is_the_one_sided_paired_t_bound():
    deltas = [0.9, -0.2, 0.4, 0.7, 0.1, 0.5]
    c = compare({("t", i): d for i, d in enumerate(deltas)}, {("t", i): 0.0 for i in range(6)})
    sd = math.sqrt(sum((d - c.mean) ** 2 for d in deltas) / 5)
    assert c.pair_lower_bound(0.95) == pytest.approx(c.mean - stats.t.ppf(0.95, 5) * sd / math.sqrt(6))
    assert c.lower_bound(0.95) == c.pair_lower_bound(0.95)  # one task: the pairs' bound alone
    assert c.lower_bound(0.99) < c.lower_bound(0.95) < c.mean  # more confidence, a lower bound


def test_the_tasks_bound_takes_each_tasks_mean_over_seeds_as_one_unit():
    # Task a gains 1.2 under every seed, tasks b-d move by 0.1 either way: over the 12 pairs that looks sure, over
    # 4 tasks not. The seeds move both sides' scores (0.1 a seed), so the pairs are not copies.
    moves = {"a": 1.2, "b": 0.1, "c": -0.1, "d": 0.1}
    deltas = {(t, r): moves[t] for t in moves for r in range(3)}
    c = compare({(t, r): 0.1 * r + d for (t, r), d in deltas.items()}, {(t, r): 0.1 * r for t, r in deltas})
    assert not c.copies and c.task_means == pytest.approx(tuple(moves.values()))
    assert c.pair_lower_bound(0.95) > 0
    assert c.task_lower_bound(0.95) == pytest.approx(mean_minus_t(list(moves.values()), 0.95))
    assert c.lower_bound(0.95) == c.pair_lower_bound(0.95)  # by default the pairs' bound alone
    across = replace(c, across_tasks=True)
    assert across.lower_bound(0.95) == c.task_lower_bound(0.95) < 0  # across tasks: the lower of the two
    assert across.to_json(0.95)["pair_lower_bound"] == c.pair_lower_bound(0.95)


def test_one_task_has_only_the_pairs_bound():
    c = compare({("t", i): d for i, d in enumerate([0.9, 0.1, 0.5])}, {("t", i): 0.0 for i in range(3)})
    c = replace(c, across_tasks=True)
    assert c.task_lower_bound(0.95) is None and c.lower_bound(0.95) == c.pair_lower_bound(0.95)


def _equal_gain(tasks: int, repeats: int, gain: float = 0.49) -> PairedComparison:
    """Every task × seed pair up by the same amount, and the seeds changing no score (a deterministic backend)."""
    incumbent = {(f"t{t}", r): 1.0 + t for t in range(tasks) for r in range(repeats)}
    return compare({key: value + gain for key, value in incumbent.items()}, incumbent)


def test_equal_differences_on_too_few_tasks_give_no_bound():
    # 2 tasks × 2 seeds all +0.49 (seen in a 2-task workspace): the t bound would be +0.49 ("no spread, no doubt");
    # two tasks the same way is a coin's 1 in 4, so there is no bound and the rule keeps nothing.
    c = replace(_equal_gain(2, 2), across_tasks=True)
    assert c.without_spread and c.sd == pytest.approx(0.0, abs=1e-12)
    assert c.pair_lower_bound(0.95) is None and c.task_lower_bound(0.95) is None and c.lower_bound(0.95) is None
    assert "no spread measured" in c.text(0.95) and "5 needed" in c.text(0.95)


def test_equal_differences_on_enough_tasks_are_sure_by_a_sign_test():
    assert tasks_for_sign_test(0.95) == 5 and tasks_for_sign_test(0.9) == 4 and tasks_for_sign_test(0.999) == 10
    assert _equal_gain(4, 4).pair_lower_bound(0.95) is None  # 16 copies of 4 tasks: 1 in 16 > 5%
    assert _equal_gain(4, 4).pair_lower_bound(0.9) == pytest.approx(0.49)  # 1 in 16 ≤ 10%
    assert _equal_gain(5, 1).lower_bound(0.95) == pytest.approx(0.49)  # 1 in 32 ≤ 5%
    assert replace(_equal_gain(5, 2), across_tasks=True).lower_bound(0.95) == pytest.approx(0.49)
    assert "needed" not in _equal_gain(5, 1).text(0.95)


def test_equal_differences_under_seeds_that_move_the_scores_count_every_pair():
    # The seeds move each task's score (±1 by repeat) and the variant adds +0.7 under each: 2 tasks × 3 seeds are
    # 6 independent pairs all one way, 1 in 64 by chance.
    incumbent = {(t, r): 4.0 + (r % 2) for t in "ab" for r in range(3)}
    c = compare({key: value + 0.7 for key, value in incumbent.items()}, incumbent)
    assert not c.copies and len(c.units) == 6 and c.pair_lower_bound(0.95) == pytest.approx(0.7)
    assert c.to_json(0.95)["copies"] is False and _equal_gain(2, 2).to_json(0.95)["copies"] is True
    assert len(_equal_gain(2, 2).units) == 2  # the same 4 pairs from seeds that changed nothing: 2 units


def test_copied_seeds_bound_over_the_tasks_not_the_pairs():
    # A deterministic backend: each task's 4 seed sets repeat one draw, so 4 tasks × 4 seeds are 4 differences,
    # not 16. Over 16 pairs the t bound would be +0.20 (a keep); over the 4 tasks it is below zero.
    gains = {"a": 0.9, "b": 0.1, "c": 0.6, "d": -0.2}
    incumbent = {(t, r): 3.0 for t in gains for r in range(4)}
    c = compare({(t, r): 3.0 + gains[t] for t, r in incumbent}, incumbent)
    assert c.copies and c.n == 16 and len(c.units) == 4
    four = list(gains.values())
    expected = statistics.fmean(four) - stats.t.ppf(0.95, 3) * statistics.stdev(four) / 2
    assert c.pair_lower_bound(0.95) == pytest.approx(expected) and expected < 0
    sixteen = c.mean - stats.t.ppf(0.95, 15) * c.sd / 4  # what counting the copies would claim
    assert sixteen > 0
    assert "the seeds changed no score: each task counted once" in c.text(0.95)
    moved = compare({**{(t, r): 3.0 + gains[t] for t, r in incumbent}, ("a", 1): 3.8}, incumbent)
    assert not moved.copies and len(moved.units) == 16  # one seed moved one score: the pairs count


def test_near_equal_differences_on_too_few_pairs_give_no_bound():
    # 2 tasks × 2 seeds, +0.49 three times and +0.56 once (the seeds move task a's incumbent): the t bound is
    # +0.47, but 4 differences all one way is a coin's 1 in 16, so no bound above zero is claimed at 95%.
    incumbent = {("a", 0): 1.0, ("a", 1): 1.5, ("b", 0): 2.0, ("b", 1): 2.0}
    gains = {("a", 0): 0.49, ("a", 1): 0.56, ("b", 0): 0.49, ("b", 1): 0.49}
    c = compare({key: incumbent[key] + gains[key] for key in incumbent}, incumbent)
    t_bound = c.mean - stats.t.ppf(0.95, 3) * c.sd / 2
    assert not c.copies and len(c.units) == 4 and t_bound > 0.4
    assert c.pair_lower_bound(0.95) is None and c.lower_bound(0.95) is None
    assert "4 pairs: too few to be 95% sure without assuming their shape; 5 needed" in c.text(0.95)
    assert c.pair_lower_bound(0.9) == pytest.approx(mean_minus_t(list(gains.values()), 0.9))  # 4 are enough at 90%
    fifth = compare({**{key: incumbent[key] + gains[key] for key in incumbent}, ("c", 0): 3.5},
                    {**incumbent, ("c", 0): 3.0})
    assert fifth.pair_lower_bound(0.95) == pytest.approx(mean_minus_t([*gains.values(), 0.5], 0.95))
    losses = compare({key: incumbent[key] - gains[key] for key in incumbent}, incumbent)
    assert losses.pair_lower_bound(0.95) < 0  # a bound at or under zero claims nothing, so it stands


def test_tied_pairs_do_not_count_towards_the_sign_test():
    # 3 tasks × 2 seeds: +0.5 on 4 pairs, the same score on both sides on 2 (a small judge's coarse scores). The
    # t bound over all 6 is +0.12, but the 4 that moved all one way is a coin's 1 in 16: no bound is claimed.
    incumbent = {(t, r): 2.0 + r for t in "abc" for r in range(2)}
    gains = {("a", 0): 0.5, ("a", 1): 0.5, ("b", 0): 0.5, ("b", 1): 0.5, ("c", 0): 0.0, ("c", 1): 0.0}
    c = compare({key: incumbent[key] + gains[key] for key in incumbent}, incumbent)
    assert not c.copies and len(c.units) == 6 and mean_minus_t(list(gains.values()), 0.95) > 0.1
    assert c.pair_lower_bound(0.95) is None and c.lower_bound(0.95) is None
    assert "6 pairs, 2 of them tied: too few to be 95% sure without assuming their shape; 5 untied needed" in (
        c.text(0.95))
    fifth = {**gains, ("c", 1): 0.5}  # a fifth untied pair all one way is 1 in 32: the t bound stands
    c = compare({key: incumbent[key] + fifth[key] for key in incumbent}, incumbent)
    assert c.pair_lower_bound(0.95) == pytest.approx(mean_minus_t(list(fifth.values()), 0.95))
    assert untied(c.deltas) == 5 and "untied" not in c.text(0.95)


def mean_minus_t(values: list[float], confidence: float) -> float:
    return statistics.fmean(values) - stats.t.ppf(confidence, len(values) - 1) * statistics.stdev(values) / math.sqrt(
        len(values))


def test_equal_losses_keep_their_mean_as_the_bound():
    assert _equal_gain(2, 2, gain=-0.3).pair_lower_bound(0.95) == pytest.approx(-0.3)  # no claim to doubt


def test_task_sd_pools_each_tasks_spread_over_seeds_not_the_spread_between_tasks():
    # Task a moves 1 ↔ 3, task b 8 ↔ 10: within-task variance 2 each; the 7-point gap between tasks is no noise.
    scores = {("a", 0): 1.0, ("a", 1): 3.0, ("b", 0): 8.0, ("b", 1): 10.0, ("c", 0): None}
    assert task_sd(scores) == pytest.approx(math.sqrt(2))
    assert task_sd({("a", 0): 1.0, ("b", 0): 2.0}) is None  # one seed: nothing measured
    assert holdout_margin(1.0, 2) == pytest.approx(1.0)  # √2 · 1 / √2


def test_the_gate_margin_comes_from_seed_noise_unless_the_seeds_changed_no_score():
    seeded = compare({("a", 0): 5.0, ("a", 1): 6.0, ("b", 0): 4.0, ("b", 1): 4.0},
                     {("a", 0): 4.0, ("a", 1): 4.0, ("b", 0): 4.0, ("b", 1): 5.0})
    assert gate_margin(seeded, 1.0, 2) == (pytest.approx(1.0), NOISE_BASIS)
    assert gate_margin(seeded, None, 2) == (None, NOISE_BASIS)  # noise unmeasured: no margin, no veto
    copied = compare({("a", 0): 5.0, ("b", 0): 4.0, ("c", 0): 6.0}, {("a", 0): 4.0, ("b", 0): 4.0, ("c", 0): 4.0})
    assert copied.copies
    # sd of the differences 1, 0, 2 is 1; over 4 holdout tasks, 1/√4. The incumbent's sd plays no part.
    assert gate_margin(copied, 9.0, 4) == (pytest.approx(0.5), SPREAD_BASIS)


def test_sd_by_task_is_each_tasks_own_spread_over_seeds():
    scores = {("a", 0): 1.0, ("a", 1): 3.0, ("b", 0): 8.0, ("b", 1): 8.0, ("c", 0): 5.0, ("c", 1): None}
    assert sd_by_task(scores) == {"a": pytest.approx(math.sqrt(2)), "b": 0.0}  # c: one score, nothing measured


def test_across_tasks_a_gain_over_too_few_tasks_is_not_sure_even_with_a_spread():
    # 3 tasks gaining 0.6, 0.7, 0.8 under 3 seeds that move both sides: the t bound over the task means is
    # +0.53, but three means all above zero is chance 1 in 8 — the same sign-test minimum as with no spread.
    gains = {"a": 0.6, "b": 0.7, "c": 0.8}
    incumbent = {(t, r): 4.0 + 0.3 * r for t in gains for r in range(3)}
    c = replace(compare({(t, r): v + gains[t] for (t, r), v in incumbent.items()}, incumbent), across_tasks=True)
    assert not c.copies and c.pair_lower_bound(0.95) > 0.5  # 9 pairs, all one way: sure over the pairs
    assert mean_minus_t(list(gains.values()), 0.95) > 0.5  # what t alone would claim over the tasks
    assert c.task_lower_bound(0.95) is None and c.lower_bound(0.95) is None
    assert "over 3 task means: too few to be 95% sure without assuming their shape; 5 needed" in c.text(0.95)
    five = {**gains, "d": 0.65, "e": 0.75}  # five tasks all one way: 1 in 32, and the t bound stands
    incumbent = {(t, r): 4.0 + 0.3 * r for t in five for r in range(3)}
    c = replace(compare({(t, r): v + five[t] for (t, r), v in incumbent.items()}, incumbent), across_tasks=True)
    assert c.lower_bound(0.95) == pytest.approx(mean_minus_t(list(five.values()), 0.95))


def test_across_tasks_a_loss_over_few_tasks_keeps_its_pairs_bound():
    # Unsure over the tasks, but the pairs' bound at or under zero claims nothing and stands as the evidence.
    c = replace(compare({("a", 0): 3.0, ("a", 1): 5.0, ("b", 0): 4.0, ("b", 1): 4.5},
                        {("a", 0): 4.0, ("a", 1): 4.0, ("b", 0): 4.0, ("b", 1): 4.0}), across_tasks=True)
    assert c.pair_lower_bound(0.95) < 0 and c.lower_bound(0.95) == c.pair_lower_bound(0.95)
