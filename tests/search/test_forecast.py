"""The run's forecast: what --trials and --timeout buy, from the baseline's cost and then the study's own."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from scripted import ONLY_PRODUCER, ScriptedPipeline, producer_only

from autoresearch.cli.live import print_summary
from autoresearch.search.forecast import (
    LateSets,
    TrialCost,
    forecast,
    keep_rule_cost,
    reused_shares,
)
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.store.queries import measured_noise
from autoresearch.workspace.workspace import load_workspace


def study_for(root, pipeline, events):
    return Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0,
                 observer=lambda kind, data: events.append((kind, data)))


def forecasts(events):
    return [data for kind, data in events if kind == "forecast"]


def test_the_first_run_forecasts_from_the_baselines_screen_then_later_runs_from_their_trials(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=[f"Answer {'!' * n}\n" for n in range(1, 8)])
    events: list = []
    summary = study_for(root, pipeline, events).optimize(n_trials=3)
    (first,) = forecasts(events)
    store = Store.for_workspace(root / "runs")
    screen, planner = (store.conn.execute(
        "SELECT COUNT(*), SUM(c.latency_s) FROM calls c JOIN evaluations e ON c.evaluation_id = e.id "
        f"WHERE e.study = ? AND e.kind = 'baseline' AND e.split = 'search'{role}", (summary.study,)).fetchone()
        for role in ("", " AND c.role = 'planner'"))
    assert first["trials"] == 3 and "baseline" in first["basis"]
    # noise_repeats 1: no noise measured, so no confirmation seed set to pay for (the screen and the proposer).
    assert measured_noise(store, summary.study) is None and "confirmations over 1 seed set," in first["basis"]
    # producer.md is the only file to change: every trial sends its planner the incumbent's requests, and reuses
    # their replies, so the forecast leaves the screen's planner calls out.
    assert planner[0] == 2 and f"({screen[0]} calls, less 2 of its 2 planner calls reused)" in first["basis"]
    assert first["per_trial"]["calls"] == pytest.approx(keep_rule_cost(1) * (screen[0] - planner[0]) + 1)
    assert first["calls"] == pytest.approx(3 * first["per_trial"]["calls"])
    # The proposer's call costs an average call of the screen.
    assert first["per_trial"]["seconds"] == pytest.approx(screen[1] - planner[1] + screen[1] / screen[0])
    assert first["energy_source"] == "estimate" and first["joules"] > 0
    # After the run, the forecast beside what its 3 trials cost: the calls of trials 1–3 they made (not the baseline's,
    # nor the planner's replies they reused: a producer.md variant sends the planner the incumbent's requests).
    check = summary.forecast
    trial_calls = store.conn.execute(
        "SELECT COUNT(*), SUM(joules), SUM(latency_s) FROM calls WHERE study = ? AND trial BETWEEN 1 AND 3 "
        "AND reused = 0",
        (summary.study,)).fetchone()
    cost = check.per_trial
    assert {"calls": cost.calls, "joules": cost.joules, "seconds": cost.seconds} == first["per_trial"]
    assert check.trials == 3
    assert (check.calls, check.joules, check.seconds) == (trial_calls[0], pytest.approx(trial_calls[1]),
                                                        pytest.approx(trial_calls[2]))
    console = Console(record=True, width=300)
    print_summary(console, summary, load_workspace(root))
    text = console.export_text()
    assert f"forecast   a trial ≈ {first['per_trial']['calls']:.1f} calls" in text
    assert f"this run's 3 trials: {trial_calls[0] / 3:.1f} calls" in text

    events.clear()
    study_for(root, pipeline, events).optimize(n_trials=2)
    (second,) = forecasts(events)
    finished = store.conn.execute(
        "SELECT COUNT(*) FROM calls c JOIN trials t ON c.study = t.study AND c.trial = t.number "
        "WHERE t.study = ? AND t.number BETWEEN 1 AND 3 AND c.reused = 0", (summary.study,)).fetchone()[0]
    assert second["basis"] == "the mean of this study's 3 finished trials"
    assert second["per_trial"]["calls"] == pytest.approx(finished / 3)
    assert second["trials"] == 2


def test_a_first_run_revises_its_forecast_once_from_its_own_first_three_finished_trials(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=[f"Answer {'!' * n}\n" for n in range(1, 9)])
    events: list = []
    summary = study_for(root, pipeline, events).optimize(n_trials=6)
    kinds = [kind for kind, _ in events if kind in ("forecast", "forecast_revised", "trial_finished")]
    # The baseline, the forecast from its screen, three trials, the forecast from them, the three trials left.
    assert kinds == ["trial_finished", "forecast"] + ["trial_finished"] * 3 + ["forecast_revised"] + \
        ["trial_finished"] * 3
    (first,), (revised,) = forecasts(events), [data for kind, data in events if kind == "forecast_revised"]
    store = Store.for_workspace(root / "runs")
    three = store.conn.execute(
        "SELECT COUNT(*), SUM(joules) FROM calls WHERE study = ? AND trial BETWEEN 1 AND 3 AND reused = 0",
        (summary.study,)).fetchone()
    assert revised["basis"] == "the mean of this study's 3 finished trials" and "baseline" in first["basis"]
    assert revised["trials"] == 3 and revised["after"] == 3
    assert revised["per_trial"]["calls"] == pytest.approx(three[0] / 3)
    assert revised["per_trial"]["joules"] == pytest.approx(three[1] / 3)
    assert summary.forecast.per_trial.basis == first["basis"]  # the summary checks the first, as made before trials


def test_the_revised_forecast_line_says_so():
    from autoresearch.cli.live import LiveView

    cost = TrialCost(calls=9.0, joules=200.0, seconds=20.0, energy_source="estimate",
                     basis="the mean of this study's 3 finished trials", from_trials=True)
    view = LiveView(Console(file=io.StringIO(), force_terminal=False, width=300))
    view.on_event("forecast_revised", forecast(cost, n_trials=None, timeout_s=3600, after=3).to_dict())
    assert view.notes[-1].startswith(
        "forecast, revised: 180 more trials ≈ 1,620 model calls, 36.0 kJ (estimated), 1.0 h of model time "
        "(a trial ≈ 9.0 model calls, 200 J, 20 s; from the mean of this study's 3 finished trials)")


def test_the_first_forecast_leaves_out_the_planner_calls_a_producer_variant_reuses_only_where_it_reuses(
        loop_workspace):
    both = loop_workspace(extra=ONLY_PRODUCER)  # producer.md and planner.md, drawn alike until the sampler learns
    never = loop_workspace(extra=ONLY_PRODUCER, reuse_replies=False, name="no-reuse")
    batched = loop_workspace(extra=ONLY_PRODUCER, name="batched")
    pipeline = ScriptedPipeline(variants=[f"Answer {'!' * n}\n" for n in range(1, 8)])
    firsts = {}
    for name, root in (("both", both), ("never", never), ("batched", batched)):
        # The embedded model with embedded_batch > 1 says so (EmbeddedBackend.decodes_in_batches).
        pipeline.backend.decodes_in_batches = name == "batched"
        events: list = []
        summary = study_for(root, pipeline, events).optimize(n_trials=1)
        (firsts[name],) = forecasts(events)
        screen = Store.for_workspace(root / "runs").conn.execute(
            "SELECT COUNT(*), SUM(c.role = 'planner') FROM calls c JOIN evaluations e ON c.evaluation_id = e.id "
            "WHERE e.study = ? AND e.kind = 'baseline' AND e.split = 'search'", (summary.study,)).fetchone()
        assert tuple(screen) == (6, 2)
    assert firsts["both"]["per_trial"]["calls"] == pytest.approx(6 - 0.5 * 2 + 1)
    assert "(6 calls, less 1 of its 2 planner calls reused)" in firsts["both"]["basis"]
    for name in ("never", "batched"):  # reuse_replies = false; a planner decoding in batches gets no reply cache
        assert firsts[name]["per_trial"]["calls"] == pytest.approx(6 + 1)
        assert "(6 calls)" in firsts[name]["basis"]


def test_a_trial_reuses_planner_replies_in_the_share_of_files_it_may_change_that_the_planner_does_not_read():
    assert reused_shares(["producer.md", "planner.md"], reuses=True) == {"planner": 0.5}
    assert reused_shares(["producer.md"], reuses=True) == {"planner": 1.0}
    assert reused_shares(["planner.md"], reuses=True) == {"planner": 0.0}
    assert reused_shares(["producer.md"], reuses=False) == {}


def test_a_baseline_interrupted_part_way_is_not_the_cost_a_forecast_rests_on(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    judged = {"n": 0}

    def score(answer, task):
        judged["n"] += 1
        if judged["n"] == 2:  # Ctrl-C during the baseline's second search task
            raise KeyboardInterrupt
        return answer.count("!")

    pipeline = ScriptedPipeline(variants=[f"Answer {'!' * n}\n" for n in range(1, 8)], score=score)
    events: list = []
    first = study_for(root, pipeline, events).optimize(n_trials=2)
    assert first.stop_reason == "interrupted" and forecasts(events) == []
    study_for(root, pipeline, events).optimize(n_trials=2)  # the resumed run evaluates the baseline whole
    store = Store.for_workspace(root / "runs")
    calls = store.conn.execute(
        "SELECT e.status, COUNT(c.id) FROM evaluations e JOIN calls c ON c.evaluation_id = e.id WHERE e.study = ? "
        "AND e.kind = 'baseline' AND e.split = 'search' GROUP BY e.id ORDER BY e.id", (first.study,)).fetchall()
    assert [status for status, _ in calls] == ["interrupted", "complete"] and calls[0][1] < calls[1][1]
    (forecast_event,) = forecasts(events)
    # producer.md only: the forecast leaves the planner's 2 calls (2 search tasks) out, as a trial reuses them.
    assert f"the baseline's screen ({calls[1][1]} calls, less 2 of its 2 planner" in forecast_event["basis"]
    assert forecast_event["per_trial"]["calls"] == pytest.approx(calls[1][1] - 2 + 1)


def test_a_timeout_buys_as_many_trials_as_fit_and_a_plateau_alone_none():
    cost = TrialCost(calls=14, joules=300.0, seconds=40.0, energy_source="estimate", basis="test")
    assert forecast(cost, n_trials=None, timeout_s=3600).trials == 90
    assert forecast(cost, n_trials=20, timeout_s=3600).trials == 20  # the fewer of both
    assert forecast(cost, n_trials=None, timeout_s=10).trials == 1  # a trial starts while time is left
    unbounded = forecast(cost, n_trials=None, timeout_s=None)
    assert unbounded.trials is None and unbounded.calls is None
    eight_hours = forecast(cost, n_trials=None, timeout_s=8 * 3600)
    assert (eight_hours.calls, eight_hours.joules, eight_hours.hours) == (720 * 14, 720 * 300.0, 8.0)


def test_the_forecast_line_says_what_it_rests_on():
    from autoresearch.cli.live import forecast_line

    cost = TrialCost(calls=13.5, joules=310.0, seconds=38.0, energy_source="estimate", basis="the baseline")
    line = forecast_line(forecast(cost, n_trials=40, timeout_s=None).to_dict())
    assert line.startswith("forecast: 40 trials ≈ 540 model calls, 12.4 kJ (estimated), 25 min of model time")
    overnight = forecast_line(forecast(cost, n_trials=400, timeout_s=None).to_dict())
    assert "4.2 h of model time" in overnight
    one = forecast_line(forecast(cost, n_trials=1, timeout_s=None).to_dict())
    assert "38 s of model time" in one  # under a minute: seconds, not "1 min" or "0 min"
    assert line.endswith("from the baseline)")
    assert "--plateau alone" in forecast_line(forecast(cost, n_trials=None, timeout_s=None).to_dict())
    assert "once" not in line
    late = forecast_line(forecast(cost, n_trials=40, timeout_s=None, late=LateSets(3, 4, 48, 1700.0)).to_dict())
    assert late.startswith(line) and late.endswith(
        "; once, if a contender gets that far: about 48 calls, 1.7 kJ for the incumbent's seed sets 3–4")


def test_the_keep_rules_cost_follows_the_seed_sets_a_contender_is_confirmed_over():
    # Replayed on the starter (bench_validity): more seed sets, more confirmation calls; none without noise.
    assert [keep_rule_cost(n) for n in range(1, 6)] == [1.0, 1.08, 1.23, 1.34, 1.41]
    assert keep_rule_cost(9) == keep_rule_cost(5) and keep_rule_cost(0) == 1.0


def test_a_baseline_answered_from_an_earlier_commands_replies_forecasts_as_one_that_asked(loop_workspace):
    """`eval` and then `run`: the run's baseline costs it no call (store/replies.py), but a variant's screen will
    make those calls, so the forecast costs the screen's requests as made."""
    from scripted import Identified

    from autoresearch.lm.model_identity import run_identity, run_models
    from autoresearch.lm.replies import ReplyCache
    from autoresearch.pipeline.harness import backend_of
    from autoresearch.pipeline.program import prompt_format
    from autoresearch.pipeline.repeats import evaluate_repeat
    from autoresearch.store.replies import StoredReplies

    def first_forecast(name: str, eval_first: bool):
        root = producer_only(loop_workspace(extra=ONLY_PRODUCER, name=name))
        pipeline = ScriptedPipeline(variants=[f"Answer {'!' * n}\n" for n in range(1, 8)])

        def factory(config, backends):
            return Identified(pipeline.backend, "model A")

        ws = load_workspace(root)
        if eval_first:  # what `autoresearch eval --split search` does (cli/evaluate.py)
            store = Store.for_workspace(ws.runs_dir)
            portfolio = ws.portfolio(ws.settings.workspace.portfolio)
            store.models = run_identity(run_models(portfolio, ws.settings.backends,
                                                   lambda c, b: backend_of(c, b, factory)), prompt_format(ws))
            evaluate_repeat(ws, store, ws.settings.workspace.portfolio, portfolio, ws.suite.split("search"), 0,
                            instructions=ws.instructions, kind="eval", split="search", backend_factory=factory,
                            replies=ReplyCache(lookup=StoredReplies(store)))
            store.close()
        events: list = []
        study = Study(ws, backend_factory=factory, seed=1, backoff_s=0,
                      observer=lambda kind, data: events.append((kind, data)))
        try:
            summary = study.optimize(n_trials=3)
        finally:
            study.close()
        store = Store.for_workspace(root / "runs")
        baseline = store.conn.execute(
            "SELECT COUNT(*), SUM(c.reused) FROM calls c JOIN evaluations e ON c.evaluation_id = e.id "
            "WHERE e.study = ? AND e.kind = 'baseline' AND e.split = 'search'", (summary.study,)).fetchone()
        store.close()
        (first,) = forecasts(events)
        return first, tuple(baseline)

    lent, lent_baseline = first_forecast("eval-first", True)
    asked, asked_baseline = first_forecast("asked", False)
    assert lent_baseline[0] == lent_baseline[1] > 0 and asked_baseline[1] == 0  # every baseline call lent, or none
    assert lent["per_trial"]["calls"] == asked["per_trial"]["calls"] > 1
    assert lent["basis"] == asked["basis"] and lent["trials"] == asked["trials"] == 3
