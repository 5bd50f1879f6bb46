"""bench_search: the five methods side by side on one workspace, portfolio, task suite and call budget."""

from __future__ import annotations

import contextlib
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
from . import (
    draws,
    leads,
    pruner_ab,
    pruner_shadow,
    report,
    search_report,
    seeds,
    workspaces,
)
from .arguments import ArgumentParser
from .methods import (
    KNOWN,
    LABELS,
    METHODS,
    BenchContext,
    MethodRun,
    instructions_key,
    normalise,
    run_method,
    without_ablations,
)
from .study_methods import STUDY_METHODS
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
    draws: bool = False  # seed N also moves every pipeline role's seed by 1000 · N (bench/draws.py)


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


def prepare(options: SearchOptions, scratch: Path, draw: int = 0) -> tuple[Path, str]:
    """The benchmark's own workspace for one evaluation draw: a copy of the given one (or the starter), with n_ctx
    applied and every pipeline role's seed moved by `draw`."""
    source = options.workspace or scratch / "starter"
    if not options.workspace and not source.exists():
        starter(source)
    ws = load_workspace(source)
    portfolio = options.portfolio or ws.settings.workspace.portfolio
    roles: dict[str, dict[str, Any]] = {role: {} for role in ROLES}
    for role, moved in draws.moved_seeds(ws.portfolio(portfolio), draw).items():  # an unknown portfolio fails here
        roles[role].update(moved)
    if options.n_ctx is not None:
        for role in ROLES:
            roles[role]["n_ctx"] = options.n_ctx
    roles = {role: values for role, values in roles.items() if values}
    update = {"portfolios": {portfolio: roles}} if roles else {}
    name = f"bench-workspace-draw{draw}" if draw else "bench-workspace"
    return copy_workspace(source, scratch / name, update=update), portfolio


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
    paths = search_report.write(Path(out), records)
    show_report(records, list(paths.values()), log)
    return paths


def show_report(records: list[dict[str, Any]], written: list[Path], log: Callable[[str], None]) -> str:
    """Print the method table, the paired leads over `records` and the pruner's A/B and shadow where a seed ran
    them, then what was written; return the table."""
    ablation = pruner_ab.table(records)
    shadow = pruner_shadow.table(records)
    records = without_ablations(records)
    table = search_report.table(records)
    log(table)
    log("")
    log(leads.table(search_report.summarise(records)))
    log("")
    for extra in (ablation, shadow):
        if extra:
            log(extra)
            log("")
    log("written: " + ", ".join(str(p) for p in written))
    return table


@dataclass
class Start:
    """The starting instructions under one evaluation draw: the benchmark's workspace with that draw's seeds, what
    every method shares there, and the start's composites, measured outside every budget."""

    draw: int  # added to every pipeline role's seed (0: the portfolio's own seeds)
    ctx: BenchContext
    outside: OutsideEvaluator
    baseline: dict[str, Any]
    head: dict[str, Any]  # a seed record without its runs: options, baseline, suite, draw
    search_calls: int  # of the start's calls, those on the search tasks (a full screen's cost)
    calls: int
    seconds: float
    counted: bool = False  # its calls and time are in a seed file already (the first seed of this draw)


def start_head(options: SearchOptions, prepared: tuple[Path, str], draw: int) -> dict[str, Any]:
    """What a seed record under this draw says before anything is measured: options, suite, draw."""
    root, portfolio = prepared
    ws = load_workspace(root)
    instructions = {k: normalise(v) for k, v in ws.instructions.items()}
    head = {"options": _options_json(options, portfolio),
            # What the figures were measured on: the fixed evaluation and the starting instructions.
            "suite": {"evaluation": ws.evaluation_hash(), "instructions": ws.instructions_hash(instructions)}}
    if options.draws:
        head["draw"] = {"added": draw, "seeds": draws.role_seeds(ws.portfolio(portfolio))}
    return head


def measure_start(options: SearchOptions, prepared: tuple[Path, str], scratch: Path, factory: Callable | None,
                  draw: int, out: Path, head: dict[str, Any]) -> Start:
    """The starting instructions' composites in the benchmark's workspace prepared for one draw: once on the
    search tasks, `holdout_repeats` seed sets on the holdout tasks; head is that draw's `start_head`."""
    root, portfolio = prepared
    ctx = BenchContext(root=root, scratch=scratch / "runs", portfolio=portfolio, inner_factory=factory,
                       retries=options.retries, backoff_s=options.backoff_s,
                       mipro_candidates=options.mipro_candidates)
    ws = load_workspace(root)
    instructions = {k: normalise(v) for k, v in ws.instructions.items()}
    outside = OutsideEvaluator(ctx, scratch / (f"outside-draw{draw}" if draw else "outside"))
    started = time.perf_counter()
    with _quiet(out / "search.log"):
        search = outside.composite(instructions, "search")
        holdout = outside.composites(instructions, "holdout", options.holdout_repeats)
    baseline = {"search": search, "holdout": _mean(holdout), "holdout_repeats": holdout}
    search_ids = {t.id for t in ws.suite.split("search")}
    search_calls = sum(1 for c in outside.calls if c.task_id in search_ids)
    return Start(draw, ctx, outside, baseline, {**head, "baseline": baseline}, search_calls,
                 len(outside.calls), time.perf_counter() - started)


