"""bench_search: the five methods side by side on one workspace, portfolio, task suite and call budget."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..pipeline.harness import Harness
from ..pipeline.runner import evaluate_tasks
from ..store import Store
from ..workspace.config import ROLES
from ..workspace.workspace import load_workspace
from . import report
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
    seeds: int = 1
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


class OutsideEvaluator:
    """Evaluations outside every method's budget (the starting instructions, each method's best on the
    holdout tasks): the same Harness and evaluate_tasks as the loop, cached by instructions."""

    def __init__(self, ctx: BenchContext, store_dir: Path):
        self.ctx = ctx
        self.ws = load_workspace(ctx.root)
        self.factory = ctx.inner_factory  # outside every budget; its calls are counted from the suites
        store_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store.for_workspace(store_dir)
        self.cache: dict[tuple[str, str], float | None] = {}
        self.calls: list = []

    def composite(self, instructions: dict[str, str], split: str) -> float | None:
        tasks = self.ws.suite.split(split)
        if not tasks:
            return None
        key = (instructions_key(instructions), split)
        if key not in self.cache:
            harness = Harness(self.ws, self.ws.portfolio(self.ctx.portfolio), instructions=instructions,
                              backend_factory=self.factory, retries=self.ctx.retries, backoff_s=self.ctx.backoff_s)
            suite = evaluate_tasks(self.ws, harness, self.store, tasks, kind="bench", portfolio=self.ctx.portfolio,
                                   instructions=instructions, split=split)
            self.calls.extend(suite.calls)
            self.cache[key] = suite.composite
        return self.cache[key]


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
    scratch = Path(tempfile.mkdtemp(prefix="bench-search-"))
    factory, backend_text = inner_factory(options.backend)
    info = report.machine()
    try:
        root, portfolio = prepare(options, scratch)
        ctx = BenchContext(root=root, scratch=scratch / "runs", portfolio=portfolio, inner_factory=factory,
                           retries=options.retries, backoff_s=options.backoff_s,
                           mipro_candidates=options.mipro_candidates)
        ws = load_workspace(root)
        start_instructions = {k: normalise(v) for k, v in ws.instructions.items()}
        log(f"bench_search: {len(options.methods)} method(s) × {options.seeds} seed(s), budget "
            f"{options.budget} model calls each; {len(ws.suite.split('search'))} search and "
            f"{len(ws.suite.split('holdout'))} holdout task(s); portfolio {portfolio}; backend {backend_text}")
        log(f"machine: {report.machine_line(info)}")
        started = time.perf_counter()
        outside = OutsideEvaluator(ctx, scratch / "outside")
        with _quiet(out / "search.log"):
            baseline = {"search": outside.composite(start_instructions, "search"),
                        "holdout": outside.composite(start_instructions, "holdout")}
        log(f"starting instructions: search {report._num(baseline['search'])}, holdout "
            f"{report._num(baseline['holdout'])} ({len(outside.calls)} calls, outside the budgets)")
        runs: list[MethodRun] = []
        for seed in range(options.seeds):
            for method in options.methods:
                with _quiet(out / "search.log"):
                    result = run_method(ctx, method, seed, options.budget)
                    if result.best_search is None:  # never completed an evaluation: it hands back the start
                        result.best_search, result.search_outside = baseline["search"], True
                    result.holdout = outside.composite(result.best_instructions, "holdout")
                runs.append(result)
                log(f"  {LABELS[method]} seed {seed}: best {report._num(result.best_search)} "
                    f"(holdout {report._num(result.holdout)}), {len(result.calls)} calls, "
                    f"{report.duration(result.wall_s)}, {result.keeps} keep(s); stopped: {result.stop}")
        table = report.search_table(runs, baseline, options.methods)
        paths = _write(out, options, runs, baseline, table, info, portfolio, backend_text, ws, outside,
                       time.perf_counter() - started)
        log("")
        log(table)
        log("")
        log("written: " + ", ".join(str(p) for p in paths.values()))
        return SearchResult(runs, baseline, table, paths, info)
    finally:
        if options.keep_scratch:
            log(f"workspace copies kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _quiet(path: Path):
    """MIPROv2, GEPA and DSPy's Evaluate print progress bars and prints: into the log file, not the console."""
    with open(path, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        yield


def _write(out: Path, options: SearchOptions, runs: list[MethodRun], baseline: dict[str, float | None], table: str,
           info: dict[str, Any], portfolio: str, backend_text: str, ws, outside: OutsideEvaluator,
           total_s: float) -> dict[str, Path]:
    svg_path, md_path, json_path = out / "search.svg", out / "search.md", out / "search.json"
    svg_path.write_text(report.trajectory_svg(runs, baseline["search"], options.budget, list(options.methods)),
                        encoding="utf-8")
    notes = []
    for r in runs:
        how = {"budget": "stopped by the budget", "finished": "finished within the budget"}.get(r.stop, r.stop)
        note = f"- {LABELS[r.method]}, seed {r.seed}: {how}; {len(r.calls)} calls"
        if r.used != len(r.calls):
            note += f" ({r.used} counted at the backend)"
        if r.search_outside:
            note += "; never completed an evaluation of the search tasks within the budget, so it hands back " \
                    "the starting instructions (*: their composite, measured outside the budget)"
        studied = r.method in ("autoresearch", "greedy", "random") and r.trajectory
        if studied and baseline["search"] is not None and abs(r.trajectory[0][1] - baseline["search"]) > 1e-9:
            note += (f"; its own baseline scored {r.trajectory[0][1]:.2f} against {baseline['search']:.2f} outside "
                     "the budget (the same instructions scored differently: the model is not deterministic here)")
        failed = Counter(c.failure_mode or "error" for c in r.calls if not c.ok)
        if failed:
            note += "; failed calls: " + ", ".join(f"{mode} ×{n}" for mode, n in failed.most_common())
            if "context_length" in failed:
                note += " (prompts longer than the context window: try --n-ctx 4096, which applies to every method)"
        notes.append(note + "".join(f"; {n}" for n in r.notes))
    seeds = "1 seed" if options.seeds == 1 else f"{options.seeds} seeds (mean ± sample standard deviation)"
    text = "\n".join([
        "# bench_search", "",
        f"Budget: {options.budget} model calls per method and seed, {seeds}. Workspace: "
        f"{options.workspace or 'the starter'} (portfolio {portfolio}), {len(ws.suite.split('search'))} search and "
        f"{len(ws.suite.split('holdout'))} holdout tasks. Backend: {backend_text}.",
        f"Machine: {report.machine_line(info)}.",
        f"Total wall time {report.duration(total_s)}; {len(outside.calls)} calls outside the budgets (the "
        "starting instructions on both splits, each method's best on the holdout tasks).", "",
        table, "",
        "Best search composite: the composite the method's own pick scored on the search tasks within its budget. "
        "Holdout: that pick evaluated on the holdout tasks afterwards, outside the budget. Keeps: how often the "
        "method replaced its best. Joules: the sum over the method's calls, with the meter that measured them.", "",
        *notes, "",
        "![best search composite against model calls](search.svg)", ""])
    md_path.write_text(text, encoding="utf-8")
    json_path.write_text(json.dumps({
        "options": {"budget": options.budget, "seeds": options.seeds, "methods": list(options.methods),
                    "workspace": str(options.workspace) if options.workspace else None, "portfolio": portfolio,
                    "n_ctx": options.n_ctx, "mipro_candidates": options.mipro_candidates, "backend": options.backend},
        "machine": info, "baseline": baseline, "outside_calls": len(outside.calls), "total_s": total_s,
        "runs": [r.to_json() for r in runs]}, indent=2), encoding="utf-8")
    return {"table": md_path, "plot": svg_path, "data": json_path}


def main_args(argv: Sequence[str] | None, doc: str) -> SearchOptions:
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    parser.add_argument("--budget", type=int, default=100, help="model calls per method and seed (default 100)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per method (default 1; 3 or more for a spread)")
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
    parser.add_argument("--keep-scratch", action="store_true", help="keep the methods' workspace copies")
    args = parser.parse_args(argv)
    if args.budget < 1 or args.seeds < 1:
        parser.error("--budget and --seeds must be at least 1")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    return SearchOptions(budget=args.budget, seeds=args.seeds, methods=methods, out=args.out,
                         workspace=args.workspace, portfolio=args.portfolio, n_ctx=args.n_ctx,
                         mipro_candidates=args.mipro_candidates, backend=args.backend,
                         keep_scratch=args.keep_scratch, backoff_s=0.0 if args.backend == "fake" else 1.0)


def main(argv: Sequence[str] | None = None, doc: str = "") -> int:
    return report.run_cli("bench_search", lambda: run(main_args(argv, doc or __doc__ or "")))
