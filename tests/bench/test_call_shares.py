"""Where a Study method's calls went: each trial's calls under what it was, as shares of the run."""

from __future__ import annotations

import pytest

from autoresearch.bench import call_shares


def run(method: str, calls: int, trials) -> dict:
    return {"method": method, "calls": calls, "trials": [list(t) for t in trials]}


def test_each_trial_counts_under_what_it_was_and_the_budget_s_last_trial_is_the_rest():
    # A 25-call screen: the 30-call discard ended in its screen, the 70-call one lost its race after it.
    loop = run("autoresearch", 315, [("baseline", 72), ("keep", 128), ("pruned", 10), ("discard", 30),
                                     ("discard", 70), ("failed", 5)])
    found = call_shares.shares(loop, 25.0)
    assert found == pytest.approx({"baseline": 72 / 315, "keep": 128 / 315, "race": 70 / 315,
                                   "screen": 40 / 315, "failed": 5 / 315, "cut": 0.0})
    assert sum(found.values()) == pytest.approx(1.0)
    cut = call_shares.shares(run("autoresearch", 300, [("baseline", 72), ("pruned", 10)]), 25.0)
    assert cut["cut"] == pytest.approx(218 / 300)  # calls no finished trial holds: the one the budget ended


def test_runs_without_trials_or_a_screen_cost_have_no_shares():
    assert call_shares.shares(run("mipro", 120, []), 25.0) is None
    assert call_shares.shares(run("autoresearch", 300, [("baseline", 72)]), None) is None


def test_the_table_gives_each_study_method_its_mean_shares_over_seeds_and_leaves_out_the_others():
    records = [{"screen_calls": 25.0, "runs": [run("autoresearch", 100, [("baseline", 50), ("pruned", 10),
                                                                       ("discard", 40)]),
                                               run("gepa", 300, [])]},
               {"screen_calls": 25.0, "runs": [run("autoresearch", 100, [("baseline", 50), ("keep", 50)])]}]
    lines = call_shares.table(records).splitlines()
    assert lines[0].startswith("| method | seeds | baseline") and len(lines) == 3  # header, rule, the loop
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    # baseline 50% both; keeps 0% and 50%; race 40% and 0%; screens 10% and 0%; failed 0; cut 0.
    assert cells[1:] == ["2", "50% ± 0%", "25% ± 35%", "20% ± 28%", "5% ± 7%", "0% ± 0%", "0% ± 0%"]
    means = call_shares.mean_shares(records)
    assert means["autoresearch"]["keep"] == pytest.approx(0.25) and "gepa" not in means
    assert call_shares.table([{"screen_calls": 25.0, "runs": [run("gepa", 300, [])]}]) == ""


def test_a_discards_recorded_race_stage_decides_whether_it_ended_in_its_screen():
    # A 25-call screen. By calls, the 30-call discard ended in its screen and the 40-call one lost its race after
    # it; their recorded stages say the reverse (a screen reused some replies and took 40 calls; a race stopped
    # after 30), and the stages decide. A twin discard (no stage, 0 calls) falls back to its calls.
    trials = [("baseline", 72), ("discard", 30), ("discard", 40), ("discard", 0), ("pruned", 10)]
    loop = run("autoresearch", 152, trials)
    stages = [None, "confirm", "screen", None, None]
    loop["trial_details"] = [{"status": status, "calls": calls, "stage": stage}
                             for (status, calls), stage in zip(trials, stages)]
    found = call_shares.shares(loop, 25.0)
    assert found["screen"] == pytest.approx(50 / 152) and found["race"] == pytest.approx(30 / 152)
    del loop["trial_details"]  # an older seed file: the calls decide
    by_calls = call_shares.shares(loop, 25.0)
    assert by_calls["screen"] == pytest.approx(40 / 152) and by_calls["race"] == pytest.approx(40 / 152)
