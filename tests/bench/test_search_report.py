"""bench_search's report over seed files: targets, calls to target, pruning's share, and the seed files' checks."""

from __future__ import annotations

import html
import json
import re

import pytest

from autoresearch.bench import call_shares, report, search_report, seeds
from autoresearch.lm.backends import llama_build


def run(method: str, trajectory, final: float | None, *, calls: int = 300, trials=(), holdout: float = 3.0):
    return {"method": method, "calls": calls, "joules": 100.0, "wall_s": 60.0, "keeps": 1, "best_search": final,
            "holdout": holdout, "trajectory": [list(p) for p in trajectory], "trials": [list(t) for t in trials],
            "energy_source": "estimate"}


def record(seed: int, runs, *, budget: int = 300, screen_calls: float | None = 25.0):
    return {"seed": seed, "options": {"budget": budget, "holdout_repeats": 3, "workspace": "w"},
            "machine": {"cpu": "cpu"}, "baseline": {"search": 3.0, "holdout": 2.5}, "screen_calls": screen_calls,
            "runs": runs}


def test_the_target_is_the_best_peer_final_and_never_the_loop_own():
    rec = record(0, [run("autoresearch", [(96, 3.0, 10.0)], 9.0), run("gepa", [(30, 3.5, 5.0)], 4.0),
                     run("greedy", [(96, 3.0, 10.0)], 3.8)])
    assert search_report.target(rec) == 4.0


def test_a_seed_where_no_peer_rose_above_the_start_has_no_target():
    rec = record(0, [run("autoresearch", [(96, 3.0, 10.0)], 3.0), run("gepa", [(30, 3.0, 5.0)], 3.0)])
    assert search_report.target(rec) is None
    line = next(x for x in search_report.table([rec]).splitlines() if x.startswith("| autoresearch"))
    assert "– (no peer rose above the start)" in line


def test_calls_to_target_are_those_of_the_first_point_that_reaches_it():
    loop = run("autoresearch", [(96, 3.0, 10.0), (150, 3.9, 20.0), (210, 4.2, 30.0)], 4.2)
    assert search_report.reached(loop, 4.0) == (210, 30.0)
    assert search_report.reached(loop, 3.9) == (150, 20.0)
    assert search_report.reached(loop, 4.5) is None
    assert search_report.reached(loop, None) is None


def test_pruning_share_counts_pruned_trials_calls_and_estimates_what_full_screens_would_cost():
    loop = run("autoresearch", [], 3.0, calls=100, trials=[("baseline", 40), ("pruned", 10), ("pruned", 15),
                                                           ("discard", 35)])
    n, share, saved, screen_saved = call_shares.pruning(loop, 25.0)
    assert n == 2 and share == pytest.approx(0.25)
    assert saved == pytest.approx((15 + 10) / (100 + 25))  # each pruned trial would have cost a full 25-call screen
    # Of the screens alone (the baseline and the discard's 10 calls after its screen left out): 3 full screens.
    assert screen_saved == pytest.approx((15 + 10) / (25 + 25 + 25))
    assert call_shares.pruning(loop, None)[2:] == (None, None)


def test_failed_screens_count_pruned_trials_and_discards_that_never_reached_a_confirmation():
    # A 25-call screen: the 30-call discard ended in its screen, the 70-call one went on to a confirmation.
    loop = run("autoresearch", [], 3.0, calls=200, trials=[("baseline", 40), ("pruned", 10), ("discard", 30),
                                                           ("discard", 70), ("keep", 50)])
    assert call_shares.failed_screens(loop, 25.0) == pytest.approx((10 + 30) / 200)
    assert call_shares.failed_screens(loop, None) is None
    assert call_shares.failed_screens(run("mipro", [], 3.0), 25.0) is None  # no trials: nothing to say
    row = next(x for x in search_report.table([record(0, [loop])]).splitlines() if x.startswith("| autoresearch"))
    assert row.split(" | ")[-2] == "20%"


def test_the_table_says_when_a_pruning_figure_rests_on_fewer_seeds_than_the_row():
    # Seed 1's file has no screen cost, so neither the calls saved nor the ceiling can be figured for it: the row
    # must say "(1 of 2)" rather than print seed 0's figure as the mean of both.
    trials = [("baseline", 40), ("pruned", 10), ("discard", 30), ("keep", 120)]
    records = [record(0, [run("autoresearch", [], 3.0, calls=200, trials=trials)]),
               record(1, [run("autoresearch", [], 3.0, calls=200, trials=trials)], screen_calls=None)]
    line = next(x for x in search_report.table(records).splitlines() if x.startswith("| autoresearch"))
    # Screens: the pruned trial's 10 calls + 15 saved, the discard's 25, the keep's first 25: 15 of 75 saved.
    assert "(5% ± 0%; 7% (1 of 2); 20% (1 of 2)) | 20% (1 of 2) |" in line


