"""The study's noise: its baseline's search evaluation repeated with the next seeds, stored, shown in the
summary, and set beside each keep's delta in its commit."""

from __future__ import annotations

import json
import re
import sqlite3
import statistics

import pytest
from rich.console import Console
from scripted import SeedJudge, git, producer_only

from autoresearch.cli.live import print_summary
from autoresearch.search.study import Study
from autoresearch.testing import DIMENSIONS, ScriptedPipeline
from autoresearch.workspace.workspace import load_workspace

ONE_OPERATOR = '\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\nnoise_repeats = 3\n'


def noise_seeds(db: sqlite3.Connection) -> list[int]:
    """The judge's seed in each whole seed set of the baseline's search evaluations, in the noise's order."""
    rows = db.execute("SELECT repeat, portfolio_json FROM evaluations WHERE split='search' AND variant_hash="
                      "(SELECT variant_hash FROM evaluations WHERE kind='baseline') AND kind != 'trial' "
                      "ORDER BY repeat").fetchall()
    return [json.loads(portfolio)["evaluator"]["seed"] for _, portfolio in rows]


def test_the_baseline_is_repeated_with_the_next_seeds_and_its_spread_stored(loop_workspace):
    root = producer_only(loop_workspace(confidence=0.95, extra=ONE_OPERATOR + "noise_repeats_upfront = 3\n"))
    summary = Study(load_workspace(root), backend_factory=SeedJudge().factory, seed=1,
                    backoff_s=0).optimize(n_trials=0)

    values = summary.noise.values
    assert len(values) == 3 and summary.counts == {"baseline": 1}
    assert [round(b - a, 9) for a, b in zip(values, values[1:])] == [0.7, 0.7]  # judge 7, 8, 9: 0.7 × 1 each
    assert values[0] == summary.baseline_composite  # repeat 0 is the baseline itself
    assert summary.noise.sd == statistics.stdev(values)
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    noise = db.execute("SELECT COUNT(*), MIN(trial), MAX(trial) FROM evaluations WHERE kind='noise'").fetchone()
    assert noise == (2, 0, 0)  # two more search evaluations, of the baseline trial
    assert noise_seeds(db) == [7, 8, 9]


