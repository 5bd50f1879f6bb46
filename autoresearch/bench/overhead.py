"""bench_overhead: what the framework costs around the model calls, what its cache saves, what pruning saves."""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..lm.backends.base import Completion, CompletionRequest
from ..search.proposer import PROPOSER_INSTRUCTIONS
from ..search.study import Study
from ..store.statuses import INCUMBENT_STATUSES
from ..workspace.config import ROLES
from ..workspace.workspace import load_workspace
from . import report, workspaces
from .arguments import ArgumentParser
from .budget import Budget, budgeted_factory
from .search import _quiet, inner_factory
from .workspaces import copy_workspace, starter

TARGET_SHARE = 0.02  # the target: framework overhead under 2% of a trial


@dataclass
class OverheadOptions:
    trials: int = 4  # trials per pruning study (equal for both)
    out: Path = Path("runs/bench")
    workspace: Path | None = None
    portfolio: str | None = None
    n_ctx: int | None = None
    seed: int = 0
    backend: str = "configured"
    keep_scratch: bool = False
    backoff_s: float = 1.0


@dataclass
class TrialTiming:
    study: str
    number: int
    operator: str
    status: str
    calls: int
    wall_s: float
    model_s: float  # seconds of the trial during which a model call ran (overlapping calls once)
    note: str = ""

    @property
    def overhead_s(self) -> float:
        return max(0.0, self.wall_s - self.model_s)

    @property
    def share(self) -> float:
        return self.overhead_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class StudyRun:
    label: str
    trials: list[TrialTiming]
    calls: int
    wall_s: float  # the whole optimize(): start-up (lock, branch, Optuna) and every trial
    model_s: float  # seconds of the study during which a model call ran (overlapping calls once)
    best: float | None
    baseline: float | None
    stop: str

    @property
    def pruned(self) -> int:
        return sum(t.status == "pruned" for t in self.trials)


class _Clock:
    """Study observer: each trial's wall time, the seconds in it during which a model call ran, and its calls."""

    def __init__(self, label: str, budget: Budget):
        self.label = label
        self.budget = budget
        self.trials: list[TrialTiming] = []
        self.best: float | None = None
        self.baseline: float | None = None
        self._start: tuple[int, str, float, float, int] | None = None

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "trial_started":
            self._start = (data["trial"], data.get("operator", ""), time.perf_counter(), self.budget.used)
        elif kind == "trial_finished" and self._start is not None:
            number, operator, t0, c0 = self._start
            outcome, t1 = data["outcome"], time.perf_counter()
            self.trials.append(TrialTiming(self.label, number, operator, outcome.status, self.budget.used - c0,
                                           t1 - t0, self.budget.busy_s(t0, t1), outcome.description))
            if outcome.status in INCUMBENT_STATUSES and outcome.composite is not None:
                self.best = outcome.composite
                if outcome.status == "baseline":
                    self.baseline = outcome.composite
            self._start = None


def run_study(label: str, root: Path, *, n_trials: int, seed: int, inner: Callable | None, backoff_s: float,
              wrap: Callable[[Any], Any] | None = None) -> StudyRun:
    """One Study for n_trials on root; every call counted (no limit), wrap applied outside the counter."""
    budget = Budget(None)
    counted = budgeted_factory(budget, inner)
    factory = (lambda cfg, backends: wrap(counted(cfg, backends))) if wrap else counted
    clock = _Clock(label, budget)
    study = Study(load_workspace(root), backend_factory=factory, seed=seed, observer=clock, backoff_s=backoff_s)
    start = time.perf_counter()
    summary = study.optimize(n_trials=n_trials)
    end = time.perf_counter()
    return StudyRun(label, clock.trials, budget.used, end - start, budget.busy_s(start, end), clock.best,
                    clock.baseline, summary.stop_reason)


class FixedProposal:
    """The cache check's proposer: every proposal is the same variant (other roles reach the real model)."""

    def __init__(self, inner: Any, variant: str):
        self.inner = inner
        self.variant = variant
        self.name = inner.name
        self.in_process = inner.in_process

    def complete(self, request: CompletionRequest) -> Completion:
        if request.messages and request.messages[0].content.startswith(PROPOSER_INSTRUCTIONS.strip()[:40]):
            text = json.dumps({"idea": "a fixed variant (cache check)", "new_instructions": self.variant})
            return Completion(text=text, prompt_tokens=0, completion_tokens=0, latency_s=0.0)
        return self.inner.complete(request)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


