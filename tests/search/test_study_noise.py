"""The study's noise: its baseline's search evaluation repeated with the next seeds, stored, shown in the
summary, and set beside each keep's delta in its commit."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import statistics

from rich.console import Console
from scripted import git, producer_only

from autoresearch.cli.live import print_summary
from autoresearch.search.study import Study
from autoresearch.testing import DIMENSIONS, ScriptedPipeline
from autoresearch.workspace.workspace import load_workspace

ONE_OPERATOR = '\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\n'


class SeedJudge(ScriptedPipeline):
    """The judge's score is its own seed mod 10 plus the answer's '!' marks: the seed moves it by chance."""

    def respond(self, request):
        if self.role_of(request) != "evaluator":
            return super().respond(request)
        answer = re.search(r"<answer>\n(.*)\n</answer>", request.messages[-1].content, re.S).group(1)
        value = min(10, request.seed % 10 + answer.count("!"))
        return json.dumps({**{d: value for d in DIMENSIONS}, "critique": "fine"})


def test_the_baseline_is_repeated_with_the_next_seeds_and_its_spread_stored(loop_workspace):
    root = producer_only(loop_workspace(extra=ONE_OPERATOR))
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
    seeds = json.loads(db.execute("SELECT noise_json FROM studies").fetchone()[0])["seeds"]
    assert [s["evaluator"] for s in seeds] == [7, 8, 9]


def test_a_keep_inside_the_noise_says_so_in_its_commit_and_the_summary(loop_workspace):
    root = producer_only(loop_workspace(extra=ONE_OPERATOR))
    # "Answer!" gets one more point from the judge than "Answer.": +0.7, under the noise (sd 0.7 per evaluation).
    summary = Study(load_workspace(root), backend_factory=SeedJudge(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)

    (keep,) = summary.outcomes
    assert keep.status == "keep" and round(keep.delta, 9) == 0.7
    body = git(root, "log", "-1", "--format=%B")
    difference = math.sqrt(2) * summary.noise.sd
    assert f"Autoresearch-Noise-Sd: {summary.noise.sd:.3f} (the baseline over 3 seeds)" in body
    assert f"Autoresearch-Inside-Noise: yes (delta +0.700, sd of a difference {difference:.3f})" in body
    console = Console(record=True, width=200)
    print_summary(console, summary, load_workspace(root))
    text = console.export_text()
    assert f"two single evaluations differ with sd {difference:.2f}" in text
    assert "1 of this run's 1 keeps (trial 1) beat the incumbent by less than that: inside the noise" in text


def test_noise_repeats_1_measures_nothing(loop_workspace):
    root = producer_only(loop_workspace(extra=ONE_OPERATOR + "noise_repeats = 1\n"))
    summary = Study(load_workspace(root), backend_factory=SeedJudge(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    assert summary.noise is None
    assert "Autoresearch-Noise" not in git(root, "log", "-1", "--format=%B")
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    assert db.execute("SELECT COUNT(*) FROM evaluations WHERE kind='noise'").fetchone()[0] == 0


def test_show_sets_a_trials_delta_beside_the_noise(loop_workspace):
    from click.testing import CliRunner

    from autoresearch.cli.main import main

    root = producer_only(loop_workspace(extra=ONE_OPERATOR))
    summary = Study(load_workspace(root), backend_factory=SeedJudge(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    doc = json.loads(CliRunner().invoke(main, ["show", "1", "-w", str(root), "--json"]).stdout)
    assert doc["noise_sd"] == summary.noise.sd and doc["noise_repeats"] == 3
    text = CliRunner().invoke(main, ["show", "1", "-w", str(root)]).stdout
    difference = math.sqrt(2) * summary.noise.sd
    assert (f"noise: the baseline's composite moves with sd {summary.noise.sd:.2f} over 3 seeds; this delta +0.70 "
            f"is inside the sd of a difference, {difference:.2f}") in " ".join(text.split())