def test_summary_pairs_each_pick_with_the_start_of_its_own_seed():
    records = [record(0, [run("greedy", [], 3.0, holdout=3.0)]), record(1, [run("greedy", [], 3.0, holdout=2.0)])]
    records[1]["baseline"]["holdout"] = 1.0
    row = search_report.summarise(records)["greedy"]
    assert row.holdout_delta == [pytest.approx(0.5), pytest.approx(1.0)]
    line = next(x for x in search_report.table(records).splitlines() if x.startswith("| greedy"))
    assert "| +0.75 ± 0.35 |" in line


def test_the_gains_table_pairs_each_pick_above_the_start_on_search_with_its_gain_on_holdout():
    records = [record(0, [run("gepa", [], 3.5, holdout=2.5), run("greedy", [], 3.0, holdout=2.5)]),
               record(1, [run("gepa", [], 3.3, holdout=2.7), run("greedy", [], 3.0, holdout=2.9)])]
    rows = dict(line.split(" | ", 1) for line in search_report.gains_table(records).splitlines()[2:])
    # GEPA's picks gained 0.5 and 0.3 on search, 0.0 and 0.2 on holdout (the start: 3.0 search, 2.5 holdout).
    assert rows["| dspy.GEPA"] == "2 of 2 | +0.40 ± 0.14 | +0.10 ± 0.14 |"
    # Greedy handed back the start (its search composite equals it): no gain to check, whatever its holdout did.
    assert rows["| greedy (incumbent only)"] == "0 of 2 | – | – |"


def test_the_holdout_target_is_the_best_peer_pick_on_holdout_and_when_each_side_held_its_pick():
    # The start: 2.5 on holdout. MIPROv2 held its pick (3.2) from call 240; GEPA's pick is worse on holdout.
    loop = run("autoresearch", [(72, 3.0, 1000.0), (200, 3.8, 6000.0)], 3.8, holdout=3.7)
    mipro = run("mipro", [(30, 3.0, 500.0), (240, 3.4, 8000.0)], 3.4, holdout=3.2)
    gepa = run("gepa", [(50, 3.1, 700.0), (280, 4.1, 9000.0)], 4.1, holdout=2.9)
    rows = search_report.holdout_target_table([record(0, [loop, mipro, gepa])]).splitlines()[2:]
    assert rows == ["| 0 | 2.50 | dspy.MIPROv2 (0 demos): 3.20 (240 / 8,000 J) | 3.70 | 200 / 6,000 J | 83% / 75% |"]


def test_a_pick_that_is_the_start_was_held_from_the_first_call_and_sets_no_holdout_target():
    loop = run("autoresearch", [(72, 3.0, 1000.0)], 3.0, holdout=2.5)  # kept nothing: its pick is the start
    assert search_report.pick_found(loop, 2.5) == (0, 0.0)
    greedy = run("greedy", [(72, 3.0, 1000.0)], 3.0, holdout=2.5)
    [row] = search_report.holdout_target_table([record(0, [loop, greedy])]).splitlines()[2:]
    assert row.endswith("| – (no peer's pick above the start) |")
    behind = run("autoresearch", [(72, 3.0, 1000.0), (150, 3.5, 3000.0)], 3.5, holdout=2.8)
    ahead = run("random", [(120, 3.6, 2000.0)], 3.6, holdout=3.1)
    [row] = search_report.holdout_target_table([record(0, [behind, ahead])]).splitlines()[2:]
    assert row.endswith("| 150 / 3,000 J | not reached |")


def test_a_holdout_target_without_a_seed_that_ran_the_loop_and_a_peer_says_so_in_one_line():
    loop = run("autoresearch", [(72, 3.0, 1000.0)], 3.0, holdout=2.5)
    assert search_report.holdout_target_table([record(0, [loop])]) == (
        "Holdout target: no seed here has both the loop's run and a peer's.")


def test_the_curve_starts_at_each_seed_start_and_steps_to_each_best():
    loop = run("autoresearch", [(96, 3.5, 10.0), (200, 4.0, 20.0)], 4.0)
    assert search_report.best_so_far(loop, 3.0, 50) == 3.0
    assert search_report.best_so_far(loop, 3.0, 96) == 3.5
    assert search_report.best_so_far(loop, 3.0, 300) == 4.0
    svg = search_report.curve_svg([record(0, [loop, run("gepa", [(30, 3.2, 1.0)], 3.2)])])
    assert "final search composite, 3.20 (1 seed)" in svg and "dspy.GEPA: 3.20 after 300 calls" in svg