@dataclass
class OverheadResult:
    pruning: list[StudyRun]
    cache: StudyRun
    text: str
    paths: dict[str, Path]
    info: dict[str, Any] = field(default_factory=dict)


def run(options: OverheadOptions, log: Callable[[str], None] | None = None) -> OverheadResult:
    import dspy

    dspy.disable_logging()
    console = sys.stdout
    log = log or (lambda text: print(text, file=console, flush=True))
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    with workspaces.scratch("bench-overhead-", keep=options.keep_scratch, log=log) as scratch:
        inner, backend_text = inner_factory(options.backend)
        info = report.machine()
        source = options.workspace or starter(scratch / "starter")
        ws = load_workspace(source)
        portfolio = options.portfolio or ws.settings.workspace.portfolio
        ws.portfolio(portfolio)
        base: dict[str, Any] = {"workspace": {"portfolio": portfolio}}
        if options.n_ctx is not None:
            base["portfolios"] = {portfolio: {r: {"n_ctx": options.n_ctx}
                                              for r in ROLES}}
        log(f"bench_overhead: pruning studies of {options.trials} trials each, then the cache check; "
            f"backend {backend_text}")
        log(f"machine: {report.machine_line(info)}")
        started = time.perf_counter()
        pruning = []
        for pruner in ("wilcoxon", "none"):
            root = copy_workspace(source, scratch / f"pruner-{pruner}", all_search=True,
                                  update={**base, "search": {"pruner": pruner}})
            with _quiet(out / "overhead.log"):
                run_ = run_study(f"pruner {pruner}", root, n_trials=options.trials, seed=options.seed, inner=inner,
                                 backoff_s=options.backoff_s)
            pruning.append(run_)
            log(f"  pruner {pruner}: {len(run_.trials) - 1} trials, {run_.calls} calls, {run_.pruned} pruned, "
                f"best {report.num(run_.best)}, {report.duration(run_.wall_s)}")
        root = copy_workspace(source, scratch / "cache", update={
            **base, "workspace": {"portfolio": portfolio, "optimizable": ["producer.md"]},
            "scoring": {"keep_threshold": 10.0},
            "search": {"operators": ["rephrase"], "proposer_temperatures": [0.7], "pruner": "none"}})
        variant = load_workspace(root).instructions["producer.md"].rstrip() + " Answer in plain words.\n"
        with _quiet(out / "overhead.log"):
            cache = run_study("cache", root, n_trials=2, seed=options.seed, inner=inner,
                              backoff_s=options.backoff_s, wrap=lambda backend: FixedProposal(backend, variant))
        log(f"  cache: trial calls {[t.calls for t in cache.trials]} ({', '.join(t.status for t in cache.trials)})")
        text = render(pruning, cache, info, options, backend_text, time.perf_counter() - started)
        paths = {"table": out / "overhead.md", "data": out / "overhead.json"}
        paths["table"].write_text(text, encoding="utf-8")
        paths["data"].write_text(json.dumps({
            "options": {"trials": options.trials, "seed": options.seed, "backend": options.backend,
                        "workspace": str(options.workspace) if options.workspace else None, "n_ctx": options.n_ctx},
            "machine": info,
            "studies": [{**{k: v for k, v in asdict(s).items() if k != "trials"},
                         "trials": [{**asdict(t), "overhead_s": t.overhead_s, "share": t.share} for t in s.trials]}
                        for s in [*pruning, cache]]}, indent=2), encoding="utf-8")
        log("")
        log(text)
        log("written: " + ", ".join(str(p) for p in paths.values()))
        return OverheadResult(pruning, cache, text, paths, info)