def run(options: SearchOptions, log: Callable[[str], None] | None = None) -> SearchResult:
    import dspy

    dspy.disable_logging()
    console = sys.stdout  # progress lines go here even while a method's own output goes to the log file
    log = log or (lambda text: print(text, file=console, flush=True))
    unknown = [m for m in options.methods if m not in KNOWN]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; one of {', '.join(KNOWN)}")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    with workspaces.scratch("bench-search-", keep=options.keep_scratch, log=log) as scratch:
        factory, backend_text = inner_factory(options.backend)
        info = report.machine()
        code = report.code_version()
        # Every draw's workspace before anything is evaluated: a bad option fails here, not after the first seed.
        prepared = {draw: prepare(options, scratch, draw)
                    for draw in dict.fromkeys(draws.draw_of(seed, options.draws) for seed in options.seeds)}
        root, portfolio = next(iter(prepared.values()))
        ws = load_workspace(root)  # the suite is the same under every draw
        log(f"bench_search: {len(options.methods)} method(s) × seed(s) {', '.join(map(str, options.seeds))}, "
            f"budget {options.budget} model calls each; {len(ws.suite.split('search'))} search and "
            f"{len(ws.suite.split('holdout'))} holdout task(s); portfolio {portfolio}; backend {backend_text}"
            + ("; each seed its own evaluation draw (every pipeline role's seed + "
               f"{draws.DRAW_STEP} × the seed)" if options.draws else ""))
        log(f"machine: {report.machine_line(info)}")
        repeats = options.holdout_repeats
        starts: dict[int, Start] = {}
        heads = {draw: start_head(options, ready, draw) for draw, ready in prepared.items()}
        for seed in options.seeds:  # before anything is evaluated: a seed file that would not add up with the rest
            seeds.check_joins(out, seed, heads[draws.draw_of(seed, options.draws)])
        for seed in options.seeds:  # before any method runs: a seed file whose other runs would not compare
            draw = draws.draw_of(seed, options.draws)
            if draw not in starts:
                starts[draw] = start = measure_start(options, prepared[draw], scratch, factory, draw, out, heads[draw])
                log(f"starting instructions{f' (draw +{draw})' if draw else ''}: search "
                    f"{report.num(start.baseline['search'])}, holdout {report.num(start.baseline['holdout'])} "
                    f"(mean of {repeats} repeats; {start.calls} calls, outside the budgets)")
            seeds.kept_runs(out, seed, options.methods, starts[draw].head)
        runs: list[MethodRun] = []
        written: list[Path] = []
        for seed in options.seeds:
            start = starts[draws.draw_of(seed, options.draws)]
            ctx, outside, baseline, head = start.ctx, start.outside, start.baseline, start.head
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
            # Each new run names the code it ran on: a seed file's runs may come from several commits.
            new = [{**r.to_json(), "code": code} for r in seed_runs]
            all_runs = sorted([*kept, *new], key=lambda r: KNOWN.index(r["method"]))
            notes = _notes(seed_runs, baseline)
            if kept:
                names = ", ".join(LABELS[r["method"]] for r in kept)
                notes += seeds.kept_notes(out, seed, [LABELS[r["method"]] for r in kept])
                notes.append(f"{names}: kept from this seed's earlier file (same options, suite and start)")
            first, start.counted = not start.counted, True  # the start's evaluations count with its first seed
            cost = seed_cost(all_runs, start.seconds if first else 0.0, start.calls if first else 0)
            if cost["untimed"]:
                notes.append(f"{', '.join(LABELS[m] for m in cost['untimed'])}: the pick's holdout evaluation "
                             "was not timed (an older bench_search), so total_s and outside_calls leave it out")
            record = {
                "seed": seed, "options": {**head["options"], "methods": [r["method"] for r in all_runs]},
                "machine": info, "backend": backend_text, "baseline": baseline,
                "search_tasks": len(ws.suite.split("search")),
                "suite": head["suite"], **({"draw": head["draw"]} if "draw" in head else {}),
                "holdout_tasks": len(ws.suite.split("holdout")),
                # A full screen of one variant: its proposer call and every search task (pruning's estimate).
                "screen_calls": 1 + start.search_calls if start.search_calls else None,
                "start_s": cost["start_s"], "outside_calls": cost["outside_calls"], "total_s": cost["total_s"],
                "notes": notes,
                "runs": all_runs}
            written.append(seeds.write_seed(out, record))
            log(f"seed {seed} written to {written[-1]}")
        records = seeds.load_seeds(out)
        paths = search_report.write(out, records)
        log("")
        table = show_report(records, [*written, *paths.values()], log)
        first_start = starts[draws.draw_of(options.seeds[0], options.draws)]
        return SearchResult(runs, first_start.baseline, table, paths, info)


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
            "holdout_repeats": options.holdout_repeats, "draws": options.draws}


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
        studied = r.method in STUDY_METHODS and r.trajectory
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
                        help=f"comma-separated subset of {','.join(KNOWN)} (default: {','.join(METHODS)}; "
                             "unpruned, the loop without its pruner, is an ablation run only when named)")
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
    parser.add_argument("--draws", action="store_true",
                        help=f"each seed its own evaluation draw: seed N moves every pipeline role's seed by "
                             f"{draws.DRAW_STEP} × N, for every method and the start (default: the portfolio's "
                             "seeds for every seed, so the seeds move proposals and samplers only)")
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
                         keep_scratch=args.keep_scratch, draws=args.draws,
                         backoff_s=0.0 if args.backend == "fake" else 1.0)


def main(argv: Sequence[str] | None = None, doc: str = "") -> int:
    def job():
        options = main_args(argv, doc or __doc__ or "")
        return rebuild(options.out) if options.report_only else run(options)

    return report.run_cli("bench_search", job)
