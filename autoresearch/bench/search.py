"""bench_search: the five methods side by side on one workspace, portfolio, task suite and call budget."""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import modes_line
from ..pipeline.repeats import evaluate_repeat
from ..store import Store
from ..workspace.config import ROLES
from ..workspace.workspace import load_workspace
from . import report, search_report, seeds, workspaces
from .arguments import ArgumentParser
from .methods import (
    LABELS,
    METHODS,
    BenchContext,
    MethodRun,
    instructions_key,
    normalise,
    run_method,
)
from .workspaces import copy_workspace, starter


@dataclass
class SearchOptions:
    budget: int = 100
    seeds: Sequence[int] = (0,)  # each seed's results go to seed-N.json under out
    methods: Sequence[str] = METHODS
    out: Path = Path("runs/bench")
    workspace: Path | None = None  # None: a fresh starter workspace
    portfolio: str | None = None
    n_ctx: int | None = None  # every role's context window, for every method (None: as configured)
    mipro_candidates: int = 3
    backend: str = "configured"  # or "fake" (test-only)
    keep_scratch: bool = False
    retries: int = 2
    backoff_s: float = 1.0
    holdout_repeats: int = 3  # seed sets the start and each pick are evaluated with on the holdout tasks
    report_only: bool = False  # rebuild the report from the seed files in out; run nothing


class OutsideEvaluator:
    """Evaluations outside every method's budget (the starting instructions, each method's pick on the
    holdout tasks): the same Harness and evaluate_tasks as the loop, each repeat with the next seeds
    (pipeline/repeats.py), cached by instructions."""

    def __init__(self, ctx: BenchContext, store_dir: Path):
        self.ctx = ctx
        self.ws = load_workspace(ctx.root)
        self.factory = ctx.inner_factory  # outside every budget; its calls are counted from the suites
        store_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store.for_workspace(store_dir)
        self.cache: dict[tuple[str, str, int], float | None] = {}
        self.calls: list = []

    def composites(self, instructions: dict[str, str], split: str, repeats: int = 1) -> list[float | None]:
        """The instructions' composite on a split in each of `repeats` seed sets ([] without such tasks)."""
        tasks = self.ws.suite.split(split)
        if not tasks:
            return []
        found = []
        for repeat in range(repeats):
            key = (instructions_key(instructions), split, repeat)
            if key not in self.cache:
                base = self.ws.portfolio(self.ctx.portfolio)
                suite, _ = evaluate_repeat(self.ws, self.store, self.ctx.portfolio, base, tasks, repeat,
                                           instructions=instructions, kind="bench", split=split,
                                           backend_factory=self.factory, retries=self.ctx.retries,
                                           backoff_s=self.ctx.backoff_s)
                self.calls.extend(suite.calls)
                self.cache[key] = suite.composite
            found.append(self.cache[key])
        return found

    def composite(self, instructions: dict[str, str], split: str, repeats: int = 1) -> float | None:
        """The mean of composites() (None if a repeat has none)."""
        return _mean(self.composites(instructions, split, repeats))


@dataclass
class SearchResult:
    runs: list[MethodRun]
    baseline: dict[str, float | None]
    table: str
    paths: dict[str, Path]
    info: dict[str, Any] = field(default_factory=dict)


def prepare(options: SearchOptions, scratch: Path) -> tuple[Path, str]:
    """The benchmark's own workspace: a copy of the given one (or the starter), with n_ctx applied."""
    source = options.workspace or starter(scratch / "starter")
    ws = load_workspace(source)
    portfolio = options.portfolio or ws.settings.workspace.portfolio
    ws.portfolio(portfolio)  # an unknown portfolio fails here
    update: dict[str, Any] = {}
    if options.n_ctx is not None:
        update = {"portfolios": {portfolio: {role: {"n_ctx": options.n_ctx}
                                             for role in ROLES}}}
    return copy_workspace(source, scratch / "bench-workspace", update=update), portfolio