def render(pruning: Sequence[StudyRun], cache: StudyRun, info: dict[str, Any], options: OverheadOptions,
           backend_text: str, total_s: float) -> str:
    trials = [t for s in pruning for t in s.trials]
    wall = sum(t.wall_s for t in trials)
    over = sum(t.overhead_s for t in trials)
    pooled = over / wall if wall > 0 else 0.0
    shares = [t.share for t in trials]
    study_wall = sum(s.wall_s for s in pruning)
    study_over = study_wall - sum(s.model_s for s in pruning)
    verdict = "met" if pooled < TARGET_SHARE else "not met"
    lines = [
        "# bench_overhead", "",
        f"Backend: {backend_text}. Machine: {report.machine_line(info)}. Total wall time {report.duration(total_s)}.",
        "",
        "## Framework overhead", "",
        "A trial's wall time (from the Study's trial_started to its trial_finished event) minus the time during "
        "which a model call ran (measured around each backend call; calls that overlap, as tasks side by side do, "
        "count once), as a share of the trial. The trials are those of the two pruning studies below.", "",
        "| study | trial | operator | status | model calls | wall | a model call running | overhead | share |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *(f"| {t.study} | {t.number} | {t.operator} | {t.status} | {t.calls} | {t.wall_s:.2f} s | {t.model_s:.2f} s | "
          f"{t.overhead_s:.3f} s | {t.share:.2%} |" for t in trials), "",
        f"Pooled over {len(trials)} trials: {over:.2f} s of {wall:.2f} s outside model calls = **{pooled:.2%}** "
        f"(target under {TARGET_SHARE:.0%}: {verdict}); per trial median "
        f"{statistics.median(shares) if shares else 0:.2%}, max {max(shares) if shares else 0:.2%}. Whole studies, "
        f"start-up included (run lock, git branch, Optuna study): {study_over:.2f} s of {study_wall:.2f} s = "
        f"{(study_over / study_wall if study_wall else 0):.2%}.", "",
        "## Cache", "",
        "The same instruction variant proposed twice (the proposer is scripted to return one fixed variant; "
        "everything else runs on the model; keep_threshold 10 so that the first is not kept and stays "
        "comparable): the second time it is found in the store (find_variant) and not evaluated again.", "",
        "| trial | status | model calls | note |", "| ---: | --- | ---: | --- |",
        *(f"| {t.number} | {t.status} | {t.calls} | {t.note} |" for t in cache.trials), "",
    ]
    repeat = [t for t in cache.trials[1:] if "identical" in t.note]
    if repeat:
        lines.append(f"The repeated variant cost {repeat[-1].calls} model calls (its first evaluation: "
                     f"{cache.trials[1].calls}).")
    else:
        lines.append("The repeated variant was not recognised as identical in this run: see the notes above.")
    lines += [
        "",
        "## Pruning", "",
        f"Two studies with the same seed and {options.trials} trials each, every task of the workspace used as a "
        "search task (so that the Wilcoxon pruner, which needs 4 paired tasks, can stop a variant before the "
        "last ones); one with the pruner, one without.", "",
        "| pruner | trials | model calls | pruned trials | baseline composite | best composite | wall time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(f"| {s.label.removeprefix('pruner ')} | {len(s.trials) - 1} | {s.calls} | {s.pruned} | "
          f"{report.num(s.baseline)} | {report.num(s.best)} | {report.duration(s.wall_s)} |" for s in pruning),
        "",
        "Trials count the baseline out; model calls count it in. The variants differ between the two studies "
        "(the proposer samples, and the sampler sees pruned trials differently), so the best composites "
        "compare two searches, not the same variants with and without pruning.", ""]
    return "\n".join(lines)


def main_args(argv: Sequence[str] | None, doc: str) -> OverheadOptions:
    import argparse

    parser = ArgumentParser(description=doc.splitlines()[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    parser.add_argument("--trials", type=int, default=4, help="trials per pruning study (default 4)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="output folder (default runs/bench)")
    parser.add_argument("--workspace", type=Path, default=None, help="a workspace (default: a fresh starter)")
    parser.add_argument("--portfolio", default=None, help="portfolio (default: the workspace's)")
    parser.add_argument("--n-ctx", type=int, default=None, help="context window of every role")
    parser.add_argument("--seed", type=int, default=0, help="the studies' seed (default 0)")
    parser.add_argument("--backend", choices=("configured", "fake"), default="configured",
                        help="fake: a scripted pipeline, for the smoke tests only")
    parser.add_argument("--keep-scratch", action="store_true", help="keep the studies' workspace copies")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    return OverheadOptions(trials=args.trials, out=args.out, workspace=args.workspace, portfolio=args.portfolio,
                           n_ctx=args.n_ctx, seed=args.seed, backend=args.backend, keep_scratch=args.keep_scratch,
                           backoff_s=0.0 if args.backend == "fake" else 1.0)


def main(argv: Sequence[str] | None = None, doc: str = "") -> int:
    return report.run_cli("bench_overhead", lambda: run(main_args(argv, doc or __doc__ or "")))
