"""Smoke tests: both benchmark scripts' main functions, end to end on the scripted fake pipeline."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from autoresearch.bench.methods import LABELS, METHODS
from autoresearch.evaluation.checks import CheckResult

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def fast_meters(no_counters):
    """Estimates only: the smoke tests must not depend on the machine's counters."""


def test_bench_search_runs_every_method_within_the_budget(tmp_path, capsys):
    budget = 40
    rc = load_script("bench_search").main(["--backend", "fake", "--budget", str(budget), "--out", str(tmp_path)])
    assert rc == 0
    table = (tmp_path / "search.md").read_text()
    for method in METHODS:
        assert f"| {LABELS[method]} | 1 |" in table
    assert "| starting instructions (no search) | 1 |" in table
    data = json.loads((tmp_path / "seed-0.json").read_text())
    runs = {r["method"]: r for r in data["runs"]}
    assert set(runs) == set(METHODS)
    for run in runs.values():
        assert run["calls"] <= budget
        assert run["calls"] == run["budget_used"]  # every call counted at the backend was recorded, and vice versa
        # Every method's harness answers a repeated request with its reply (lm/replies.py), which no budget counts.
        assert run["reused"] > 0
        assert run["best_search"] is not None and run["holdout"] is not None
        assert run["stop"] in ("budget", "finished"), run["stop"]
        assert not any("WARNING" in note for note in run["notes"]), run["notes"]
        # The pick is evaluated on the holdout tasks with 3 seed sets by default; holdout is their mean.
        assert len(run["holdout_repeats"]) == 3
        assert run["holdout"] == pytest.approx(sum(run["holdout_repeats"]) / 3)
    assert len(data["baseline"]["holdout_repeats"]) == 3
    # A Study's trials say what each was: the recipe beside how it ended and its calls (the baseline first).
    for method in ("autoresearch", "greedy", "random"):
        details = runs[method]["trial_details"]
        assert [[t["status"], t["calls"]] for t in details] == runs[method]["trials"]
        assert details[0]["operator"] == "baseline" and details[0]["delta"] is None
        assert all(t["operator"] and t["file"] for t in details[1:] if t["status"] != "failed"), details
        assert any(t["delta"] is not None for t in details[1:]), details
        # Where each race ended, and why a trial failed: the keep's race reached "kept", a discard's stopped short.
        assert all((t["stage"] == "kept") == (t["status"] == "keep") for t in details), details
        raced = [t["stage"] for t in details if t["status"] == "discard"]  # None: a twin's, not re-evaluated
        assert set(raced) <= {"screen", "confirm", "bound", "holdout", None} and any(raced), details
        assert all(t["why"] for t in details if t["status"] == "failed") and not any(
            t["why"] for t in details if t["status"] != "failed"), details
    # A full screen of one variant (pruning's estimate): the proposer call and every search task's 3 calls.
    assert data["screen_calls"] == 1 + 3 * data["search_tasks"]
    # The scripted pipeline leaves budget on the table for no method: each is stopped by the budget.
    assert all(r["calls"] == budget for r in runs.values() if r["stop"] == "budget")
    svg = (tmp_path / "search.svg").read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert all(LABELS[m] in svg for m in METHODS) and "target: best peer&#x27;s final" in svg
    out = capsys.readouterr().out
    assert "| method | seeds | holdout composite of the pick (3 repeats) |" in out
    assert "| loop against | seeds | lead (mean ± se) |" in out  # the paired leads, printed too
    # The report again from the seed file alone prints both tables as well.
    assert load_script("bench_search").main(["--report-only", "--out", str(tmp_path)]) == 0
    again = capsys.readouterr().out
    assert "| method | seeds |" in again and "| loop against | seeds |" in again
    # The loop's lead over each peer, paired by seed (one seed here: no bound yet).
    assert re.search(rf"\| {re.escape(LABELS['gepa'])} \| 1 \| [+-]\d\.\d\d \| – \(one seed\) \|", table)
    report = json.loads((tmp_path / "search.json").read_text())
    assert [lead["peer"] for lead in report["leads"]] == [m for m in METHODS if m != "autoresearch"]
    assert report["leads"][0]["differences"] == [runs["autoresearch"]["holdout"] - runs["mipro"]["holdout"]]


