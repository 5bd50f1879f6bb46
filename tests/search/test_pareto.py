"""The Pareto front of composite against joules per task is stored and printed at the end of a run."""

from __future__ import annotations

from scripted import ScriptedPipeline, git

from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace


def test_front_is_non_dominated_and_written_to_pareto_tsv(loop_workspace):
    root = loop_workspace(extra='\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\n')
    pipeline = ScriptedPipeline(variants=["Answer!!\n", "Answer plainly, at length, with care.\n", "Answer!\n"])
    pipeline.backend.in_process = False  # served: energy is wall time × watts, so slower calls cost more
    pipeline.backend.delay_s = 0.002
    summary = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=3)

    front = summary.pareto
    assert front, "a study with finished trials has a front"
    for p in front:
        for q in front:
            assert not (q.composite > p.composite and q.joules_per_task < p.joules_per_task)
    assert [p.joules_per_task for p in front] == sorted(p.joules_per_task for p in front)
    store = Store.for_workspace(root / "runs")
    scored = [r for r in store.trials(summary.study) if r["status"] in ("baseline", "keep", "discard")
              and r["evaluation_id"] is not None]
    top = max(r["composite"] for r in scored)
    assert max(p.composite for p in front) == top  # nothing beats the best composite, so it is on the front
    lines = (root / "runs" / "pareto.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:4] == ["trial", "status", "composite", "joules_per_task"]
    assert [int(line.split("\t")[0]) for line in lines[1:]] == [p.trial for p in front]
    assert all(p.producer_tokens_per_task > 0 for p in front)
    assert git(root, "status", "--porcelain") == ""
