"""bench_calls: where a run's model calls go, role by role, and how much of each prompt the model computed.

A prompt's tokens that the backend held from an earlier call (llama.cpp's prefix match, the embedded prefix
states of lm/backends/prefix_cache.py) cost nothing; the rest are computed, at a few hundred tokens a second
on two CPU cores. Which part of a prompt can be held depends on what the prompts of consecutive calls share
at their start, so the order of a prompt's parts is an efficiency setting, and this bench measures it.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..lm.backends.base import Completion, CompletionRequest
from ..lm.engine import BackendEngine
from ..search.study import Study
from ..workspace.workspace import load_workspace
from . import report, workspaces
from .arguments import ArgumentParser
from .search import _quiet, inner_factory


@dataclass(frozen=True)
class CallCost:
    """One completed call as this bench counts it."""

    role: str
    prompt_tokens: int  # sent
    computed_tokens: int | None  # of those, computed by the model (None: the backend does not say)
    prompt_s: float | None  # seconds computing them (None: the backend does not say)
    completion_tokens: int
    latency_s: float


@dataclass(frozen=True)
class RoleCost:
    role: str
    calls: int
    prompt_tokens: int
    computed_tokens: int | None
    prompt_s: float | None
    completion_tokens: int
    latency_s: float

    @property
    def reused_share(self) -> float | None:
        """The share of the prompt tokens sent that the model did not compute again."""
        if self.computed_tokens is None or not self.prompt_tokens:
            return None
        return 1.0 - self.computed_tokens / self.prompt_tokens


def by_role(costs: list[CallCost]) -> list[RoleCost]:
    """The calls summed per role, in the order the roles first called."""
    return [summed(role, [c for c in costs if c.role == role]) for role in dict.fromkeys(c.role for c in costs)]


def summed(label: str, costs: list[CallCost]) -> RoleCost:
    """Calls summed under one label (a role, or "all"); what was computed is unknown if one call did not say."""
    known = all(c.computed_tokens is not None for c in costs)
    return RoleCost(label, len(costs), sum(c.prompt_tokens for c in costs),
                    sum(c.computed_tokens or 0 for c in costs) if known else None,
                    sum(c.prompt_s or 0.0 for c in costs) if known else None,
                    sum(c.completion_tokens for c in costs), sum(c.latency_s for c in costs))


@contextlib.contextmanager
def counting_calls() -> Iterator[list[CallCost]]:
    """Every call that BackendEngine completes meanwhile, counted (a failed attempt is not: it computed nothing
    a later call could reuse, and the store keeps it)."""
    costs: list[CallCost] = []
    original = BackendEngine.call

    def call(engine: BackendEngine, request: CompletionRequest, key: str | None = None) -> Completion:
        completion = original(engine, request, key)
        timings = completion.timings
        computed = timings.get("prompt_eval_tokens")
        costs.append(CallCost(engine.role, completion.prompt_tokens, None if computed is None else int(computed),
                              timings.get("prompt_eval_s"), completion.completion_tokens, completion.latency_s))
        return completion

    BackendEngine.call = call  # type: ignore[method-assign]
    try:
        yield costs
    finally:
        BackendEngine.call = original  # type: ignore[method-assign]


@dataclass
class CallsOptions:
    trials: int = 12
    seed: int = 7
    workspace: Path | None = None
    out: Path | None = None
    backend: str = "configured"
    reuse: bool = True  # [backends] reuse_replies in the copy: False makes every call (lm/replies.py)


def run(options: CallsOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """A study of options.trials trials on a fresh copy of the workspace (the starter by default), its calls
    counted per role; returns what was printed, as data."""
    import dspy

    dspy.disable_logging()
    with workspaces.scratch("bench-calls-") as scratch:
        inner, backend_text = inner_factory(options.backend)
        source = options.workspace or workspaces.starter(scratch / "starter")
        root = workspaces.copy_workspace(source, scratch / "ws",
                                         update=None if options.reuse else {"backends": {"reuse_replies": False}})
        info = report.machine()
        log(f"bench_calls: a study of {options.trials} trials, seed {options.seed}, backend {backend_text}, "
            f"replies {'reused' if options.reuse else 'never reused'} for identical requests")
        log(f"machine: {report.machine_line(info)}")
        study = Study(load_workspace(root), backend_factory=inner, seed=options.seed)
        started = time.perf_counter()
        with counting_calls() as costs, _quiet(scratch / "study.log"):
            summary = study.optimize(n_trials=options.trials)
        wall_s = time.perf_counter() - started
    roles = by_role(costs)
    trials = [{"number": o.number, "status": str(o.status), "file": o.file, "operator": o.operator,
               "description": o.description, "delta": o.delta} for o in summary.outcomes]
    log(render([*roles, summed("all", costs)], wall_s, summary.stop_reason))
    log(f"trials: {_counts(trials)}; {summary.calls} calls, {summary.joules:,.0f} J ({summary.energy_source}); "
        f"{summary.reused} replies reused")
    result = {"options": {"trials": options.trials, "seed": options.seed, "backend": options.backend,
                          "reuse": options.reuse,
                          "workspace": str(options.workspace) if options.workspace else None},
              "machine": info, "wall_s": wall_s, "stop": summary.stop_reason, "calls_recorded": summary.calls,
              "reused": summary.reused,
              "joules": summary.joules, "energy_source": summary.energy_source, "trials": trials,
              "roles": [{**asdict(r), "reused_share": r.reused_share} for r in roles],
              "calls": [asdict(c) for c in costs]}  # in the order they finished
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
        log(f"written to {options.out}")
    return result


def render(roles: list[RoleCost], wall_s: float, stop: str) -> str:
    lines = [f"wall {wall_s:.1f} s; the study stopped: {stop}", "",
             "| role | calls | prompt tokens sent | computed | reused | prompt s | completion tokens | call s | "
             "s a call |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in roles:
        reused = "?" if r.reused_share is None else f"{r.reused_share:.0%}"
        lines.append(f"| {r.role} | {r.calls} | {r.prompt_tokens:,} | "
                     f"{'?' if r.computed_tokens is None else f'{r.computed_tokens:,}'} | {reused} | "
                     f"{'?' if r.prompt_s is None else f'{r.prompt_s:.1f}'} | {r.completion_tokens:,} | "
                     f"{r.latency_s:.1f} | {r.latency_s / r.calls if r.calls else 0:.2f} |")
    return "\n".join(lines)


def _counts(trials: list[dict[str, Any]]) -> str:
    """"baseline 1, pruned 9, discard 8, failed 2": the trials by how they ended, in the order first seen."""
    statuses = [t["status"] for t in trials]
    return ", ".join(f"{status} {statuses.count(status)}" for status in dict.fromkeys(statuses))


def main(argv: list[str] | None = None, doc: str = "") -> int:
    import argparse

    parser = ArgumentParser(description=(doc or __doc__ or "").splitlines()[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    parser.add_argument("--trials", type=int, default=12, help="trials after the baseline (default 12)")
    parser.add_argument("--seed", type=int, default=7, help="the study's seed (default 7)")
    parser.add_argument("--workspace", type=Path, default=None, help="a workspace to copy (default: the starter)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--no-reuse", action="store_true",
                        help="make every call, also for a request identical to one made before ([backends] "
                             "reuse_replies = false)")
    parser.add_argument("--backend", choices=("configured", "fake"), default="configured",
                        help="fake: a scripted pipeline, for the smoke tests only")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    options = CallsOptions(trials=args.trials, seed=args.seed, workspace=args.workspace, out=args.out,
                           backend=args.backend, reuse=not args.no_reuse)
    return report.run_cli("bench_calls", lambda: run(options))
