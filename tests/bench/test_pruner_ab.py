"""The pruner's A/B over seed records: whether the arms agree until the first prune, what that prune would have
become, the calls a variant saved, and that the ablation never counts as a peer."""

from __future__ import annotations

import json

import pytest

from autoresearch.bench import pruner_ab, search_report

PICK = {"planner.md": "plan\n", "producer.md": "write\n"}


def trial(status: str, calls: int, operator: str = "rephrase", file: str = "producer.md", delta=None, stage=None):
    return {"number": 0, "status": status, "calls": calls, "operator": operator, "file": file, "delta": delta,
            "composite": None, "stage": stage, "why": None}


def run(method: str, details, *, pick=PICK, holdout: float = 2.9, search: float = 3.1, held_at: int = 72,
        cut: int = 0):
    """A Study method's run of these finished trials, then `cut` calls of a trial the budget cut short."""
    return {"method": method, "calls": sum(d["calls"] for d in details) + cut, "joules": 100.0, "wall_s": 60.0, "keeps": 0, "best_search": search,
            "holdout": holdout, "trajectory": [[held_at, search, 10.0]], "energy_source": "estimate",
            "trials": [[d["status"], d["calls"]] for d in details], "trial_details": list(details),
            "best_instructions": dict(pick)}


def record(seed: int, loop, unpruned):
    return {"seed": seed, "options": {"budget": 300, "holdout_repeats": 3, "workspace": "w", "portfolio": "p",
                                      "backend": "fake"},
            "machine": {"cpu": "cpu"}, "baseline": {"search": 3.1, "holdout": 2.9}, "screen_calls": 25.0,
            "search_tasks": 8, "holdout_tasks": 4, "total_s": 1.0, "outside_calls": 0,
            "runs": [r for r in (loop, unpruned) if r is not None]}


BASE = trial("baseline", 72, "baseline", "")
SHAPE = trial("discard", 24, "add_example", delta=-0.3, stage="screen")


def test_arms_that_agree_until_the_first_prune_show_what_it_would_have_become_and_the_calls_a_variant_saved():
    loop = run("autoresearch", [BASE, SHAPE, trial("pruned", 8, delta=-1.0), trial("pruned", 6, "compress")])
    # Unpruned, the pruned trial's copy failed its full screen; a later variant lost a long race after its screen.
    unpruned = run("unpruned", [BASE, SHAPE, trial("discard", 24, delta=-0.9, stage="screen"),
                                trial("discard", 100, "compress", delta=0.2, stage="confirm")], cut=40)
    [ab] = pruner_ab.comparisons([record(3, loop, unpruned)])
    assert ab.agreed and ab.compared == 3 and ab.same_pick
    assert ab.first_prune == "discard at its screen, -0.90; pruned at 8 of its 24 calls"
    # The trial the budget cut short is a variant tried, its 40 calls counted.
    assert (ab.loop.variants, ab.loop.variant_calls, ab.unpruned.variants, ab.unpruned.variant_calls) == (3, 38, 4, 188)
    assert ab.saved == pytest.approx(1 - (38 / 3) / (188 / 4))
    # The race is no screen: per failed screen, 3 in 38 calls against 2 in 48.
    assert (ab.loop.failed_screens, ab.unpruned.failed_screens) == (3, 2)
    assert ab.saved_a_failed_screen == pytest.approx(1 - (38 / 3) / (48 / 2))
    text = pruner_ab.table([record(3, loop, unpruned)])
    assert "| 3 | yes (3 trials) | discard at its screen, -0.90; pruned at 8 of its 24 calls | yes |" in text
    assert "Over 1 seed(s) whose arms agree until the first prune: the same pick on 1" in text
    assert "of the 1 first pruned trials, 0 went on to be kept" in text


def test_a_prune_whose_unpruned_copy_was_kept_is_counted_as_one_that_cost_a_keep():
    loop = run("autoresearch", [BASE, trial("pruned", 8)], held_at=72)
    unpruned = run("unpruned", [BASE, trial("keep", 88, delta=0.6, stage="kept")], pick={"planner.md": "new\n"},
                   held_at=160)
    [ab] = pruner_ab.comparisons([record(0, loop, unpruned)])
    assert ab.first_prune == "kept, +0.60; pruned at 8 of its 88 calls" and not ab.same_pick
    assert (ab.loop.held_at, ab.unpruned.held_at) == (72, 160)
    assert "of the 1 first pruned trials, 1 went on to be kept" in pruner_ab.summary_line([ab])