def recorded_seeds(monkeypatch) -> list[int | None]:
    """The seed of every request the fake pipeline answers from now on, in order."""
    from autoresearch.bench import fake

    seeds: list[int | None] = []
    respond = fake.FakePipeline.respond

    def recording(self, request):
        seeds.append(request.seed)
        return respond(self, request)

    monkeypatch.setattr(fake.FakePipeline, "respond", recording)
    return seeds


def test_a_peer_seed_repeats_its_proposals_and_another_seed_draws_others(tmp_path, monkeypatch):
    seeds = recorded_seeds(monkeypatch)

    def proposals(seed: int) -> list[int | None]:
        seeds.clear()
        assert load_script("bench_search").main(["--backend", "fake", "--budget", "30", "--methods", "mipro,gepa",
                                                 "--seed", str(seed), "--out", str(tmp_path / f"run{len(runs)}")]) == 0
        runs.append(seed)
        return [s for s in seeds if s != 7]  # the pipeline's roles have seed 7: the rest are the optimizers' calls

    runs: list[int] = []
    first = proposals(0)
    assert first and None not in first  # every proposal call sent a seed
    assert proposals(0) == first  # drawn from the bench seed, not the OS
    assert proposals(1) != first


def test_bench_search_draws_move_every_pipeline_roles_seed_for_every_method_and_the_start(tmp_path, monkeypatch):
    seen = recorded_seeds(monkeypatch)

    def pipeline_seeds(out: str, *extra: str) -> set[int]:
        """The seeds below 2000 the backend saw: the pipeline's roles (the proposers draw theirs at random)."""
        seen.clear()
        assert load_script("bench_search").main(["--backend", "fake", "--budget", "30", "--methods",
                                                 "autoresearch,mipro", "--seed", "1", "--out", str(tmp_path / out),
                                                 *extra]) == 0
        return {s for s in seen if s is not None and s < 2000}

    plain = pipeline_seeds("plain")
    assert plain and max(plain) < 1000 and 7 in plain  # the portfolio's seed 7 and its repeats
    moved = pipeline_seeds("draws", "--draws")
    assert moved == {s + 1000 for s in plain}  # not one call, of the start or of either method, kept seed 7
    record = json.loads((tmp_path / "draws" / "seed-1.json").read_text())
    assert record["options"]["draws"] is True
    assert record["draw"] == {"added": 1000, "seeds": {"planner": 1007, "producer": 1007, "evaluator": 1007}}
    assert "each seed its own" in (tmp_path / "draws" / "search.md").read_text()
    assert "one for every seed" in (tmp_path / "plain" / "search.md").read_text()


