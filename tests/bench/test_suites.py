"""The committed benchmark suites under benchmarks/: each loads as a workspace, is the size issue 15 asks for, and
its good edit (what bench_suite compares the start with) replaces one of its optimizable files."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch.workspace.workspace import load_workspace

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SUITES = {"suite": "good-edit", "summary-risk": "summary-risk-edit"}  # workspace → its good edit's folder


@pytest.mark.parametrize("name", sorted(SUITES))
def test_a_benchmark_suite_loads_with_enough_tasks_and_a_good_edit_of_an_optimizable_file(name):
    ws = load_workspace(BENCHMARKS / name)
    assert len(ws.suite.split("search")) >= 8 and len(ws.suite.split("holdout")) >= 4
    [edit] = (BENCHMARKS / SUITES[name]).iterdir()
    assert edit.name in ws.settings.workspace.optimizable
    assert edit.read_text() != ws.instructions[edit.name]


def test_the_suites_share_their_settings_and_starting_instructions_and_differ_in_tasks():
    # summary-risk measures out of sample what was designed on suite: the same model, portfolio, judge and start.
    first, second = (load_workspace(BENCHMARKS / name) for name in ("suite", "summary-risk"))
    assert first.instructions == second.instructions
    assert first.settings.portfolios == second.settings.portfolios
    assert first.settings.scoring == second.settings.scoring
    assert not {t.prompt for t in first.suite.tasks} & {t.prompt for t in second.suite.tasks}
