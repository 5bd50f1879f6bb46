#!/usr/bin/env python3
"""Joules per task per role for the embedded model, stating the meter used.

    .venv/bin/python scripts/bench_energy.py [--tasks N] [--repeats R] [--workspace DIR]

Runs the starter workspace (or DIR) through the harness and prints, per role, joules per task,
joules per 1k output tokens, tokens per task, seconds per task and the meter (nvml, rapl or
estimate) — with the machine it ran on, so figures can be quoted with their source.
"""

from __future__ import annotations

import os
import platform
import sys
from collections import defaultdict
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from autoresearch.bench.arguments import ArgumentParser

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4, help="how many search tasks (default 4)")
    parser.add_argument("--repeats", type=int, default=1, help="evaluate the tasks this many times")
    parser.add_argument("--workspace", type=Path, default=None, help="a workspace (default: a fresh starter)")
    args = parser.parse_args(argv)

    import dspy

    from autoresearch.bench.workspaces import given_or_starter
    from autoresearch.pipeline.harness import Harness
    from autoresearch.pipeline.runner import evaluate_tasks
    from autoresearch.store import Store
    from autoresearch.workspace.workspace import load_workspace

    dspy.disable_logging()
    with given_or_starter(args.workspace, "bench-energy-") as root:
        ws = load_workspace(root)
        tasks = ws.suite.split("search")[: args.tasks]
        portfolio = ws.settings.workspace.portfolio
        store = Store.for_workspace(ws.runs_dir)
        harness = Harness(ws, ws.portfolio(portfolio))
        per_role: dict[str, list] = defaultdict(list)
        for _ in range(args.repeats):
            suite = evaluate_tasks(ws, harness, store, tasks, kind="bench", portfolio=portfolio,
                                   instructions=ws.instructions, split="search")
            for call in suite.calls:
                per_role[call.role].append(call)

        n = len(tasks) * args.repeats
        cpu = platform.processor() or platform.machine()
        print(f"machine: {platform.node()} · {cpu} · {os.cpu_count()} cores · Python {platform.python_version()}")
        models = sorted({f"{c.backend}:{c.model}" for calls in per_role.values() for c in calls})
        print(f"model(s): {', '.join(models)} · {len(tasks)} task(s) × {args.repeats} repeat(s)")
        print()
        print("| role | calls | J/task | J/1k out tokens | out tokens/task | s/task | meter |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        total = 0.0
        for role in ("planner", "producer", "evaluator"):
            calls = per_role.get(role, [])
            if not calls:
                continue
            joules = sum(c.joules for c in calls)
            out = sum(c.completion_tokens for c in calls)
            total += joules
            sources = "+".join(sorted({c.energy_source for c in calls}))
            per_k = f"{joules / out * 1000:.1f}" if out else "-"
            print(f"| {role} | {len(calls)} | {joules / n:.1f} | {per_k} | {out / n:.0f} | "
                  f"{sum(c.latency_s for c in calls) / n:.1f} | {sources} |")
        print(f"| all | {sum(len(v) for v in per_role.values())} | {total / n:.1f} | | | | |")
        if any(c.energy_source == "estimate" for calls in per_role.values() for c in calls):
            print("\nestimate: no NVML or RAPL counter was readable; joules = CPU seconds × cpu_watts_per_core "
                  f"({ws.settings.energy.cpu_watts_per_core:g} W) from autoresearch.toml, not a measurement.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