def test_bench_search_keeps_seed_files_of_one_kind_of_draw_apart(tmp_path, capsys):
    bench = load_script("bench_search")
    args = ["--backend", "fake", "--budget", "30", "--methods", "greedy", "--out", str(tmp_path)]
    assert bench.main([*args, "--seed", "0"]) == 0
    older = json.loads((tmp_path / "seed-0.json").read_text())
    del older["options"]["draws"]  # a file written before the option existed ran with the portfolio's seeds
    (tmp_path / "seed-0.json").write_text(json.dumps(older))
    assert bench.main([*args, "--seed", "1"]) == 0
    capsys.readouterr()
    assert bench.main([*args, "--seed", "2", "--draws"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed-2.json" in err and "options.draws" in err
    assert not (tmp_path / "seed-2.json").exists()


def test_bench_search_seeds_give_mean_and_spread(tmp_path):
    rc = load_script("bench_search").main(["--backend", "fake", "--budget", "30", "--seeds", "2",
                                           "--methods", "autoresearch,random", "--out", str(tmp_path)])
    assert rc == 0
    runs = [r for seed in (0, 1) for r in json.loads((tmp_path / f"seed-{seed}.json").read_text())["runs"]]
    assert sorted((r["method"], r["seed"]) for r in runs) == [
        ("autoresearch", 0), ("autoresearch", 1), ("random", 0), ("random", 1)]
    row = next(line for line in (tmp_path / "search.md").read_text().splitlines()
               if line.startswith(f"| {LABELS['autoresearch']} |"))
    assert row.startswith(f"| {LABELS['autoresearch']} | 2 |") and " ± " in row
    assert not (tmp_path / "search.log").exists()  # neither method prints: no empty log left behind


def test_bench_search_one_seed_per_command_adds_to_the_results(tmp_path):
    bench = load_script("bench_search")
    args = ["--backend", "fake", "--budget", "30", "--methods", "autoresearch,greedy", "--out", str(tmp_path)]
    assert bench.main([*args, "--seed", "3"]) == 0
    first = (tmp_path / "seed-3.json").read_text()
    assert bench.main([*args, "--seed", "5"]) == 0
    assert (tmp_path / "seed-3.json").read_text() == first  # a later seed leaves the earlier seed's file alone
    assert not list(tmp_path.glob("*.partial"))
    summary = json.loads((tmp_path / "search.json").read_text())
    assert summary["seeds"] == [3, 5] and summary["methods"]["greedy"]["seeds"] == [3, 5]
    machine = json.loads(first)["machine"]  # each CPU with the llama.cpp build it ran, as search.md names it
    build = f" (llama.cpp build {machine['llama_build']})" if machine.get("llama_build") else ""
    assert summary["machines"] == [machine["cpu"] + build]
    assert "seeds 3, 5" in (tmp_path / "search.md").read_text()
    (tmp_path / "search.md").unlink()
    assert bench.main(["--report-only", "--out", str(tmp_path)]) == 0  # the report again, from the seed files alone
    assert "seeds 3, 5" in (tmp_path / "search.md").read_text()
    assert sorted(p.name for p in tmp_path.glob("seed-*.json")) == ["seed-3.json", "seed-5.json"]


def test_running_one_method_of_a_seed_again_keeps_the_other_methods_runs_of_that_seed(tmp_path, capsys):
    bench = load_script("bench_search")
    args = ["--backend", "fake", "--budget", "30", "--seed", "0", "--out", str(tmp_path)]
    assert bench.main([*args, "--methods", "greedy,random"]) == 0
    before = json.loads((tmp_path / "seed-0.json").read_text())
    # As if random's pick had not been the start (none is on the fake): its holdout evaluation made calls and took time.
    before["runs"][1].update(holdout_calls=72, holdout_s=5.0)
    (tmp_path / "seed-0.json").write_text(json.dumps(before))
    assert bench.main([*args, "--methods", "greedy"]) == 0
    after = json.loads((tmp_path / "seed-0.json").read_text())
    assert [r["method"] for r in after["runs"]] == ["greedy", "random"] == after["options"]["methods"]
    assert after["runs"][1] == before["runs"][1]  # random's run, as it was
    assert any(note.startswith("random recipes, no pruner: kept from this seed's earlier file")
               for note in after["notes"])
    # How the kept run stopped, as its own command noted it (a rerun of greedy wrote only greedy's).
    [random_note] = [n for n in before["notes"] if n.startswith("random recipes, no pruner, seed 0: ")]
    assert random_note in after["notes"]
    assert "| random recipes, no pruner | 1 |" in (tmp_path / "search.md").read_text()
    # What the file cost counts every part: the kept run and its pick's holdout evaluation too, not only this command.
    assert after["outside_calls"] == before["outside_calls"] + 72  # the same start, greedy's pick again, random's
    assert after["total_s"] == pytest.approx(after["start_s"] + sum(r["wall_s"] + r["holdout_s"] for r in after["runs"]))
    assert after["total_s"] > after["runs"][1]["wall_s"] + 5.0 + after["runs"][0]["wall_s"]

    # From another start (another machine or build scores it otherwise), nothing runs and the file stays as it was.
    after["baseline"]["search"] += 0.5
    (tmp_path / "seed-0.json").write_text(json.dumps(after))
    capsys.readouterr()
    assert bench.main([*args, "--methods", "greedy"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed-0.json" in err and "'baseline.search'" in err
    assert json.loads((tmp_path / "seed-0.json").read_text()) == after


def test_the_unpruned_ablation_runs_the_loop_without_its_pruner_beside_the_loops_own_run(tmp_path, capsys,
                                                                                        monkeypatch):
    from autoresearch.bench import report, study_methods

    pruners, handed, real = [], [], study_methods.Study

    def study(ws, **kwargs):
        pruners.append(ws.settings.search.pruner)
        handed.append(kwargs.get("pruner"))
        return real(ws, **kwargs)

    monkeypatch.setattr(study_methods, "Study", study)
    bench = load_script("bench_search")
    args = ["--backend", "fake", "--budget", "40", "--seed", "0", "--out", str(tmp_path)]
    # Separate commands, as a benchmark runs them: the fake pipeline's script moves on within one command.
    assert bench.main([*args, "--methods", "autoresearch"]) == 0
    assert bench.main([*args, "--methods", "unpruned"]) == 0
    assert pruners[0] == "paired" and pruners[-1] == "none"
    # The loop gets its own pruner; the ablation the loop's in a shadow (asked, never obeyed), from the workspace
    # as the loop has it, not from its own "none".
    from autoresearch.bench.pruner_shadow import ShadowPruner
    from autoresearch.search.pruning import PairedFutilityPruner

    assert handed[0] is None and isinstance(handed[-1], ShadowPruner)
    assert isinstance(handed[-1].pruner, PairedFutilityPruner)
    record = json.loads((tmp_path / "seed-0.json").read_text())
    assert [r["method"] for r in record["runs"]] == ["autoresearch", "unpruned"]
    assert record["runs"][1]["code"] == report.code_version() and record["runs"][1]["code"]
    shadow = record["runs"][1]["shadow"]
    assert shadow["stops"] == [] and shadow["screens"] and "shadow" not in record["runs"][0]
    out = capsys.readouterr().out
    assert "| 0 | yes (" in out and "whose arms agree until the first prune" in out
    assert "Over 1 seed(s): the pruner would have stopped 0 trial(s)" in out
    assert set(json.loads((tmp_path / "search.json").read_text())["methods"]) == {"autoresearch"}
    # The default run is the five methods: the ablation costs its budget only when named.
    from autoresearch.bench.search import main_args

    assert "unpruned" not in main_args([], "bench_search").methods


def test_a_seed_file_names_the_kept_runs_whose_holdout_evaluation_was_never_timed():
    from autoresearch.bench.search import seed_cost

    timed = {"method": "greedy", "wall_s": 10.0, "holdout_s": 2.0, "holdout_calls": 72}
    older = {"method": "random", "wall_s": 5.0}  # written before runs recorded their holdout evaluation
    cost = seed_cost([timed, older], start_s=3.0, start_calls=96)
    assert cost == {"start_s": 3.0, "untimed": ["random"], "outside_calls": 96 + 72, "total_s": 3.0 + 12.0 + 5.0}


def test_bench_search_report_only_needs_seed_files(tmp_path, capsys):
    assert load_script("bench_search").main(["--report-only", "--out", str(tmp_path)]) == 2
    assert "no seed files" in capsys.readouterr().err


def test_bench_search_refuses_to_add_a_seed_run_under_other_settings(tmp_path, capsys):
    bench = load_script("bench_search")
    args = ["--backend", "fake", "--methods", "greedy", "--out", str(tmp_path)]
    assert bench.main([*args, "--budget", "30", "--seed", "0"]) == 0
    capsys.readouterr()
    assert bench.main([*args, "--budget", "20", "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "seed-1.json" in err and "options.budget" in err and "seed-0.json" in err
    assert not (tmp_path / "seed-1.json").exists()  # refused before anything ran, nothing written


def test_bench_overhead_prints_overhead_cache_and_pruning(tmp_path, capsys):
    rc = load_script("bench_overhead").main(["--backend", "fake", "--trials", "3", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    for heading in ("## Framework overhead", "## Cache", "## Pruning", "Pooled over"):
        assert heading in out
    data = json.loads((tmp_path / "overhead.json").read_text())
    studies = {s["label"]: s for s in data["studies"]}
    assert set(studies) == {"pruner wilcoxon", "pruner none", "cache"}
    cache = studies["cache"]["trials"]
    assert [t["status"] for t in cache] == ["baseline", "discard", "discard"]
    assert cache[1]["calls"] > 0 and cache[2]["calls"] == 0 and "identical to trial 1" in cache[2]["note"]
    for label in ("pruner wilcoxon", "pruner none"):
        trials = studies[label]["trials"]
        assert len(trials) == 4  # baseline + 3 trials: equal trials with and without the pruner
        assert studies[label]["calls"] == sum(t["calls"] for t in trials)
        assert all(0.0 <= t["share"] <= 1.0 for t in trials)


def test_bench_validity_counts_both_rules_on_every_stage(tmp_path, capsys, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the studies' workspaces are made
    rc = load_script("bench_validity").main(["--backend", "fake", "--aa-trials", "4", "--aa-studies", "2",
                                              "--power-tries", "2", "--normal-trials", "3", "--table-nulls", "2",
                                              "--table-sets", "4", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| A/A false keeps (4 null-edit trials) | ≤ 5% |" in out and "Instruction edits against the starter" in out
    data = json.loads((tmp_path / "validity.json").read_text())
    rows = data["rows"]
    assert [(r["stage"], r["study"]) for r in rows].count(("aa", 1)) == 2  # 2 studies × 2 trials
    assert [r["stage"] for r in rows].count("aa") == 4 and [r["stage"] for r in rows].count("power") == 2
    for row in rows:  # both rules' calls: the paired rule never spends less than the screen it shares
        assert row["calls"] >= row["old_calls"] - (6 if row["old_keep"] else 0)
    aa = [r for r in rows if r["stage"] == "aa"]
    assert data["figures"]["aa_false_keeps"] == sum(r["status"] == "keep" for r in aa)
    assert (tmp_path / "validity.md").read_text().startswith("Machine: ")
    # The score table: the starter and 2 null edits (3 A/A variants) and the planted edit, under 4 seed sets.
    assert (data["resampled"]["variants"], data["resampled"]["seed_sets"]) == (3, 4)
    # Behind the paired pruner at its own level and at the bolder ones, each a row of the report.
    assert [row["z"] for row in data["resampled"]["pruned_levels"]] == [1.28, 0.84]
    assert "| paired, z 0.84 |" in (tmp_path / "validity.md").read_text()
    # And with its noise from each other count of seed sets measured upfront (the starter's: 2 of 4).
    assert data["resampled"]["noise_upfront"] == 2
    assert [row["upfront"] for row in data["resampled"]["pruned_upfront"]] == [3, 4]
    report = (tmp_path / "validity.md").read_text()
    assert "| paired (noise from 2 seed sets upfront) |" in report
    assert "| paired, noise from 4 seed sets upfront |" in report
    # And the configured rule with early keeps (the default) beside the rule without them.
    assert data["resampled"]["early_keep"] is True and data["resampled"]["early_flipped"]["aa"]["trials"] > 0
    assert "| on (configured) |" in report and "| off |" in report
    assert [row["delta"] for row in data["resampled"]["uniform_gains"]["true"]] == [0.2, 0.3, 0.5, 0.7, 1.0]
    assert "| kept at δ 0.2 |" in report
    assert list(scratch.iterdir()) == []  # and removed once read


def with_search_tasks(root: Path, count: int) -> Path:
    """The workspace at root with `count` more search tasks ("Name a colour.", at most 20 words)."""
    tasks = root / "rubrics" / "tasks.toml"
    tasks.write_text(tasks.read_text() + "".join(
        f'\n[[tasks]]\nid = "extra-{k}"\nsplit = "search"\nprompt = "Name a colour."\n'
        'criteria = [{ kind = "max_words", value = 20 }]\n' for k in range(count)))
    return root


def test_bench_validity_table_alone_on_another_workspace_reports_its_replay_and_no_empty_study_rows(
        tmp_path, capsys, monkeypatch):
    from autoresearch.workspace.workspace import init_workspace

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    root = with_search_tasks(init_workspace(tmp_path / "ws"), 1)  # the workspace given: its 4 search tasks become 5
    table = tmp_path / "table.json"
    args = ["--backend", "fake", "--stages", "table", "--workspace", str(root), "--table-nulls", "1",
            "--table-sets", "4", "--table", str(table), "--out", str(tmp_path / "out")]
    assert load_script("bench_validity").main(args) == 0
    report = (tmp_path / "out" / "validity.md").read_text()
    assert "A/A, resampled" in report and "| paired, z 1.28 |" in report
    assert "null-edit trials" not in report and "Baselines:" not in report  # no study stage ran
    first = json.loads(table.read_text())
    assert len(first["variants"]["starter"]["search"]) == 5
    # Asked for one more null edit, the table grows: the 3 variants' scores are kept, only the new one runs.
    assert load_script("bench_validity").main([*args[:7], "2", *args[8:]]) == 0
    grown = json.loads(table.read_text())
    assert sorted(grown["variants"]) == ["null 1", "null 2", "planted", "starter"]
    assert grown["variants"]["starter"] == first["variants"]["starter"]
    assert grown["calls"] - first["calls"] == first["calls"] / 3
    capsys.readouterr()


def test_bench_validity_keeps_its_studies_workspaces_on_request_with_each_keeps_commit(tmp_path, capsys, monkeypatch):
    from autoresearch.workspace.workspace import init_workspace

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # 6 search tasks: on the (deterministic) fake each counts once, and a 95% bound needs 5.
    root = with_search_tasks(init_workspace(tmp_path / "ws"), 2)
    # The fake producer echoes its instructions: a copy, whose judge score the degenerate guard would zero.
    config = root / "autoresearch.toml"
    config.write_text(config.read_text().replace("degenerate_guard = true", "degenerate_guard = false"))
    rc = load_script("bench_validity").main(["--backend", "fake", "--stages", "power", "--power-tries", "1",
                                              "--workspace", str(root), "--keep-scratch",
                                              "--out", str(tmp_path / "out")])
    assert rc == 0
    out = capsys.readouterr().out
    [kept] = list(scratch.iterdir())
    assert f"workspace copies kept in {kept}" in out
    [row] = json.loads((tmp_path / "out" / "validity.json").read_text())["rows"]
    assert row["status"] == "keep"
    log = subprocess.run(["git", "-C", str(kept / "power-0"), "log", "-1", "--format=%B"], capture_output=True,
                         text=True, check=True).stdout
    assert "Autoresearch-Evidence:" in log and "Autoresearch-Holdout-Delta:" in log


def test_null_edits_change_only_whitespace_and_never_repeat():
    from autoresearch.bench.validity import NullEdits

    edits = NullEdits()
    parent = "You are a helpful assistant. Answer the task.\n"
    texts = [edits.propose(parent, None, None, []).text for _ in range(20)]
    assert len(set(texts)) == 20 and all(t.split() == parent.split() for t in texts)


@pytest.mark.embedded
def test_bench_inference_compares_reuse_off_and_on_on_the_real_model(tmp_path, capsys, kit):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from autoresearch.workspace.workspace import init_workspace

    # The starter with short replies: what reuse saves is in the prompts, not in the producer's 280 tokens (nor
    # in the 120 of a plan or the 160 of a judgement, sampled through the whole grammar when reuse is off).
    root = init_workspace(tmp_path / "ws")
    kit.shorten_replies(root / "autoresearch.toml", planner=64, producer=96, judge=96)
    out_json = tmp_path / "inference.json"
    rc = load_script("bench_inference").main(["--workspace", str(root), "--tasks", "2", "--repeats", "1",
                                              "--settings", "off,on", "--json", str(out_json)])
    assert rc == 0
    out = capsys.readouterr().out
    off = next(line for line in out.splitlines() if line.startswith("| off |"))
    on = next(line for line in out.splitlines() if line.startswith("| on |"))
    # Two tasks: a plan, a draft and a judgement each. Reuse and lazy grammars change no reply and no score.
    assert on.endswith("| 6/6 | 2/2 |") and off.endswith("| 6/6 | 2/2 |")
    runs = json.loads(out_json.read_text())["runs"]
    assert runs["on"][0]["replies"] == runs["off"][0]["replies"]
    # Each role's fixed prefix was computed for the first task only: fewer prompt tokens computed with reuse.
    assert runs["on"][0]["prompt_tokens_computed"] < runs["off"][0]["prompt_tokens_computed"]
    assert "machine:" in out and "memory: RSS" in out and "estimate" in out


@pytest.mark.embedded
def test_bench_energy_prints_each_roles_joules_on_the_real_model_and_says_they_are_estimates(tmp_path, capsys,
                                                                                             kit):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from autoresearch.workspace.workspace import init_workspace

    root = init_workspace(tmp_path / "ws")
    # short replies: the figures' shape is under test, not their size
    kit.shorten_replies(root / "autoresearch.toml", planner=32, producer=48)
    assert load_script("bench_energy").main(["--workspace", str(root), "--tasks", "1"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    for role in ("planner", "producer", "evaluator"):
        cells = [c.strip() for c in rows[role].split("|")[1:-1]]
        assert cells[1] == "1" and float(cells[2]) > 0 and cells[-1] == "estimate"  # 1 call, J/task, meter
    assert rows["all"].startswith("| all | 3 |")
    assert "1 task(s) × 1 repeat(s)" in out and "not a measurement" in out  # no counter here: it says so


@pytest.mark.embedded
def test_bench_suite_pairs_both_sides_under_the_same_seeds(tmp_path, capsys, monkeypatch, kit):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from autoresearch.workspace.workspace import init_workspace

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the two sides' workspace copies are made

    root = init_workspace(tmp_path / "ws")
    (root / "rubrics" / "tasks.toml").write_text(
        '[[tasks]]\nid = "tips"\nsplit = "search"\nprompt = "Give two tips for naming variables, numbered."\n'
        'criteria = [{ kind = "exact_numbered", value = 2 }]\n\n'
        '[[tasks]]\nid = "define"\nsplit = "holdout"\nprompt = "Define a cache in one sentence."\n'
        'criteria = [{ kind = "max_words", value = 30 }]\n')
    # Short answers and judgements: the pairing, not the answers' quality, is under test (the producer's 280 tokens
    # and the judge's 160 take most of the time; a judgement's scores come first, its critique is what is cut).
    kit.shorten_replies(root / "autoresearch.toml", producer=96, judge=64)
    out_json = tmp_path / "suite.json"
    # The "edit" is the producer's own file: the same instructions under the same seeds score the same.
    rc = load_script("bench_suite").main(["--workspace", str(root), "--edit", str(root / "instructions" / "producer.md"),
                                          "--repeats", "2", "--json", str(out_json)])
    assert rc == 0
    splits = json.loads(out_json.read_text())["splits"]
    for split in ("search", "holdout"):
        assert len(splits[split]["start"]) == 2 and splits[split]["start"] == splits[split]["edit"]
        assert splits[split]["effect"] == 0.0
        assert splits[split]["judge"]["start"] == splits[split]["judge"]["edit"]
        assert all(c["start"] == c["edit"] and c["start"][1] == 2 for c in splits[split]["checks"].values())
    out = capsys.readouterr().out
    assert "| search | 1 |" in out and "| holdout | 1 |" in out and "machine:" in out
    assert "search: judge mean" in out and "answers passing each check: exact_numbered, each task's own" in out
    assert all(splits[split]["degenerate"]["start"] == splits[split]["degenerate"]["edit"] for split in splits)
    assert all(splits[split]["degenerate"]["start"][1] == 2 for split in splits)  # 1 task × 2 seed sets answered
    assert list(scratch.iterdir()) == []  # the copies are removed


def test_bench_suite_says_which_checks_moved_a_house_style_apart_from_each_task_s_own():
    what_moved = load_script("bench_suite").what_moved

    def answer(task, judge, **passed):
        checks = [CheckResult(criterion, ok, "") for criterion, ok in
                  (("regex ^TL;DR: ", passed["tldr"]), (f"contains {task}", passed["word"]))]
        return SimpleNamespace(task_id=task, failed=passed.get("failed", False), score_r1=judge, checks=checks,
                               degenerate=passed.get("degenerate"))

    results = [answer("a", 2.0, tldr=True, word=True), answer("b", 4.0, tldr=False, word=True),
               answer("c", 9.0, tldr=True, word=True, failed=True)]
    judge, counts = what_moved(results, {"a", "b", "c"})
    assert judge == 3.0  # the failed task's answer is left out
    assert counts == {"regex ^TL;DR: ": [1, 2], "contains, each task's own": [2, 2]}
    assert what_moved(results, {"b"}) == (4.0, {"regex ^TL;DR: ": [0, 1], "contains, each task's own": [1, 1]})


def test_bench_suite_counts_the_answers_the_degenerate_guard_zeroed_among_the_answered():
    degenerate_count = load_script("bench_suite").degenerate_count
    results = [SimpleNamespace(task_id=t, failed=failed, degenerate=why) for t, failed, why in
               (("a", False, "a repetition loop"), ("b", False, None), ("c", True, "no words"), ("d", False, "a copy"))]
    assert degenerate_count(results, {"a", "b", "c"}) == [1, 2]  # c failed: not an answer
    assert degenerate_count(results, {"b", "d"}) == [1, 2]


def test_bench_calls_counts_each_roles_calls_and_says_when_the_backend_does_not_report_what_it_computed(
        tmp_path, capsys):
    out_json = tmp_path / "calls.json"
    rc = load_script("bench_calls").main(["--backend", "fake", "--trials", "2", "--out", str(out_json)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "machine:" in out
    data = json.loads(out_json.read_text())
    assert [t["number"] for t in data["trials"]] == [1, 2] and f"trials: {data['trials'][0]['status']}" in out
    roles = {r["role"]: r for r in data["roles"]}
    assert set(roles) == {"planner", "producer", "evaluator", "proposer"}
    assert all(r["calls"] > 0 and r["computed_tokens"] is None and r["reused_share"] is None for r in roles.values())
    proposer = next(line for line in out.splitlines() if line.startswith("| proposer |"))
    assert proposer.split(" | ")[3:5] == ["?", "?"]  # the scripted pipeline reports no computed tokens


def test_bench_calls_sums_the_tokens_an_engine_says_it_computed():
    from autoresearch.bench.call_costs import by_role, counting_calls
    from autoresearch.energy import EstimateMeter
    from autoresearch.lm.backends import (
        ChatMessage,
        Completion,
        CompletionRequest,
        FakeBackend,
    )
    from autoresearch.lm.engine import BackendEngine
    from autoresearch.workspace.config import RoleConfig

    fake = FakeBackend([Completion("a", 100, 5, 1.0, timings={"prompt_eval_tokens": 100.0, "prompt_eval_s": 0.8}),
                        Completion("b", 100, 5, 0.4, timings={"prompt_eval_tokens": 10.0, "prompt_eval_s": 0.1}),
                        Completion("c", 100, 5, 0.4, timings={"prompt_eval_tokens": 10.0, "prompt_eval_s": 0.1})])
    meter = EstimateMeter(in_process=False, cpu_watts_per_core=12.0, server_watts=60.0)
    engine = BackendEngine("proposer", RoleConfig(backend="fake", model="m"), fake, meter, retries=0, backoff_s=0.0)
    request = CompletionRequest(model="m", messages=(ChatMessage("user", "hi"),))
    with counting_calls() as costs:
        engine.call(request)
        engine.call(request)
    engine.call(request)  # after the block: not counted
    assert len(costs) == 2
    (row,) = by_role(costs)
    assert (row.role, row.calls, row.prompt_tokens, row.computed_tokens) == ("proposer", 2, 200, 110)
    assert row.reused_share == pytest.approx(0.45) and row.prompt_s == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["bench_calls", "bench_energy", "bench_inference", "bench_overhead", "bench_search",
                                  "bench_suite", "bench_validity", "check_nvml", "crash_test"])
def test_a_scripts_bad_argument_is_one_line_naming_it_and_exit_code_2(name, capsys, monkeypatch):
    script = load_script(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--no-such-flag"])  # crash_test reads sys.argv
    with pytest.raises(SystemExit) as stopped:
        script.main() if name == "crash_test" else script.main(["--no-such-flag"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --no-such-flag" in err and "usage:" not in err