def test_the_baseline_measures_two_seed_sets_upfront_and_a_contender_pays_for_the_next_when_it_reaches_it(
        loop_workspace):
    root = producer_only(loop_workspace(confidence=0.95, extra=ONE_OPERATOR))  # noise_repeats 3, upfront 2
    workspace = load_workspace(root)
    assert workspace.settings.search.noise_repeats_upfront == 2
    summary = Study(workspace, backend_factory=SeedJudge().factory, seed=1, backoff_s=0).optimize(n_trials=0)
    assert [round(v - summary.noise.values[0], 9) for v in summary.noise.values] == [0, 0.7]
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    assert db.execute("SELECT COUNT(*) FROM evaluations WHERE kind IN ('noise', 'incumbent')").fetchone() == (1,)

    # A contender that passes the screen and its first confirmation set needs the incumbent's third: evaluated
    # then, under the contender's trial, and joined to the study's noise as if the baseline had measured it.
    summary = Study(load_workspace(root), backend_factory=SeedJudge(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    assert [o.status for o in summary.outcomes] == ["keep"]
    kinds = db.execute("SELECT kind, repeat FROM evaluations WHERE trial=1 ORDER BY id").fetchall()
    assert kinds == [("trial", 0), ("confirm", 1), ("incumbent", 2), ("confirm", 2), ("holdout", 0)]
    values = summary.noise.values
    assert [round(v - values[0], 9) for v in values] == [0, 0.7, 1.4]  # judge 7, 8, 9 as when measured upfront
    assert noise_seeds(db) == [7, 8, 9]


def test_a_kept_variants_later_seed_set_does_not_join_the_baselines_noise(loop_workspace):
    # A first run confirms over 2 seed sets and keeps "Answer!"; the next, told to confirm over 3, needs that
    # incumbent's third set: evaluated then, but the study's noise stays the baseline's (2 seed sets).
    two = ONE_OPERATOR.replace("noise_repeats = 3", "noise_repeats = 2")
    root = producer_only(loop_workspace(confidence=0.9, extra=two))
    first = Study(load_workspace(root), backend_factory=SeedJudge(variants=["Answer!\n"]).factory, seed=1,
                  backoff_s=0).optimize(n_trials=1)
    assert [o.status for o in first.outcomes] == ["keep"] and len(first.noise.values) == 2
    (root / "autoresearch.toml").write_text((root / "autoresearch.toml").read_text().replace(
        "noise_repeats = 2", "noise_repeats = 3"))
    second = Study(load_workspace(root), backend_factory=SeedJudge(variants=["Answer!!\n"]).factory, seed=1,
                   backoff_s=0).optimize(n_trials=1)
    assert second.study == first.study and [o.status for o in second.outcomes] == ["keep"]
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    assert db.execute("SELECT trial, repeat FROM evaluations WHERE kind='incumbent'").fetchall() == [(2, 2)]
    assert second.noise.values == first.noise.values


@pytest.mark.parametrize("pipeline, sets", [(SeedJudge(), 3), (ScriptedPipeline(), 2)], ids=["noisy", "copies"])
def test_the_forecast_costs_the_seed_sets_a_contender_is_confirmed_over_not_those_measured_upfront(
        loop_workspace, pipeline, sets):
    # noise_repeats 3, 2 measured upfront: a contender is still confirmed over 3, unless the seeds changed no
    # score of the baseline (the scripted judge ignores them), where the race stops after 2.
    root = producer_only(loop_workspace(confidence=0.95, extra=ONE_OPERATOR))
    events: list = []
    Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0,
          observer=lambda kind, data: events.append((kind, data))).optimize(n_trials=1)
    (forecast,) = [data for kind, data in events if kind == "forecast"]
    assert f"confirmations over {sets} seed sets," in forecast["basis"]
    # The incumbent's third set, not measured upfront, is a one-off beside the per-trial cost: a screen's calls.
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    screen = db.execute("SELECT COUNT(*) FROM calls c JOIN evaluations e ON c.evaluation_id = e.id "
                        "WHERE e.kind = 'baseline' AND e.split = 'search'").fetchone()[0]
    late = forecast["late"]
    assert (late and (late["first"], late["last"], late["calls"])) == ((3, 3, screen) if sets == 3 else None)


def test_a_keep_carries_its_paired_evidence_in_its_commit_and_the_summary(loop_workspace):
    root = producer_only(loop_workspace(confidence=0.95, extra=ONE_OPERATOR))
    # "Answer!" gets one more judge point than "Answer." under every seed: +0.7 on each of 2 tasks × 3 seeds.
    # Unpaired, that is inside the noise (the seed moves the baseline by sd 0.7); paired, it is certain.
    summary = Study(load_workspace(root), backend_factory=SeedJudge(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)

    (keep,) = summary.outcomes
    assert keep.status == "keep" and round(keep.delta, 9) == 0.7
    body = git(root, "log", "-1", "--format=%B")
    assert body.splitlines()[0] == "autoresearch: producer.md +0.70 over 2 tasks × 3 seeds (95% bound +0.70)"
    assert "Autoresearch-Evidence: +0.70 over 2 tasks × 3 seeds, 95% lower bound +0.70" in body
    assert "Autoresearch-Pairs: 6 (2 tasks × 3 seeds; 0 left out for faults)" in body
    assert f"Autoresearch-Noise-Sd: {summary.noise.sd:.3f} (the baseline's composite over 3 seeds)" in body
    assert "Autoresearch-Inside-Noise: no (mean delta +0.700, 95% lower bound +0.700)" in body
    assert "Autoresearch-Holdout-Delta: +0.700 (1 task, veto below " in body
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    kinds = db.execute("SELECT kind, repeat FROM evaluations WHERE trial=1 ORDER BY id").fetchall()
    # The screen, the two confirmation seed sets (the incumbent's third evaluated first: the baseline measured
    # two upfront), the holdout; the incumbent's other scores came from the baseline.
    assert kinds == [("trial", 0), ("confirm", 1), ("incumbent", 2), ("confirm", 2), ("holdout", 0)]
    console = Console(record=True, width=200)
    print_summary(console, summary, load_workspace(root))
    assert "keep rule  1 kept (paired over search tasks × seeds" in console.export_text()


class ParityJudge(SeedJudge):
    """'!' helps under odd seeds (+3) and hurts under even ones (−2): a screen win that does not hold."""

    def respond(self, request):
        if self.role_of(request) != "evaluator":
            return super().respond(request)
        answer = re.search(r"<answer>\n(.*)\n</answer>", request.messages[-1].content, re.S).group(1)
        bonus = (3 if request.seed % 2 else -2) if "!" in answer else 0
        return json.dumps({**{d: 4 + bonus for d in DIMENSIONS}, "critique": "fine"})


def test_a_win_that_does_not_hold_across_seeds_is_not_kept(loop_workspace):
    root = producer_only(loop_workspace(confidence=0.95, extra=ONE_OPERATOR))
    head = git(root, "rev-parse", "HEAD")
    # Seeds 7, 8, 9: +2.1, −1.4, +2.1 per task (× 0.7): mean +0.93 but 95% lower bound below zero.
    summary = Study(load_workspace(root), backend_factory=ParityJudge(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    (trial,) = summary.outcomes
    assert trial.status == "discard" and trial.evidence.stage == "bound"
    assert trial.description.startswith("inside the noise: +0.93 over 2 tasks × 3 seeds, 95% lower bound -")
    assert git(root, "rev-parse", "HEAD") == head
    row = sqlite3.connect(root / "runs" / "autoresearch.db").execute(
        "SELECT evidence_json FROM trials WHERE number=1").fetchone()
    evidence = json.loads(row[0])
    assert evidence["search"]["n"] == 6 and evidence["search"]["lower_bound"] < 0 < evidence["search"]["mean"]
    assert evidence["screen_delta"] == pytest.approx(2.1)


class FadingJudge(SeedJudge):
    """'!' gains one judge point under seed 7 and loses five under seed 8: a screen win that collapses at once."""

    def respond(self, request):
        if self.role_of(request) != "evaluator":
            return super().respond(request)
        answer = re.search(r"<answer>\n(.*)\n</answer>", request.messages[-1].content, re.S).group(1)
        bonus = {7: 1, 8: -5}.get(request.seed, 0) if "!" in answer else 0
        return json.dumps({**{d: 6 + bonus for d in DIMENSIONS}, "critique": "fine"})


def test_a_confirmation_stops_after_the_task_that_sinks_the_running_mean(loop_workspace):
    root = producer_only(loop_workspace(confidence=0.95, extra=ONE_OPERATOR))
    summary = Study(load_workspace(root), backend_factory=FadingJudge(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    (trial,) = summary.outcomes
    # Screen: +0.7 on both tasks; the first task of seed set 1: −3.5, so the mean of 3 pairs is −0.7.
    assert trial.status == "discard" and trial.evidence.stage == "confirm"
    assert trial.evidence.comparison.n == 3 and trial.evidence.comparison.mean == pytest.approx(-0.7)
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    evaluations = db.execute("SELECT e.kind, e.repeat, e.status, COUNT(t.id) FROM evaluations e LEFT JOIN "
                             "task_results t ON t.evaluation_id = e.id WHERE e.trial = 1 GROUP BY e.id "
                             "ORDER BY e.id").fetchall()
    assert evaluations == [("trial", 0, "complete", 2), ("confirm", 1, "pruned", 1)]


def test_noise_repeats_1_measures_nothing(loop_workspace):
    root = producer_only(loop_workspace(extra=ONE_OPERATOR.replace("noise_repeats = 3", "noise_repeats = 1")))
    summary = Study(load_workspace(root), backend_factory=SeedJudge(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    assert summary.noise is None and [o.status for o in summary.outcomes] == ["keep"]  # at 75%: 2 tasks suffice
    assert "Autoresearch-Noise" not in git(root, "log", "-1", "--format=%B")
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    assert db.execute("SELECT COUNT(*) FROM evaluations WHERE kind='noise'").fetchone()[0] == 0


def test_show_sets_a_trials_delta_beside_the_noise(loop_workspace):
    from click.testing import CliRunner

    from autoresearch.cli.main import main

    root = producer_only(loop_workspace(confidence=0.95, extra=ONE_OPERATOR))
    summary = Study(load_workspace(root), backend_factory=SeedJudge(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    doc = json.loads(CliRunner().invoke(main, ["show", "1", "-w", str(root), "--json"]).stdout)
    assert doc["noise_sd"] == summary.noise.sd and doc["noise_repeats"] == 3
    assert doc["evidence"]["search"]["tasks"] == 2 and doc["evidence"]["search"]["repeats"] == 3
    text = " ".join(CliRunner().invoke(main, ["show", "1", "-w", str(root)]).stdout.split())
    assert "evidence: kept: +0.70 over 2 tasks × 3 seeds, 95% lower bound +0.70 · holdout +0.70 over 1 task" in text
    assert f"noise: the baseline's composite moves with sd {summary.noise.sd:.2f} over 3 seeds" in text


def test_a_backend_that_ignores_the_seed_is_measured_twice_and_its_keeps_confirmed_once(loop_workspace):
    # The scripted pipeline answers the same whatever the seed (as greedy decoding at temperature 0 does): the
    # first noise repeat copies the baseline, so the other 2 of noise_repeats 4 are not run, the contender is
    # confirmed on one seed set, and its bound counts each task once.
    extra = ONE_OPERATOR.replace("noise_repeats = 3", "noise_repeats = 4")
    root = producer_only(loop_workspace(search_tasks=5, confidence=0.95, extra=extra))
    events: list = []
    study = Study(load_workspace(root), backend_factory=ScriptedPipeline(variants=["Answer!\n"]).factory, seed=1,
                  backoff_s=0, observer=lambda kind, data: events.append((kind, data)))
    summary = study.optimize(n_trials=1)

    assert summary.noise.values == (summary.baseline_composite,) * 2
    assert any(n.startswith("the seeds changed no reply: repeat 1 reproduced all 5 search tasks' replies")
               and "over 2 seed sets, not 4" in n for n in study.notes)
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    assert db.execute("SELECT COUNT(*) FROM evaluations WHERE kind='noise'").fetchone() == (1,)
    (forecast,) = [data for kind, data in events if kind == "forecast"]
    assert "× 1.08 for the keep rule's confirmations over 2 seed sets" in forecast["basis"]  # not 4's 1.34
    kinds = db.execute("SELECT kind, repeat FROM evaluations WHERE trial=1 ORDER BY id").fetchall()
    assert kinds == [("trial", 0), ("confirm", 1), ("holdout", 0)]  # no seed sets 2 and 3: they would copy
    (keep,) = summary.outcomes
    assert keep.status == "keep"  # 5 tasks all one way: a sign test's 1 in 32
    body = git(root, "log", "-1", "--format=%B")
    assert "over 5 tasks × 2 seeds (the seeds changed no score: each task counted once)" in body
    assert "one-sided t: over 5 tasks, the seeds having changed no score +" in body
    # 10 pairs, but as many independent differences as tasks: the Pairs trailer says so too.
    assert "Autoresearch-Pairs: 10 (5 tasks × 2 seeds, the seeds having changed no score: 5 independent; 0 left" in body
    # No seed noise, and every task moved alike: any loss vetoes, and the trailer says what the margin came from.
    assert "veto below +0.000: the spread of the search tasks' differences)" in body
    console = Console(record=True, width=200)
    print_summary(console, summary, load_workspace(root))
    assert "the seeds changed nothing; a variant's tasks are its only evidence" in console.export_text()
