"""The keep rule replayed over a score table: the very race of search/race.py, every pairing and seed order."""

from __future__ import annotations

from autoresearch.bench.resample import (
    CALLS_PER_TASK,
    UNIFORM_GAINS,
    TableScores,
    old_rule,
    pruned_after,
    resample,
    uniform_gains,
    with_gain,
)
from autoresearch.search.keep_rule import PairedKeepRule
from autoresearch.search.race import run_race

RULE = PairedKeepRule(0.1, 0.95, 3, True)


def variant(search: dict[str, list[float]], holdout: dict[str, list[float]]) -> dict:
    return {"search": search, "holdout": holdout}


def table(**variants) -> dict:
    return {"variants": variants}


NOISE = {"a": [3.0, 4.0, 3.5, 4.5], "b": [2.0, 2.5, 3.0, 2.0]}
HOLDOUT = {"h": [3.0, 3.0, 3.0, 3.0]}


def test_identical_variants_are_never_kept_and_stop_at_the_screen():
    found = resample(table(starter=variant(NOISE, HOLDOUT), null=variant(NOISE, HOLDOUT)), RULE)
    assert found["aa"]["trials"] == 2 * 24 and found["aa"]["keeps"] == 0  # 2 ordered pairs × 4·3·2 orders
    assert found["aa"]["stages"] == {"screen": 48}
    assert found["aa"]["calls_per_trial"] == 1 + CALLS_PER_TASK * 2  # the proposer and the screen only
    assert found["power"]["trials"] == 0


def test_a_planted_gain_on_every_task_and_seed_is_kept_under_every_order():
    better = {task: [v + 1.0 for v in values] for task, values in NOISE.items()}
    found = resample(table(starter=variant(NOISE, HOLDOUT), planted=variant(better, HOLDOUT)), RULE)
    assert found["power"]["trials"] == 24 and found["power"]["keeps"] == 24
    # screen 2 tasks, 2 confirmation seed sets of 2 tasks, the holdout task; and the proposer
    assert found["power"]["calls_per_trial"] == 1 + CALLS_PER_TASK * (2 + 4 + 1)
    assert found["power"]["old_keeps"] == 24


def test_a_gain_one_task_carries_is_kept_over_pairs_and_caught_across_tasks():
    # Task a up by 1.2 under every seed, the rest moved by 0.1 either way (tied, they would not count as pairs).
    one_task = {"a": [v + 1.2 for v in NOISE["a"]], "b": [v + 0.1 for v in NOISE["b"]], "c": [1.1] * 4,
                "d": [1.9] * 4}
    base = {**NOISE, "c": [1.0] * 4, "d": [2.0] * 4}
    variants = table(starter=variant(base, HOLDOUT), null=variant(one_task, HOLDOUT))
    assert resample(variants, RULE)["aa"]["keeps"] == 24  # every order of the null over the starter
    found = resample(variants, PairedKeepRule(0.1, 0.95, 3, True, across_tasks=True))
    assert found["aa"]["keeps"] == 0 and found["aa"]["stages"].get("bound", 0) > 0
    assert found["aa"]["old_keeps"] > 0  # the old rule keeps it: +0.3 over one evaluation


def test_the_confirmation_stops_after_the_task_that_sinks_it_and_counts_only_the_calls_made():
    # Seed set 0 favours the challenger (+1 on both tasks), seed set 1 is a disaster on task a (−5).
    mine = {"a": [4.0, -1.0, 4.0, 4.0], "b": [4.0, 4.0, 4.0, 4.0]}
    theirs = {"a": [3.0, 4.0, 4.0, 4.0], "b": [3.0, 4.0, 4.0, 4.0]}
    source = TableScores(table(c=variant(mine, HOLDOUT), i=variant(theirs, HOLDOUT)), "c", "i", (0, 1, 2))
    verdict = run_race(RULE, source, source.screen())
    assert verdict.stage == "confirm" and verdict.comparison.n == 3  # two screen pairs and task a of seed set 1
    assert source.calls == 1 + CALLS_PER_TASK * 3


def test_the_old_rule_compares_one_evaluation_and_pays_the_holdout_of_its_keeps():
    mine = {"a": [4.0] * 4, "b": [3.0] * 4}
    source = TableScores(table(c=variant(mine, HOLDOUT), i=variant(NOISE, HOLDOUT)), "c", "i", (0, 1, 2))
    keep, calls = old_rule(source, 0.1)
    assert keep and calls == 1 + CALLS_PER_TASK * (2 + 1)  # 3.5 against 2.5 under seed set 0


