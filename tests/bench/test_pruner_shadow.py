"""The pruner's shadow: the loop's pruner asked but never obeyed, each would-be stop recorded with the trial's calls
then, and read against how the trial ended."""

from __future__ import annotations

import optuna
import pytest

from autoresearch.bench import pruner_shadow, search_report
from autoresearch.bench.pruner_shadow import KEPT, PASSED, RIGHT, ShadowPruner, replay
from autoresearch.search.pruning import PairedFutilityPruner, ScreenReference

INCUMBENT = ScreenReference({0: 6.0, 1: 6.0, 2: 6.0, 3: 6.0}, sd=0.5)


def screen(study: optuna.Study, values: list[float], calls: list[int]) -> tuple[int, list[bool]]:
    """A screen as the loop runs it: report each task, ask should_prune; the trial's number and the answers."""
    trial = study.ask()
    answers = []
    for step, value in enumerate(values):
        calls.append(2)  # a task's calls (producer and judge)
        trial.report(value, step)
        answers.append(trial.should_prune())
    return trial.number, answers


def test_it_records_where_the_pruner_would_stop_a_trial_and_never_stops_one():
    calls: list[int] = []
    inner = PairedFutilityPruner(threshold=0.1)
    shadow = ShadowPruner(inner, lambda: sum(calls))
    shadow.against(INCUMBENT)  # handed on: without a reference the paired pruner never stops anything
    assert inner.reference is INCUMBENT
    study = optuna.create_study(direction="maximize", pruner=shadow)
    # Near the incumbent on the first task, far below it on the second: the pruner would stop it there.
    number, answers = screen(study, [6.0, 1.0, 1.0, 1.0], calls)
    assert answers == [False] * 4  # asked, never obeyed: the screen runs whole
    assert shadow.stops == {number: (4, 2)}  # the first would-be stop only: 4 calls, 2 tasks seen
    # The same screen under the pruner itself is stopped after the same task.
    calls.clear()
    obeyed = optuna.create_study(direction="maximize", pruner=inner)
    _, answers = screen(obeyed, [6.0, 1.0, 1.0, 1.0], calls)
    assert answers == [False, True, True, False]  # (a whole screen is the keep rule's to decide)
    # A variant level with the incumbent is never recorded as a stop; its screen is, as the pruner saw it.
    calls.clear()
    level, _ = screen(study, [6.0, 6.2, 5.9, 6.1], calls)
    record = shadow.as_json()
    assert record["stops"] == [[number, 4, 2]] and (record["z"], record["threshold"]) == (1.645, 0.1)
    assert record["screens"][str(level)] == {"sd": 0.5, "incumbent": [[0, 6.0], [1, 6.0], [2, 6.0], [3, 6.0]],
                                             "tasks": [[0, 6.0, 2, False], [1, 6.2, 4, False], [2, 5.9, 6, False],
                                                       [3, 6.1, 8, False]]}


def test_a_recorded_screen_replays_to_the_shipped_stop_and_stops_sooner_at_a_bolder_level():
    calls: list[int] = []
    shadow = ShadowPruner(PairedFutilityPruner(threshold=0.1), lambda: sum(calls))
    shadow.against(INCUMBENT)
    study = optuna.create_study(direction="maximize", pruner=shadow)
    # Half a point under the incumbent on each task: too little to stop on one task at 95%, enough on two.
    number, _ = screen(study, [5.5, 5.5, 5.5, 5.5], calls)
    recorded = shadow.as_json()["screens"][str(number)]
    shipped = replay(recorded, 0.1, 1.645)
    assert shipped == shadow.stops[number] == (4, 2)
    assert replay(recorded, 0.1, 0.84) == (2, 1)  # the bolder level stops after the first task
    assert replay({**recorded, "sd": None}, 0.1, 0.84) is None  # no noise measured: the fallback's, not replayed
    # A failed task is no evidence, in the replay as in the pruner.
    failing = {**recorded, "tasks": [[0, 0.0, 2, True], *recorded["tasks"][1:]]}
    assert replay(failing, 0.1, 0.84) == (4, 2)


def trial(number: int, status: str, calls: int, stage=None, delta=None):
    return {"number": number, "status": status, "calls": calls, "operator": "rephrase", "file": "producer.md",
            "delta": delta, "composite": None, "stage": stage, "why": None}


def record(seed: int, details, stops, cut: int = 0, loop=None, screens=None):
    shadow = None if stops is None else {"z": 1.645, "threshold": 0.1 if screens else None, "stops": stops,
                                         "screens": screens or {}}
    run = {"method": "unpruned", "calls": sum(d["calls"] for d in details) + cut,
           "trials": [[d["status"], d["calls"]] for d in details], "trial_details": details, "shadow": shadow}
    return {"seed": seed, "runs": [r for r in (loop, run) if r is not None]}


DETAILS = [trial(0, "baseline", 72), trial(1, "discard", 24, "screen", -0.9), trial(2, "discard", 100, "confirm", 0.2),
           trial(3, "keep", 80, "kept", 0.5), trial(4, "discard", 24, "screen", -0.1)]