def inner_factory(backend: str) -> tuple[Callable | None, str]:
    if backend == "fake":
        from .fake import FakePipeline

        return FakePipeline(seed=0).factory, "fake (scripted, test-only: its figures mean nothing)"
    if backend != "configured":
        raise ValueError(f"unknown backend {backend!r}; configured or fake")
    return None, "as configured in the portfolio"


def rebuild(out: Path, log: Callable[[str], None] = print) -> dict[str, Path]:
    """The report again from the seed files in `out` (after the report's code changed, or a seed was added)."""
    records = seeds.load_seeds(out)
    if not records:
        raise ValueError(f"{out}: no seed files (seed-N.json) to report on")
    paths = _write(Path(out), records)
    log(search_report.table(records))
    log("written: " + ", ".join(str(p) for p in paths.values()))
    return paths


def run(options: SearchOptions, log: Callable[[str], None] | None = None) -> SearchResult:
    import dspy

    dspy.disable_logging()
    console = sys.stdout  # progress lines go here even while a method's own output goes to the log file
    log = log or (lambda text: print(text, file=console, flush=True))
    unknown = [m for m in options.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; one of {', '.join(METHODS)}")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    with workspaces.scratch("bench-search-", keep=options.keep_scratch, log=log) as scratch:
        factory, backend_text = inner_factory(options.backend)
        info = report.machine()
        root, portfolio = prepare(options, scratch)
        ctx = BenchContext(root=root, scratch=scratch / "runs", portfolio=portfolio, inner_factory=factory,
                           retries=options.retries, backoff_s=options.backoff_s,
                           mipro_candidates=options.mipro_candidates)
        ws = load_workspace(root)
        start_instructions = {k: normalise(v) for k, v in ws.instructions.items()}
        log(f"bench_search: {len(options.methods)} method(s) × seed(s) {', '.join(map(str, options.seeds))}, "
            f"budget {options.budget} model calls each; {len(ws.suite.split('search'))} search and "
            f"{len(ws.suite.split('holdout'))} holdout task(s); portfolio {portfolio}; backend {backend_text}")
        log(f"machine: {report.machine_line(info)}")
        started = time.perf_counter()
        outside = OutsideEvaluator(ctx, scratch / "outside")
        repeats = options.holdout_repeats
        with _quiet(out / "search.log"):
            baseline_search = outside.composite(start_instructions, "search")
            holdout_repeats = outside.composites(start_instructions, "holdout", repeats)
        start_s = time.perf_counter() - started
        baseline = {"search": baseline_search, "holdout": _mean(holdout_repeats),
                    "holdout_repeats": holdout_repeats}
        search_tasks = len(ws.suite.split("search"))
        search_ids = {t.id for t in ws.suite.split("search")}
        search_calls = sum(1 for c in outside.calls if c.task_id in search_ids)
        baseline_calls = len(outside.calls)
        log(f"starting instructions: search {report.num(baseline['search'])}, "
            f"holdout {report.num(baseline['holdout'])} "
            f"(mean of {repeats} repeats; {len(outside.calls)} calls, outside the budgets)")
        head = {"options": _options_json(options, portfolio), "baseline": baseline,
                # What the figures were measured on: the fixed evaluation and the starting instructions.
                "suite": {"evaluation": ws.evaluation_hash(), "instructions": ws.instructions_hash(start_instructions)}}
        for seed in options.seeds:  # before any method runs: a seed file whose other runs would not compare
            seeds.kept_runs(out, seed, options.methods, head)
        runs: list[MethodRun] = []
        written: list[Path] = []
        for seed in options.seeds:
            seed_runs = []
            for method in options.methods:
                with _quiet(out / "search.log"):
                    result = run_method(ctx, method, seed, options.budget)
                    if result.best_search is None:  # never completed an evaluation: it hands back the start
                        result.best_search, result.search_outside = baseline["search"], True
                    held, before = time.perf_counter(), len(outside.calls)
                    result.holdout_repeats = outside.composites(result.best_instructions, "holdout", repeats)
                    result.holdout = _mean(result.holdout_repeats)
                    result.holdout_calls, result.holdout_s = len(outside.calls) - before, time.perf_counter() - held
                seed_runs.append(result)
                log(f"  {LABELS[method]} seed {seed}: best {report.num(result.best_search)} "
                    f"(holdout {report.num(result.holdout)}), {len(result.calls)} calls, "
                    f"{report.duration(result.wall_s)}, {result.keeps} keep(s); stopped: {result.stop}")
            runs.extend(seed_runs)
            kept = seeds.kept_runs(out, seed, options.methods, head)
            all_runs = sorted([*kept, *(r.to_json() for r in seed_runs)], key=lambda r: METHODS.index(r["method"]))
            notes = _notes(seed_runs, baseline)
            if kept:
                names = ", ".join(LABELS[r["method"]] for r in kept)
                notes += seeds.kept_notes(out, seed, [LABELS[r["method"]] for r in kept])
                notes.append(f"{names}: kept from this seed's earlier file (same options, suite and start)")
            first = seed == options.seeds[0]  # the start's evaluations are counted (and timed) with the first seed
            cost = seed_cost(all_runs, start_s if first else 0.0, baseline_calls if first else 0)
            if cost["untimed"]:
                notes.append(f"{', '.join(LABELS[m] for m in cost['untimed'])}: the pick's holdout evaluation "
                             "was not timed (an older bench_search), so total_s and outside_calls leave it out")
            record = {
                "seed": seed, "options": {**head["options"], "methods": [r["method"] for r in all_runs]},
                "machine": info, "backend": backend_text, "baseline": baseline, "search_tasks": search_tasks,
                "suite": head["suite"],
                "holdout_tasks": len(ws.suite.split("holdout")),
                # A full screen of one variant: its proposer call and every search task (pruning's estimate).
                "screen_calls": 1 + search_calls if search_calls else None,
                "start_s": cost["start_s"], "outside_calls": cost["outside_calls"], "total_s": cost["total_s"],
                "notes": notes,
                "runs": all_runs}
            written.append(seeds.write_seed(out, record))
            log(f"seed {seed} written to {written[-1]}")
        records = seeds.load_seeds(out)
        paths = _write(out, records)
        log("")
        table = search_report.table(records)
        log(table)
        log("")
        log("written: " + ", ".join(str(p) for p in [*written, *paths.values()]))
        return SearchResult(runs, baseline, table, paths, info)


def seed_cost(runs: list[dict[str, Any]], start_s: float, start_calls: int) -> dict[str, Any]:
    """What a seed file cost outside and in all: the start's evaluations, then each run (kept ones too, so a seed
    run in parts counts every part) with its pick's holdout evaluation. Runs from before the holdout evaluation was
    timed are named in `untimed`."""
    untimed = [r["method"] for r in runs if "holdout_s" not in r]
    return {"start_s": start_s, "untimed": untimed,
            "outside_calls": start_calls + sum(r.get("holdout_calls", 0) for r in runs),
            "total_s": start_s + sum(r["wall_s"] + r.get("holdout_s", 0.0) for r in runs)}


@contextlib.contextmanager
def _quiet(path: Path):
    """MIPROv2, GEPA and DSPy's Evaluate print progress bars and prints: into the log file, not the console.
    A log nothing was written to is removed (the loop alone prints nothing): an empty file only puzzles."""
    try:
        with open(path, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            yield
    finally:
        if path.exists() and path.stat().st_size == 0:
            path.unlink()


def _mean(values: list[float | None]) -> float | None:
    return None if not values or None in values else statistics.fmean(values)


def _options_json(options: SearchOptions, portfolio: str) -> dict[str, Any]:
    return {"budget": options.budget, "methods": list(options.methods),
            "workspace": str(options.workspace) if options.workspace else None, "portfolio": portfolio,
            "n_ctx": options.n_ctx, "mipro_candidates": options.mipro_candidates, "backend": options.backend,
            "holdout_repeats": options.holdout_repeats}


def _notes(runs: list[MethodRun], baseline: dict[str, Any]) -> list[str]:
    """What a reader needs to know about each run besides its row: how it stopped, what failed."""
    notes = []
    for r in runs:
        how = {"budget": "stopped by the budget", "finished": "finished within the budget"}.get(r.stop, r.stop)
        note = f"{LABELS[r.method]}, seed {r.seed}: {how}; {len(r.calls)} calls"
        if r.used != len(r.calls):
            note += f" ({r.used} counted at the backend)"
        if r.search_outside:
            note += "; never completed an evaluation of the search tasks within the budget, so it hands back " \
                    "the starting instructions (its search composite is theirs, measured outside the budget)"
        studied = r.method in ("autoresearch", "greedy", "random") and r.trajectory
        if studied and baseline["search"] is not None and abs(r.trajectory[0][1] - baseline["search"]) > 1e-9:
            note += (f"; its own baseline scored {r.trajectory[0][1]:.2f} against {baseline['search']:.2f} outside "
                     "the budget (over its noise repeats, or the model is not deterministic here)")
        failed = [c.failure_mode for c in r.calls if not c.ok]
        if failed:
            note += "; failed calls: " + modes_line(failed)
            if "context_length" in failed:
                note += " (prompts longer than the context window: try --n-ctx 4096, which applies to every method)"
        notes.append(note + "".join(f"; {n}" for n in r.notes))
    return notes


def _write(out: Path, records: list[dict[str, Any]]) -> dict[str, Path]:
    """The report over every seed file in `out`: search.md (the tables), search.svg (calls to target) and
    search.json (each method's summary)."""
    svg_path, md_path, json_path = out / "search.svg", out / "search.md", out / "search.json"
    first = records[0]
    options = first["options"]
    machines = sorted({r["machine"].get("cpu", "?") for r in records})
    holdout = options.get("holdout_repeats", 1)
    svg_path.write_text(search_report.curve_svg(records), encoding="utf-8")
    text = "\n".join([
        "# bench_search", "",
        f"Budget: {options['budget']} model calls per method and seed; seeds {', '.join(str(r['seed']) for r in records)}"
        f" (mean ± sample standard deviation over seeds). Workspace: {options['workspace'] or 'the starter'} "
        f"(portfolio {options['portfolio']}), {first.get('search_tasks', '?')} search and "
        f"{first.get('holdout_tasks', '?')} holdout tasks. Backend: {first.get('backend', options['backend'])}.",
        "Machine" + ("s (scores of the same instructions differ between CPU builds: compare within a seed): "
                     if len(machines) > 1 else ": ") + "; ".join(machines) + ".",
        f"Wall time {report.duration(sum(r['total_s'] for r in records))} in all; "
        f"{sum(r['outside_calls'] for r in records)} calls outside the budgets (the starting instructions on both "
        f"splits, each pick on the holdout tasks, {holdout} repeats each).", "",
        search_report.table(records), "",
        "- **Holdout composite of the pick**: the instructions the method hands back, evaluated on the holdout "
        f"tasks afterwards, outside its budget, with {holdout} seed sets (the mean); *vs the start*: that minus "
        "the starting instructions' holdout composite under the same seed sets (mean ± sd over seeds).",
        "- **Best search composite**: what the method's own pick scored on the search tasks within its budget. "
        "The loop, greedy and random report a pick's mean over its noise repeats; MIPROv2 and GEPA the single "
        "evaluation that made it their best, the highest of many noisy ones.",
        "- **Calls / joules to target**: spent when the method's best search composite first reached the seed's "
        "target, the best final search composite of any peer (every method but the loop); the mean over the "
        "seeds that reached it. **Pruned trials**: trials stopped early, the share of calls they made, and "
        "the share of calls pruning saved (each pruned trial counted as the full screen it cut short).",
        "- **Search gains and holdout** (the second table): each pick that scored above the start on the search "
        "tasks, what it gained there and what it gained on the holdout tasks (mean ± sd over those seeds). A gain "
        "that vanishes on holdout was found in the noise of the evaluations that picked it.",
        "- **Per seed** (the third table): the start's holdout composite moves by the sd in brackets between its seed sets; a "
        "pick's difference from the start is noise unless it is well beyond that.",
        "- **Holdout target** (the fourth table): per seed, the best peer's pick by its holdout composite, the calls "
        "and joules that peer spent until it held that pick, and when the loop held a pick at least as good on "
        "holdout (only picks are evaluated there, so an earlier incumbent of the loop's may already have been).", "",
        search_report.gains_table(records), "",
        search_report.seed_table(records), "",
        search_report.holdout_target_table(records), "",
        "![best search composite against model calls, mean over seeds](search.svg)", "",
        "Notes:", "", *(f"- {n}" for r in records for n in r.get("notes", [])), ""])
    md_path.write_text(text, encoding="utf-8")
    summary = search_report.summarise(records)
    json_path.write_text(json.dumps({
        "options": options, "seeds": [r["seed"] for r in records], "machines": machines,
        "methods": {m: {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(row).items()}
                    for m, row in summary.items()}}, indent=2) + "\n", encoding="utf-8")
    return {"table": md_path, "plot": svg_path, "data": json_path}


def main_args(argv: Sequence[str] | None, doc: str) -> SearchOptions:
    import argparse

    parser = ArgumentParser(description=doc.splitlines()[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    parser.add_argument("--budget", type=int, default=100, help="model calls per method and seed (default 100)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seeds", type=int, default=None, help="run seeds 0 … N-1 (default: seed 0 only)")
    which.add_argument("--seed", type=int, action="append", default=None,
                       help="run this seed only (repeatable); its results join any other seed files in --out")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {','.join(METHODS)} (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="output folder (default runs/bench)")
    parser.add_argument("--workspace", type=Path, default=None, help="a workspace (default: a fresh starter)")
    parser.add_argument("--portfolio", default=None, help="portfolio (default: the workspace's)")
    parser.add_argument("--n-ctx", type=int, default=None, help="context window of every role, for every method")
    parser.add_argument("--mipro-candidates", type=int, default=3,
                        help="MIPROv2 instruction candidates per predictor (default 3)")
    parser.add_argument("--backend", choices=("configured", "fake"), default="configured",
                        help="fake: a scripted pipeline, for the smoke tests only")
    parser.add_argument("--holdout-repeats", type=int, default=3,
                        help="seed sets the start and each pick are evaluated with on the holdout tasks (default 3)")
    parser.add_argument("--keep-scratch", action="store_true", help="keep the methods' workspace copies")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild search.md, search.svg and search.json from the seed files in --out; run nothing")
    args = parser.parse_args(argv)
    if args.budget < 1 or (args.seeds is not None and args.seeds < 1) or args.holdout_repeats < 1:
        parser.error("--budget, --seeds and --holdout-repeats must be at least 1")
    if args.seed is not None and min(args.seed) < 0:
        parser.error("--seed must be 0 or more")
    seeds = sorted(set(args.seed)) if args.seed is not None else list(range(args.seeds or 1))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    return SearchOptions(budget=args.budget, seeds=seeds, methods=methods, out=args.out,
                         holdout_repeats=args.holdout_repeats, report_only=args.report_only,
                         workspace=args.workspace, portfolio=args.portfolio, n_ctx=args.n_ctx,
                         mipro_candidates=args.mipro_candidates, backend=args.backend,
                         keep_scratch=args.keep_scratch, backoff_s=0.0 if args.backend == "fake" else 1.0)


def main(argv: Sequence[str] | None = None, doc: str = "") -> int:
    def job():
        options = main_args(argv, doc or __doc__ or "")
        return rebuild(options.out) if options.report_only else run(options)

    return report.run_cli("bench_search", job)