def test_a_keeps_holdout_agreement_is_read_on_the_seed_sets_the_gate_did_not_see():
    better = {task: [v + 1.0 for v in values] for task, values in NOISE.items()}
    # The holdout gains under seed set 0 only: the gate (which sees the screen's seed set) lets every order
    # through, but on the seed sets it did not see the holdout agrees only where seed set 0 was not the screen's.
    holdout = {"h": [9.0, 3.0, 3.0, 3.0]}
    found = resample(table(starter=variant(NOISE, HOLDOUT), planted=variant(better, holdout)), RULE)
    power = found["power"]
    assert power["keeps"] == 24 and power["holdout_measured"] == 24
    assert power["holdout_agreement"] == 18 / 24  # 6 of the 24 orders screen on seed set 0: 0 gain elsewhere


def test_the_paired_pruner_stops_a_clearly_worse_screen_early_and_never_a_clear_gain():
    # The challenger is 3 points under the incumbent on every task and seed set: after task 1 beating it by
    # 0.1 is implausible (incumbent sd over 3 seed sets ≈ 0.5 per task), so the screen stops at 1 of 4 tasks.
    base = {**NOISE, "c": [1.0, 1.5, 1.0, 1.5], "d": [2.0, 2.5, 2.0, 2.5]}
    worse = {task: [v - 3.0 for v in values] for task, values in base.items()}
    better = {task: [v + 1.0 for v in values] for task, values in base.items()}
    variants = table(starter=variant(base, HOLDOUT), worse=variant(worse, HOLDOUT), planted=variant(better, HOLDOUT))
    source = TableScores(variants, "worse", "starter", (0, 1, 2))
    assert pruned_after(source, 3, 0.1) == 1
    assert pruned_after(TableScores(variants, "planted", "starter", (0, 1, 2)), 3, 0.1) is None
    found, pruned = resample(variants, RULE), resample(variants, RULE, prune=True)
    # Pruned trials are not kept and cost the proposer and the tasks run before the stop.
    assert pruned["aa"]["stages"]["pruned"] > 0 and pruned["aa"]["keeps"] == found["aa"]["keeps"]
    assert pruned["aa"]["calls_per_trial"] < found["aa"]["calls_per_trial"]
    assert pruned["power"]["keeps"] == found["power"]["keeps"] == found["power"]["trials"]


def test_seeds_that_change_no_score_end_the_confirmation_after_one_seed_set():
    # A deterministic backend: each task's score is the same under every seed set, on both sides. After seed
    # set 1 copies seed set 0, seed set 2 would too: the race decides over the 5 tasks (each counted once).
    theirs = {task: [3.0] * 4 for task in "abcde"}
    mine = {task: [3.0 + gain] * 4 for task, gain in zip("abcde", (1.0, 0.8, 1.2, 0.9, 1.1))}
    source = TableScores(table(c=variant(mine, HOLDOUT), i=variant(theirs, HOLDOUT)), "c", "i", (0, 1, 2))
    verdict = run_race(RULE, source, source.screen())
    assert verdict.keep and verdict.comparison.repeats == 2 and verdict.comparison.copies
    assert source.calls == 1 + CALLS_PER_TASK * (5 + 5 + 1)  # screen, one confirmation seed set, the holdout
    assert verdict.lower_bound < 1.0 - 0.1  # over 5 task means, not 10 pairs


def test_without_seed_noise_the_holdout_margin_is_the_search_tasks_spread():
    # Deterministic again: the seeds give no noise, so the gate's margin comes from how much the search
    # differences vary by task (sd 0.5 over 5 tasks) over √4 holdout tasks: 0.25. A holdout 0.2 lower is
    # inside it (any loss vetoed before); 0.3 lower is not.
    theirs = {task: [3.0] * 4 for task in "abcde"}
    mine = {task: [3.0 + gain] * 4 for task, gain in zip("abcde", (1.0, 0.5, 1.5, 0.5, 1.5))}
    holdout = {task: [3.0] * 4 for task in "wxyz"}

    def race(holdout_loss: float):
        lower = {task: [v - holdout_loss for v in values] for task, values in holdout.items()}
        source = TableScores(table(c=variant(mine, lower), i=variant(theirs, holdout)), "c", "i", (0, 1, 2))
        return run_race(RULE, source, source.screen())

    inside, beyond = race(0.2), race(0.3)
    assert inside.keep and inside.holdout_margin == 0.25
    assert not beyond.keep and beyond.stage == "holdout"
    assert "below -0.25, the spread of the search tasks' differences" in beyond.reason


