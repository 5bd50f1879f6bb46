#!/usr/bin/env python3
"""What one evaluation of a suite costs: on the embedded model with prefix reuse and lazy grammars off and
on, or against an OpenAI-compatible server one request at a time and N at a time.

    .venv/bin/python scripts/bench_inference.py [--repeats R] [--workspace DIR] [--seed-set S] [--json FILE]
    .venv/bin/python scripts/bench_inference.py --server URL --model NAME --concurrency 1,4 [...]
    .venv/bin/python scripts/bench_inference.py --llama-cpp-server --concurrency 1,2 [...]

Embedded (the default): the suite (the starter's 6 tasks, as one trial's screen) under these settings:
`off` (no prefix states kept, every token checked against a grammar: autoresearch before issue 16),
`prefix` (embedded_prefix_slots = 4), `grammar` (embedded_grammar = "lazy"), `on` (both; these four in one
context, the tasks one after another), `parallel2` and `parallel3` (on, the tasks in 2 or 3 contexts side by
side, the threads split among them: embedded_parallel; also 4 and 6), `draft` (on,
with embedded_draft = 16: prompt-lookup drafts verified in one batch), `batch3`, `batch6` (on, with
embedded_batch = 3 or 6: that many tasks decoded together in one llama.cpp batch) and `batch6draft`.
Against a server (--server, or --llama-cpp-server to start llama-cpp-python's on loopback with the bundled
GGUF): every pipeline role on the `openai` backend, at each --concurrency level.

Settings take turns within each repeat, so a drift of the machine's speed falls on all of them alike, and
every setting of a repeat samples with the same seeds (the loop's seed sets: each role's seed + the
repeat), so their replies can be compared call by call. Prints per setting: seconds, joules and prompt
tokens computed per evaluation (mean ± sd over repeats), the ratio to the first setting, and whether every
reply and every task's score was identical to the first's; then the memory the kept prefix states take.
The machine is printed with the figures so they can be quoted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ALONE = {"embedded_parallel": 1}  # one context: the tasks one after another
ON = {**ALONE, "embedded_prefix_slots": 4, "embedded_grammar": "lazy"}
EMBEDDED = {
    "off": {**ALONE, "embedded_prefix_slots": 0, "embedded_grammar": "full"},
    "prefix": {**ALONE, "embedded_prefix_slots": 4, "embedded_grammar": "full"},
    "grammar": {**ALONE, "embedded_prefix_slots": 0, "embedded_grammar": "lazy"},
    "on": ON,
    # on, with the suite's tasks decoded side by side in N contexts, the threads split among them (any N)
    **{f"parallel{n}": {**ON, "embedded_parallel": n} for n in (2, 3, 4, 6)},
    # on, decoded by batch_decode.py one call at a time, drafting up to 16 tokens a step by prompt lookup
    "draft": {**ON, "embedded_draft": 16},
    # on, with the suite's tasks decoded together in one llama.cpp batch (embedded_batch, batch_decode.py)
    "batch3": {**ON, "embedded_batch": 3},
    "batch6": {**ON, "embedded_batch": 6},
    "batch6draft": {**ON, "embedded_batch": 6, "embedded_draft": 16},
}


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux)."""
    status = Path(f"/proc/{os.getpid()}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def evaluate(ws, tasks, portfolio, overrides: dict, repeat: int) -> dict:
    """One evaluation of tasks by portfolio under the [backends] overrides, with the seeds of the loop's seed
    set `repeat`."""
    from autoresearch.lm.calls import CallRecorder
    from autoresearch.pipeline.harness import Harness
    from autoresearch.pipeline.repeats import repeat_portfolio

    # The overrides as if written in [backends]: the backends and the suite's concurrency both follow them.
    backends = ws.settings.backends.model_copy(update=overrides)
    ws = dataclasses.replace(ws, settings=ws.settings.model_copy(update={"backends": backends}))
    harness = Harness(ws, repeat_portfolio(portfolio, repeat))
    started = time.perf_counter()
    results = list(harness.run_tasks(tasks, recorder := CallRecorder()))
    seconds = time.perf_counter() - started
    calls = recorder.calls
    return {
        "seconds": seconds,
        "joules": sum(c.joules for c in calls),
        "energy_sources": sorted({c.energy_source for c in calls}),
        "calls": len(calls),
        "failed_calls": sum(not c.ok for c in calls),
        "failures": sorted(f"{c.role}:{c.failure_mode}" for c in calls if not c.ok),
        "prompt_tokens": sum(c.prompt_tokens for c in calls),
        "completion_tokens": sum(c.completion_tokens for c in calls),
        "replies": [c.response for c in calls],
        "scores": [round(r.composite(ws.settings.scoring), 6) for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    from autoresearch.bench.arguments import ArgumentParser

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="evaluations per setting (default 3)")
    parser.add_argument("--workspace", type=Path, default=None, help="a workspace (default: a fresh starter)")
    parser.add_argument("--tasks", type=int, default=None, help="only the suite's first N tasks (default: all)")
    parser.add_argument("--seed-set", type=int, default=0,
                        help="the loop's seed set of the first repeat (default 0: the configured seeds)")
    parser.add_argument("--settings", default="off,prefix,grammar,on,parallel2",
                        help=f"embedded settings, comma-separated, the first the reference: {', '.join(EMBEDDED)}")
    parser.add_argument("--server", default=None, help="an OpenAI-compatible server's base URL (…/v1)")
    parser.add_argument("--model", default=None, help="the model name the server serves (with --server)")
    parser.add_argument("--llama-cpp-server", action="store_true",
                        help="start llama-cpp-python's server on loopback with the bundled SmolLM2 and use it")
    parser.add_argument("--server-threads", type=int, default=None, help="--n_threads of that server")
    parser.add_argument("--concurrency", default="1,2", help="server mode: levels to compare (default 1,2)")
    parser.add_argument("--json", type=Path, default=None, help="also write every evaluation's figures here")
    args = parser.parse_args(argv)

    import dspy

    from autoresearch.bench.workspaces import given_or_starter
    from autoresearch.workspace.workspace import load_workspace

    dspy.disable_logging()
    with given_or_starter(args.workspace, "bench-inference-") as root:
        ws = load_workspace(root)
        tasks = list(ws.suite.tasks)[: args.tasks]
        if args.server or args.llama_cpp_server:
            return bench_server(args, parser, ws, root, tasks)
        return bench_embedded(args, parser, ws, root, tasks)


def bench_embedded(args, parser, ws, root, tasks) -> int:
    from autoresearch.lm.backends import embedded

    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    if [n for n in names if n not in EMBEDDED] or not names:
        parser.error(f"--settings: any of {', '.join(EMBEDDED)}, the first the reference (got {args.settings})")
    portfolio = ws.portfolio(ws.settings.workspace.portfolio)
    models = _models(portfolio)
    if any(not m.startswith("embedded:") for m in models):
        print(f"bench_inference: every pipeline role must be on the embedded backend (got {', '.join(models)})",
              file=sys.stderr)
        return 2
    rss_before = rss_mb()
    embedded.EmbeddedBackend(portfolio.evaluator.model, n_ctx=portfolio.evaluator.n_ctx,
                             n_threads=portfolio.evaluator.n_threads).llama()  # load before any timing
    rss_loaded = rss_mb()
    runs = run_settings(ws, tasks, {name: (portfolio, EMBEDDED[name]) for name in names}, args)
    report(runs, ws, root, tasks, args, models)
    caches = [loaded.prefixes for loaded in embedded._MODELS.values()]
    saved = sum(cache.saved_bytes for cache in caches)
    states = sum(len(cache.saved) for cache in caches)
    print(f"memory: RSS {rss_before:.0f} MiB before the model, {rss_loaded:.0f} MiB loaded, {rss_mb():.0f} MiB "
          f"after; kept prefix states: {states}, {saved / 2**20:.1f} MiB "
          f"({saved / max(states, 1) / 2**20:.1f} MiB each)")
    return 0


def bench_server(args, parser, ws, root, tasks) -> int:
    from autoresearch.workspace.config import Portfolio, RoleConfig

    try:
        levels = [int(n) for n in args.concurrency.split(",") if n.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        parser.error(f"--concurrency: levels such as 1,4 (got {args.concurrency})")
    server = None
    if args.llama_cpp_server:
        from autoresearch.bench.llama_server import ALIAS, LlamaCppServer
        from autoresearch.lm.backends.embedded import resolve_model_path

        log = Path(tempfile.mkdtemp(prefix="llama-server-")) / "server.log"
        threads = args.server_threads or os.cpu_count() or 1
        server = LlamaCppServer(resolve_model_path(ALIAS), log, n_threads=threads).start()
        url, model = server.base_url, ALIAS
        print(f"started llama_cpp.server at {url} with --n_threads {threads} (log: {log})", file=sys.stderr)
    elif args.model is None:
        parser.error("--server needs --model")
    else:
        url, model = args.server, args.model
    base = ws.portfolio(ws.settings.workspace.portfolio)
    settings = {}
    for level in levels:
        roles = {name: RoleConfig(backend="openai", model=model, base_url=url, concurrency=level,
                                  temperature=base.role(name).temperature, max_tokens=base.role(name).max_tokens,
                                  seed=base.role(name).seed)
                 for name in ("planner", "producer", "evaluator", "proposer")}
        settings[f"concurrency {level}"] = (Portfolio(**roles), {})
    try:
        runs = run_settings(ws, tasks, settings, args)
    finally:
        if server is not None:
            server.stop()
    report(runs, ws, root, tasks, args, [f"openai:{model} at {url}"])
    return 0


def run_settings(ws, tasks, settings: dict, args) -> dict[str, list[dict]]:
    """Each setting evaluated args.repeats times, the settings taking turns within each repeat."""
    from autoresearch.bench.call_costs import counting_calls

    runs: dict[str, list[dict]] = {name: [] for name in settings}
    for repeat in range(args.repeats):
        for name, (portfolio, overrides) in settings.items():
            with counting_calls() as costs:  # the prompt tokens llama.cpp computed (a prefix it reused is not)
                run = evaluate(ws, tasks, portfolio, overrides, args.seed_set + repeat)
            run["prompt_tokens_computed"] = sum(c.computed_tokens or 0 for c in costs)
            runs[name].append(run)
            print(f"  repeat {repeat + 1}/{args.repeats} {name}: {run['seconds']:.1f} s, "
                  f"{run['joules']:.0f} J, {run['calls']} calls", file=sys.stderr, flush=True)
    return runs


def report(runs: dict[str, list[dict]], ws, root, tasks, args, models: list[str]) -> None:
    """The table (each setting against the first), the energy's source, and --json."""
    from autoresearch.bench.report import machine, machine_line

    print(f"machine: {machine_line(machine())}")
    print(f"suite: {len(tasks)} tasks of {root} · {args.repeats} repeat(s) per setting · seed sets "
          f"{args.seed_set}..{args.seed_set + args.repeats - 1} (each role's seed + set) · "
          f"model(s) {', '.join(models)}")
    print()
    names = list(runs)
    first = names[0]
    print(f"| setting | s / evaluation | J / evaluation | prompt tokens computed / sent | generated tokens | "
          f"s vs {first} | J vs {first} | replies identical to {first} | task scores identical to {first} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = runs[first]
    for name in names:
        rows = runs[name]
        seconds = [r["seconds"] for r in rows]
        joules = [r["joules"] for r in rows]
        same_replies = sum(a == b for r, o in zip(rows, base) for a, b in zip(r["replies"], o["replies"]))
        same_scores = sum(a == b for r, o in zip(rows, base) for a, b in zip(r["scores"], o["scores"]))
        computed = statistics.mean(r["prompt_tokens_computed"] for r in rows)
        print(f"| {name} | {_mean_sd(seconds)} | {_mean_sd(joules, 0)} | "
              f"{f'{computed:.0f}' if computed else '-'} / {statistics.mean(r['prompt_tokens'] for r in rows):.0f} | "
              f"{statistics.mean(r['completion_tokens'] for r in rows):.0f} | "
              f"{statistics.mean(seconds) / statistics.mean(r['seconds'] for r in base):.2f} | "
              f"{statistics.mean(joules) / statistics.mean(r['joules'] for r in base):.2f} | "
              f"{same_replies}/{sum(len(o['replies']) for o in base)} | "
              f"{same_scores}/{sum(len(o['scores']) for o in base)} |")
    print()
    sources = sorted({s for rows in runs.values() for r in rows for s in r["energy_sources"]})
    if "estimate" in sources:
        print(f"energy: {'+'.join(sources)}, not a measurement: CPU seconds × cpu_watts_per_core "
              f"({ws.settings.energy.cpu_watts_per_core:g} W) in process, a server's busy time × server_watts "
              f"({ws.settings.energy.server_watts:g} W) served")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1) + "\n")
    failures = [f"{name} #{i + 1}: {failure}" for name, rows in runs.items() for i, r in enumerate(rows)
                for failure in r["failures"]]
    if failures:
        print(f"failed calls (their tasks score 0): {'; '.join(failures)}")
    means = {name: [statistics.mean(r["scores"]) for r in rows] for name, rows in runs.items()}
    print("mean task composite per evaluation: " + "; ".join(
        f"{name} {', '.join(f'{m:.2f}' for m in values)}" for name, values in means.items()))


def _models(portfolio) -> list[str]:
    return sorted({f"{portfolio.role(r).backend}:{portfolio.role(r).model}" for r in ("planner", "producer",
                                                                                     "evaluator")})


def _mean_sd(values: list[float], digits: int = 1) -> str:
    mean = statistics.mean(values)
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
