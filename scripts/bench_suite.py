#!/usr/bin/env python3
"""Can a task suite tell instructions apart? The seed-to-seed spread of the starting instructions beside the
effect of a known good edit, on the embedded model.

    .venv/bin/python scripts/bench_suite.py [--workspace benchmarks/suite] [--edit benchmarks/good-edit/producer.md]
                                            [--repeats 4] [--json FILE]

Evaluates the workspace's instructions and the same instructions with one file replaced by the edit, each
under the loop's seed sets 0..R-1 (the same seeds on both sides), on every task. Prints, per split, each
seed set's suite composite for both, the starting instructions' sd over seed sets, and the edit's paired
effect (the mean difference over tasks × seed sets, with its one-sided 95% lower bound over pairs and the
bound over task means): a suite can decide between methods when a real edit's effect is several times the
seed sd. Then, per split, what moved: the judge's mean score, how many answers the degenerate-answer guard
zeroed and how many passed each check on either side. The machine is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from autoresearch.bench.arguments import ArgumentParser

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / "benchmarks" / "suite")
    parser.add_argument("--edit", type=Path, default=ROOT / "benchmarks" / "good-edit" / "producer.md",
                        help="an instruction file that replaces the workspace's file of the same name")
    parser.add_argument("--repeats", type=int, default=4, help="seed sets per side (default 4)")
    parser.add_argument("--json", type=Path, default=None, help="also write every score here")
    args = parser.parse_args(argv)

    from autoresearch.bench.workspaces import scratch

    with scratch("bench-suite-") as folder:  # the workspace copies; the figures are printed and in --json
        return _bench(args, folder)


def _bench(args: argparse.Namespace, scratch: Path) -> int:
    import dspy

    from autoresearch.bench.report import machine, machine_line
    from autoresearch.bench.score_table import evaluate_seed_set
    from autoresearch.bench.workspaces import copy_workspace
    from autoresearch.evaluation.paired import compare
    from autoresearch.store import Store
    from autoresearch.workspace.workspace import INSTRUCTIONS_DIR, load_workspace

    dspy.disable_logging()
    start = copy_workspace(args.workspace, scratch / "start")
    edited = copy_workspace(args.workspace, scratch / "edit")
    target = edited / INSTRUCTIONS_DIR / args.edit.name
    if not target.is_file():
        print(f"bench_suite: {args.edit}: no instruction file {args.edit.name} in {args.workspace}", file=sys.stderr)
        return 2
    shutil.copyfile(args.edit, target)

    ws = load_workspace(start)
    sides, answers, calls = {}, {}, 0
    for name, root in (("start", start), ("edit", edited)):
        side = load_workspace(root)
        store = Store.for_workspace(side.runs_dir)
        sides[name], answers[name] = {}, []
        for repeat in range(args.repeats):
            scores, result = evaluate_seed_set(side, store, side.instructions, list(side.suite.tasks), repeat,
                                               split="all")
            sides[name].update(scores)
            answers[name].extend(result.tasks)
            calls += sum(len(t.calls) for t in result.tasks)
            print(f"  {name} seed set {repeat}: {result.composite:.2f}", file=sys.stderr, flush=True)

    confidence = ws.settings.scoring.confidence
    info = machine()
    print(f"machine: {machine_line(info)}")
    print(f"suite: {args.workspace} · edit: {args.edit} · {args.repeats} seed sets per side · "
          f"model(s) {', '.join(sorted({f'{r.backend}:{r.model}' for r in _roles(ws)}))}")
    print()
    print("| split | tasks | start: composite per seed set | start sd | edit: composite per seed set | "
          f"edit − start (tasks × seeds) | {confidence:.0%} lower bound: pairs / task means | effect / start sd |")
    print("| --- | ---: | --- | ---: | --- | ---: | ---: | ---: |")
    report = {"machine": info, "repeats": args.repeats, "splits": {}}
    for split in ("search", "holdout"):
        ids = {t.id for t in ws.suite.split(split)}
        scores = {name: {key: v for key, v in found.items() if key[0] in ids} for name, found in sides.items()}
        composites = {name: [_mean([v for (t, r), v in s.items() if r == rep and v is not None])
                             for rep in range(args.repeats)] for name, s in scores.items()}
        comparison = compare(scores["edit"], scores["start"])
        sd = statistics.stdev(composites["start"]) if args.repeats > 1 else float("nan")
        pair, task = comparison.pair_lower_bound(confidence), comparison.task_lower_bound(confidence)
        print(f"| {split} | {len(ids)} | {', '.join(f'{c:.2f}' for c in composites['start'])} | {sd:.2f} | "
              f"{', '.join(f'{c:.2f}' for c in composites['edit'])} | {comparison.mean:+.2f} | "
              f"{_signed(pair)} / {_signed(task)} | {comparison.mean / sd if sd else float('nan'):.1f} |")
        moved = {name: what_moved(found, ids) for name, found in answers.items()}
        report["splits"][split] = {"tasks": sorted(ids), "start": composites["start"], "edit": composites["edit"],
                                   "start_sd": sd, "effect": comparison.mean, "pair_lower_bound": pair,
                                   "task_lower_bound": task,
                                   "judge": {name: judge for name, (judge, _) in moved.items()},
                                   "degenerate": {name: degenerate_count(found, ids) for name, found in answers.items()},
                                   "checks": {label: {name: moved[name][1].get(label) for name in moved}
                                              for label in {**moved["start"][1], **moved["edit"][1]}},
                                   "scores": {n: [[t, r, v] for (t, r), v in s.items()] for n, s in scores.items()}}
    print()
    for split, found in report["splits"].items():  # what moved the composites: the judge, or which checks
        checks = "; ".join(f"{label} {_count(c['start'])} → {_count(c['edit'])}" for label, c in found["checks"].items())
        zeroed = found["degenerate"]
        print(f"{split}: judge mean {found['judge']['start']:.2f} → {found['judge']['edit']:.2f}; "
              f"degenerate answers (judge score 0) {_count(zeroed['start'])} → {_count(zeroed['edit'])}; "
              f"answers passing each check: {checks}")
    print(f"\n{calls} model calls; composites are each seed set's mean task composite (a failed task is left "
          "out, of them and of the paired effect)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def what_moved(results, ids: set[str]) -> tuple[float, dict[str, list[int]]]:
    """The judge's mean first-draft score and, per check, [answers that passed it, answers checked] over the
    answered tasks in ids. A check only one task has is pooled by kind ("contains, each task's own"); a check
    several tasks share (a house style) keeps its own line."""
    tasks_with: dict[str, set[str]] = {}
    for result in results:
        for found in result.checks:
            tasks_with.setdefault(found.criterion, set()).add(result.task_id)
    judged, counts = [], {}
    for result in results:
        if result.task_id not in ids or result.failed:
            continue
        judged.append(result.score_r1)
        for found in result.checks:
            label = (found.criterion if len(tasks_with[found.criterion]) > 1
                     else f"{found.criterion.split(' ')[0]}, each task's own")
            count = counts.setdefault(label, [0, 0])
            count[0] += found.passed
            count[1] += 1
    return _mean(judged), counts


def degenerate_count(results, ids: set[str]) -> list[int]:
    """[answers the degenerate-answer guard zeroed, answers] over the answered tasks in ids."""
    answered = [r for r in results if r.task_id in ids and not r.failed]
    return [sum(1 for r in answered if r.degenerate), len(answered)]


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _count(passed: list[int] | None) -> str:
    return "–" if passed is None else f"{passed[0]}/{passed[1]}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _roles(ws):
    portfolio = ws.portfolio(ws.settings.workspace.portfolio)
    return [portfolio.role(r) for r in ("planner", "producer", "evaluator")]


if __name__ == "__main__":
    sys.exit(main())