def test_each_stop_is_read_against_how_its_trial_ended_and_what_it_would_have_saved():
    # Trials 1-3 would be stopped; 4 failed its screen unstopped; trial 5, stopped, was cut by the budget.
    [shadow] = pruner_shadow.shadows([record(7, DETAILS, [[1, 8, 3], [2, 10, 4], [3, 12, 5], [5, 6, 2]], cut=20)])
    assert [(s.trial, s.ended, s.saved) for s in shadow.stops] == [
        (1, RIGHT, 16), (2, PASSED, 90), (3, KEPT, 68), (5, pruner_shadow.CUT, 14)]
    assert shadow.calls == 320 and shadow.screened == 5
    assert shadow.saved() == pytest.approx((16 + 90 + 68 + 14) / 320)
    # The ceiling: every call of the trials that failed their screens (1 and 4), whether stopped or not.
    assert (shadow.failed_screens, shadow.failed_screen_calls) == (2, 48)
    assert shadow.ceiling == pytest.approx(48 / 320)
    text = pruner_shadow.table([record(7, DETAILS, [[1, 8, 3], [2, 10, 4], [3, 12, 5], [5, 6, 2]], cut=20)])
    assert "| 7 | 5 | 2 (48) | 1 / 1 / 1 |" in text
    assert "1 at 8/24 (failed its screen, -0.90)" in text
    assert "would have stopped 4 trial(s), 1 of which failed their screens anyway, 1 passed theirs" in text
    assert "1 went on to be kept (a stop that costs a keep), 1 the budget cut" in text
    # Of the failed screens' 48 calls, the stop of trial 1 (which failed its screen) saved 16.
    assert "of the 48 calls of the screens that failed, the stops of those trials saved 33%" in text


def test_the_summary_counts_the_seeds_that_save_the_goals_share_and_bounds_the_mean():
    details = [trial(0, "baseline", 70), trial(1, "discard", 30, "screen", -1.0)]
    # 100 calls: a stop at 0 calls saves 30% (counted as reaching it), one at 20 saves 10%.
    found = pruner_shadow.shadows([record(1, details, [[1, 0, 0]]), record(2, details, [[1, 20, 5]])])
    assert [s.saved() for s in found] == pytest.approx([0.30, 0.10])
    line = pruner_shadow.summary_line(found)
    assert "+20% ± 14% (from +10% to +30%; 30% or more on 1 of 2; one-sided 95% t bound on the mean" in line
    assert "would have stopped 2 trial(s), 2 of which failed their screens anyway" in line


def test_runs_without_recorded_decisions_have_no_shadow_and_the_report_leaves_it_out(tmp_path):
    older = record(3, DETAILS, None)  # an unpruned run from before the shadow
    assert pruner_shadow.shadows([older]) == [] and pruner_shadow.section([older]) == []
    assert pruner_shadow.shadows([{"seed": 4, "runs": []}]) == []
    assert pruner_shadow.read(record(5, DETAILS, [])).stops == []  # recorded, and nothing would have been stopped


def test_the_report_shows_the_shadow_and_keeps_it_in_search_json(tmp_path):
    import json

    from test_pruner_ab import record as ab_record
    from test_pruner_ab import run as ab_run

    loop = ab_run("autoresearch", [trial(0, "baseline", 72), trial(1, "pruned", 8)])
    unpruned = {**ab_run("unpruned", DETAILS[:2]), "shadow": {"z": 1.645, "threshold": None, "stops": [[1, 8, 3]],
                                                              "screens": {}}}
    search_report.write(tmp_path, [ab_record(2, loop, unpruned)])
    text = (tmp_path / "search.md").read_text()
    assert "## The pruner's shadow" in text and "| 2 | 1 | 1 (24) | 1 / 0 / 0 |" in text
    # The loop pruned trial 1 at 8 calls, and so would the shadow: the same pruner on the same path.
    assert "(17%) | 25% | yes |" in text and "found among the stops at the same calls on 1 of 1" in text
    unpruned["shadow"]["stops"] = [[1, 10, 3]]
    assert pruner_shadow.read(ab_record(2, loop, unpruned)).loop_first_prune is False
    [shadow] = json.loads((tmp_path / "search.json").read_text())["pruner_shadow"]
    assert shadow["seed"] == 2 and shadow["saved"] == pytest.approx(16 / 96)


def test_the_levels_replay_every_recorded_screen_and_check_the_shipped_one():
    sd, incumbent = 0.5, [[0, 6.0], [1, 6.0], [2, 6.0], [3, 6.0]]

    def screened(values):  # a screen of two calls a task
        return {"sd": sd, "incumbent": incumbent,
                "tasks": [[step, v, 2 * (step + 1) + 1, False] for step, v in enumerate(values)]}

    details = [trial(0, "baseline", 60), trial(1, "discard", 9, "screen", -0.5), trial(2, "keep", 31, "kept", 0.4)]
    # Trial 1 half a point under (stopped at 95% after 2 tasks, at 80% after 1); trial 2 above (never).
    screens = {"1": screened([5.5] * 4), "2": screened([6.4] * 4)}
    [shadow] = pruner_shadow.shadows([record(8, details, [[1, 5, 2]], screens=screens)])
    assert shadow.replay_agrees
    assert [(s.trial, s.at) for s in shadow.levels[0.80]] == [(1, 3)] and shadow.levels[0.90]
    assert shadow.saved(shadow.levels[0.80]) == pytest.approx(6 / 100)
    text = pruner_shadow.table([record(8, details, [[1, 5, 2]], screens=screens)])
    assert "| 0.80 (0.842) | 1 | 1 / 0 / 0 | +6% (from +6% to +6%; 30% or more on 0 of 1) |" in text
    assert "makes the shipped pruner's stops on 1 of 1 seed(s)." in text
    # A shadow whose recorded stops the replay does not make is named.
    [off] = pruner_shadow.shadows([record(8, details, [[1, 7, 3]], screens=screens)])
    assert not off.replay_agrees
    assert "on 0 of 1 seed(s) (not on 8)" in pruner_shadow.table([record(8, details, [[1, 7, 3]], screens=screens)])
