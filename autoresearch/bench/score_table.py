"""A score table for resampling the keep rule: each variant's per-task scores under many seed sets.

Why: one A/A study costs ~40 model calls per baseline and up to ~40 per trial, so a hundred real trials take
hours on two cores. Evaluating a handful of null edits (and the planted improvement) once under every seed
set, and then applying the rule to every pairing of them (bench/resample.py), asks the same question of far
more decisions for the same calls. The table is written after every evaluation, so a stopped run resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from ..pipeline.repeats import evaluate_repeat
from ..pipeline.runner import SuiteResult
from ..search.evaluating import Evaluator
from ..store import Store
from ..workspace.suite import Task
from ..workspace.workspace import Workspace, load_workspace

SPLITS = ("search", "holdout")


def evaluate_seed_set(ws: Workspace, store: Store, instructions: dict[str, str], tasks: Sequence[Task], repeat: int,
                      *, split: str, factory: Any = None) -> tuple[dict[tuple[str, int], float | None], SuiteResult]:
    """One variant's tasks under the loop's seed set `repeat`, recorded as an eval; its per-task scores as the keep
    rule pairs them ((task id, repeat) → score, None where the task failed) and the evaluation."""
    name = ws.settings.workspace.portfolio
    result, _ = evaluate_repeat(ws, store, name, ws.portfolio(name), tasks, repeat, instructions=instructions,
                                kind="eval", split=split, backend_factory=factory)
    scorer = Evaluator(ws, name, store, "table", backend_factory=None, retries=2, backoff_s=1.0,
                       emit=lambda *_: None, session_calls=[])
    return scorer.result_scores(result, repeat), result


def collect(root: Path, variants: dict[str, tuple[dict[str, str], Any]], sets: int, path: Path,
            log: Callable[[str], None], seed_base: int) -> dict[str, Any]:
    """Evaluate each variant (name → instructions, backend factory) under seed sets 0 … sets−1 of the workspace
    at root (whose roles start at seed_base) on both splits; per variant, split and task a list of scores
    (None: the task failed), one per seed set."""
    table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    table.setdefault("seed_base", seed_base)
    if table["seed_base"] != seed_base:
        raise ValueError(f"{path}: seed_base {table['seed_base']} was collected, not {seed_base}")
    table.setdefault("variants", {})
    table.setdefault("calls", 0)
    table.setdefault("seconds", 0.0)
    ws = load_workspace(root)
    store = Store.for_workspace(root / "runs")
    for variant, (instructions, factory) in variants.items():
        found = table["variants"].setdefault(variant, {split: {} for split in SPLITS})
        for repeat in range(sets):
            for split in SPLITS:
                tasks = ws.suite.split(split)
                if tasks and all(len(found[split].get(t.id, [])) > repeat for t in tasks):
                    continue
                start = time.perf_counter()
                scores, result = evaluate_seed_set(ws, store, instructions, tasks, repeat, split=split,
                                                   factory=factory)
                for (task, _r), score in scores.items():
                    found[split].setdefault(task, []).append(score)
                table["calls"] += sum(len(t.calls) for t in result.tasks)
                table["seconds"] += time.perf_counter() - start
                path.write_text(json.dumps(table, indent=1), encoding="utf-8")
                log(f"  table {variant} seed set {repeat} {split}: "
                    + " ".join(f"{s:.2f}" if s is not None else "failed"
                               for s in (found[split][t.id][repeat] for t in tasks)))
    return table