def test_a_bolder_pruner_level_stops_a_screen_the_default_lets_run():
    # The challenger is 0.5 under on every task (incumbent sd ≈ 0.5): after one task, the default z 1.645 still
    # leaves it a 5% chance to end above +0.1 over 4 tasks; z 0.84 (a 20% chance) stops it there.
    base = {**NOISE, "c": [1.0, 1.5, 1.0, 1.5], "d": [2.0, 2.5, 2.0, 2.5]}
    worse = {task: [v - 0.5 for v in values] for task, values in base.items()}
    variants = table(starter=variant(base, HOLDOUT), worse=variant(worse, HOLDOUT))
    source = TableScores(variants, "worse", "starter", (0, 1, 2))
    default, bold = pruned_after(source, 3, 0.1), pruned_after(source, 3, 0.1, z=0.84)
    assert bold == 1 and (default is None or default > 1)


def test_the_replayed_screen_runs_the_tasks_with_the_least_seed_noise_first():
    # Tasks a–c move 4 points between seed sets, z only 0.1; the challenger loses 8 points on z alone. Run in the
    # table's order the pruner sees a, b, c first (no loss) and never stops; the loop runs z first and stops there.
    base = {"a": [1.0, 5.0, 1.0, 5.0], "b": [2.0, 6.0, 2.0, 6.0], "c": [3.0, 7.0, 3.0, 7.0], "z": [9.0, 9.1, 9.0, 9.1]}
    worse = {**base, "z": [v - 8.0 for v in base["z"]]}
    variants = table(starter=variant(base, HOLDOUT), worse=variant(worse, HOLDOUT))
    assert pruned_after(TableScores(variants, "worse", "starter", (0, 1, 2)), 3, 0.1) == 1


def test_the_replayed_pruner_takes_its_noise_from_the_seed_sets_measured_upfront_only():
    # Seed sets 0 and 1 barely move the incumbent (sd ≈ 0.07 a task); set 2 moves it 3 points. Measured upfront
    # over 2 sets (the loop's default) a 0.5 loss on the first task already stops the screen; over all 3 the
    # noise is too large to stop there; over 1 there is no noise to predict from, and the pruner never stops.
    base = {task: [3.0 + k, 3.1 + k, 6.0 + k, 3.0 + k] for k, task in enumerate("abcd")}
    worse = {task: [v - 0.5 for v in values] for task, values in base.items()}
    source = TableScores(table(starter=variant(base, HOLDOUT), worse=variant(worse, HOLDOUT)), "worse", "starter",
                         (0, 1, 2))
    assert pruned_after(source, 2, 0.1) == 1
    assert pruned_after(source, 3, 0.1) != 1
    assert pruned_after(source, 1, 0.1) is None
    variants = table(starter=variant(base, HOLDOUT), worse=variant(worse, HOLDOUT))
    upfront, every = (resample(variants, RULE, prune=True, upfront=n)["aa"]["calls_per_trial"] for n in (2, 3))
    assert upfront < every  # fewer calls where the pruner's noise came from the quieter sets


def test_a_uniform_gain_is_the_starts_own_scores_moved_by_delta_and_raced_against_every_null():
    start = variant({"a": [3.0, None, 3.5, 4.5], "b": NOISE["b"]}, HOLDOUT)
    gained = with_gain(table(starter=start, null=variant(NOISE, HOLDOUT)), 0.5)
    assert gained["variants"]["gain"]["search"]["a"] == [3.5, None, 4.0, 5.0]  # a failed task stays failed
    assert gained["variants"]["gain"]["holdout"]["h"] == [3.5] * 4
    assert "gain" not in table(starter=start)["variants"]  # the table given is left as it was
    rows = uniform_gains(table(starter=variant(NOISE, HOLDOUT), null=variant(NOISE, HOLDOUT)), RULE)
    assert [row["delta"] for row in rows] == list(UNIFORM_GAINS)
    assert all(row["trials"] == 24 for row in rows)  # one null × every ordering of 3 of the 4 seed sets
    # NOISE's own scores + δ against NOISE: every difference is exactly δ, so the sign test over the 6 pairs
    # decides, and each δ (all above the threshold) is kept under every order.
    assert [row["keeps"] for row in rows] == [24] * len(UNIFORM_GAINS)