def test_the_curve_names_methods_whose_lines_lie_on_one_another():
    flat = [run(m, [(96, 3.0, 10.0)], 3.0) for m in ("autoresearch", "greedy", "random")]
    svg = search_report.curve_svg([record(0, [*flat, run("gepa", [(30, 3.2, 1.0)], 3.2)])])
    notes = " ".join(html.unescape(t) for t in re.findall(r'<text x="64" y="\d+">([^<]*)</text>', svg))
    assert notes == ("autoresearch loop (as shipped), greedy (incumbent only), random recipes, no pruner: on the "
                     "starting instructions' line, drawn on top of each other")
    alone = search_report.hidden_lines({"greedy": [(0.0, 3.0), (300.0, 3.0)], "gepa": [(0.0, 3.0), (300.0, 3.2)]},
                                       3.0)
    assert alone == ["greedy (incumbent only): on the starting instructions' line"]
    assert search_report.hidden_lines({"gepa": [(0.0, 3.0), (300.0, 3.2)]}, 3.0) == []

def test_the_table_counts_replies_reused_over_the_seeds_whose_files_record_them():
    old, new = run("gepa", [], 3.0), run("gepa", [], 3.0)
    new["reused"] = 91
    records = [record(0, [old]), record(1, [new])]
    line = next(x for x in search_report.table(records).splitlines() if x.startswith("| dspy.GEPA"))
    assert "| 300 ± 0 | 91 (1 of 2) |" in line  # model calls, then the reused replies of the one seed that has them
    assert "| 300 | – |" in next(x for x in search_report.table([records[0]]).splitlines()
                                 if x.startswith("| dspy.GEPA"))


def test_seed_files_are_read_in_seed_order_and_other_settings_are_refused(tmp_path):
    seeds.write_seed(tmp_path, record(10, []))
    seeds.write_seed(tmp_path, record(2, []))
    assert [r["seed"] for r in seeds.load_seeds(tmp_path)] == [2, 10]
    seeds.write_seed(tmp_path, record(4, [], budget=200))
    with pytest.raises(ValueError, match=r"seed-4\.json: field 'options\.budget' is 200, but seed-2\.json has 300"):
        seeds.load_seeds(tmp_path)


def test_seed_files_of_another_suite_are_refused(tmp_path):
    first, second = record(0, []), record(1, [])
    first["suite"] = {"evaluation": "aaa", "instructions": "iii"}
    second["suite"] = {"evaluation": "bbb", "instructions": "iii"}
    seeds.write_seed(tmp_path, first)
    seeds.write_seed(tmp_path, second)
    with pytest.raises(ValueError, match=r"seed-1\.json: field 'suite\.evaluation' differs from seed-0\.json's"):
        seeds.load_seeds(tmp_path)


def test_a_damaged_seed_file_is_named(tmp_path):
    (tmp_path / "seed-0.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"seed-0\.json: not a bench_search seed file"):
        seeds.load_seeds(tmp_path)
    (tmp_path / "seed-0.json").write_text(json.dumps({"seed": 0, "options": {}}))
    with pytest.raises(ValueError, match=r"seed-0\.json: not a bench_search seed file \(no field 'machine'\)"):
        seeds.load_seeds(tmp_path)


def test_the_machine_records_which_instruction_sets_the_llama_cpp_build_uses(monkeypatch):
    info = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | AMX_INT8 = 0 | OPENMP = 1 | REPACK = 1 |"
    monkeypatch.setattr(llama_build, "system_info", lambda: info)
    machine = report.machine()
    assert machine["llama_build"] == "SSE3 AVX2"  # features off and llama.cpp's settings left out
    assert report.machine_line(machine).endswith(" · llama.cpp build SSE3 AVX2")

    def missing():
        raise ImportError("No module named 'llama_cpp'")

    monkeypatch.setattr(llama_build, "system_info", missing)
    assert "llama_build" not in report.machine()


def test_the_report_says_whether_seeds_from_several_machines_ran_one_llama_cpp_build():
    def on(cpu, build=None, release="0.3.36"):
        rec = record(0, [])
        rec["machine"] = {"cpu": cpu, "packages": {"llama_cpp_python": release},
                          **({"llama_build": build} if build else {})}
        return rec

    assert report.machines_line([on("EPYC", "AVX2"), on("EPYC", "AVX2")]) == \
        "Machine: EPYC (llama.cpp build AVX2)."
    assert report.machines_line([on("EPYC", "AVX2"), on("Xeon", "AVX2")]).startswith(
        "Machines (one llama.cpp build on each, so their scores compare): ")
    # Other instruction sets, another release, or a seed file that does not say.
    for other in (on("Xeon", "AVX2 AVX512"), on("Xeon", "AVX2", release="0.3.37"), on("Xeon")):
        assert report.machines_line([on("EPYC", "AVX2"), other]).startswith(
            "Machines (scores can differ between llama.cpp builds: compare within a seed): ")