def test_arms_that_differ_before_the_first_prune_are_shown_but_left_out_of_the_summary():
    agree = record(1, run("autoresearch", [BASE, trial("pruned", 8)]),
                   run("unpruned", [BASE, trial("discard", 24, stage="screen")]))
    # The second arm ran other code: its first variant cost other calls before any prune.
    differ = record(2, run("autoresearch", [BASE, SHAPE, trial("pruned", 8)]),
                    run("unpruned", [BASE, trial("discard", 30, "add_example", delta=-0.3, stage="screen")]))
    rows = pruner_ab.comparisons([agree, differ])
    assert [ab.agreed for ab in rows] == [True, False]
    assert rows[1].first_prune is None
    text = pruner_ab.table([agree, differ])
    assert "| 2 | **no** (trial 1 differs) |" in text
    assert "Over 1 seed(s) whose arms agree until the first prune (1 left out)" in text
    # A copy of the pruned trial with another recipe is not the same trial either.
    other = record(4, run("autoresearch", [BASE, trial("pruned", 8, "compress")]),
                   run("unpruned", [BASE, trial("discard", 24, "rephrase", stage="screen")]))
    assert not pruner_ab.compare(other).agreed


def test_an_older_loop_run_without_trial_details_is_compared_by_status_and_calls():
    older = run("autoresearch", [BASE, SHAPE, trial("pruned", 8)])
    del older["trial_details"]
    unpruned = run("unpruned", [BASE, SHAPE, trial("discard", 24, stage="screen")])
    assert pruner_ab.compare(record(5, older, unpruned)).agreed
    unpruned["trial_details"][1]["calls"] = 25
    unpruned["trials"][1][1] = 25
    assert not pruner_ab.compare(record(5, older, unpruned)).agreed


def test_the_ablation_never_counts_as_a_peer_and_gets_its_own_section(tmp_path):
    loop = run("autoresearch", [BASE, trial("pruned", 8)], holdout=2.9)
    # The ablation's pick scored above every peer: were it a peer it would set the target and lead the loop.
    unpruned = run("unpruned", [BASE, trial("keep", 88, stage="kept")], holdout=4.0, search=4.5,
                   pick={"planner.md": "new\n"})
    greedy = run("greedy", [BASE, trial("discard", 24, stage="screen")], holdout=2.9)
    records = [{**record(0, loop, unpruned), "runs": [loop, greedy, unpruned]}]
    search_report.write(tmp_path, records)
    text = (tmp_path / "search.md").read_text()
    assert "| the loop without its pruner (ablation) |" not in text.split("## The pruner's A/B")[0]
    assert "## The pruner's A/B: the loop with and without its pruner" in text
    assert "| 0 | yes (2 trials) | kept; pruned at 8 of its 88 calls |" in text  # no delta on record
    data = json.loads((tmp_path / "search.json").read_text())
    assert set(data["methods"]) == {"autoresearch", "greedy"}
    assert [lead["peer"] for lead in data["leads"]] == ["greedy"]
    assert data["pruner_ab"][0]["seed"] == 0 and data["pruner_ab"][0]["first_prune"].startswith("kept")
    assert search_report.target(search_report.without_ablations(records)[0]) is None  # greedy never rose


def test_the_summary_bounds_the_mean_saving_over_the_seeds():
    rows = []
    for seed, loop_calls in enumerate((10, 12, 14)):  # 3 variants each against the unpruned arm's 2 at 24 calls
        loop = run("autoresearch", [BASE, *[trial("pruned", loop_calls)] * 3])
        unpruned = run("unpruned", [BASE, trial("discard", 24, stage="screen"), trial("discard", 24, stage="screen")])
        rows.append(pruner_ab.compare(record(seed, loop, unpruned)))
    saved = [1 - c / 24 for c in (10, 12, 14)]
    assert [ab.saved for ab in rows] == pytest.approx(saved)
    bound = pruner_ab.lower_bound(saved)
    # mean 50%, sd 8.3%: the 95% t bound with 2 degrees of freedom (2.92) is 36%
    assert bound == pytest.approx(0.5 - 2.919986 * (1 / 12) / 3 ** 0.5, abs=1e-6)
    assert f"one-sided 95% t bound on the mean +{bound:.0%}" in pruner_ab.summary_line(rows)
    assert pruner_ab.lower_bound(saved[:1]) is None


def test_no_seed_with_both_arms_means_no_section(tmp_path):
    loop = run("autoresearch", [BASE, trial("pruned", 8)])
    assert pruner_ab.section([record(0, loop, None)]) == []
    search_report.write(tmp_path, [record(0, loop, None)])
    assert "pruner's A/B" not in (tmp_path / "search.md").read_text()


def test_an_ablation_without_the_loops_run_beside_it_says_so():
    alone = record(2, None, run("unpruned", [BASE, trial("discard", 24, stage="screen")]))
    assert pruner_ab.comparisons([alone]) == []
    text = pruner_ab.table([alone])
    assert text.startswith("The unpruned ablation ran on seed(s) 2 without the loop's run")
