"""bench_validity: can a keep be trusted? False keeps of null edits, power on a planted improvement, holdout
agreement of keeps, and the model calls the keep rule costs: today's paired rule beside the rule it replaced
(one evaluation of the search tasks, kept when it beats the incumbent by more than keep_threshold)."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..evaluation.paired import compare
from ..search.keep_rule import PairedKeepRule
from ..search.proposer import Proposal, Unusable
from ..search.study import Study
from ..store import Store
from ..workspace.workspace import load_workspace
from . import report, workspaces
from .arguments import ArgumentParser
from .resample import resample, uniform_gains
from .score_table import collect, evaluate_seed_set
from .search import inner_factory
from .spike import MARKER, PLANTED, SPIKE, spiked_factory
from .validity_report import write
from .workspaces import copy_workspace, starter

# Instruction edits tried as a planted improvement on SmolLM2-135M, each measured here against the starter on
# fresh seeds (`--stages planted`): the model all but ignores its role instructions, so none moved the score.
EDITS_TRIED = {
    "producer.md: restate the task first": ("producer.md", "You are a helpful assistant. Begin your answer by "
                                            "copying the task word for word. Then answer it using the plan.\n"),
    "planner.md: sabotaged to one short sentence": ("planner.md", "Give exactly one step, copied word for word: "
                                                    "Write one short sentence and nothing else.\n"),
}
# So the power check spikes a known effect into real runs (bench/spike.py): answers written under PLANTED get
# SPIKE judge points more on every dimension; their text, criteria and noise stay the real model's.
BOLDER_PRUNER_LEVELS = (1.28, 0.84)  # the paired pruner's z replayed beside its own 1.645: 10% and 20% chances left
PLANTED_SEED = 1000  # the planted check's fresh seeds (1000, 1001, …): none of the tries below use them


@dataclass
class ValidityOptions:
    aa_trials: int = 16  # null-edit trials in the A/A studies, in all
    aa_studies: int = 4  # A/A studies, each with its own seeds: one incumbent draw is not the noise
    aa_seed: int = 200  # the first A/A study's seeds; the next ones' are 10 apart
    power_tries: int = 5  # fresh-seed studies of the planted improvement
    normal_trials: int = 8  # trials of a normal study (the model's own proposals)
    planted_repeats: int = 3  # fresh seed sets the planted edit is shown to help on, before the tries
    table_nulls: int = 5  # null edits in the score table (beside the starter and the planted edit)
    table_sets: int = 6  # seed sets each of them is evaluated under
    table_seed: int = 500  # the table's first seed
    table: Path | None = None  # where the table is kept (default: out/table.json); an existing one is resumed
    workspace: Path | None = None  # the workspace every stage copies (None: a fresh starter)
    stages: tuple[str, ...] = ("planted", "table", "aa", "power", "normal")
    out: Path = Path("runs/bench")
    seed: int = 0
    backend: str = "configured"
    keep_scratch: bool = False  # keep the studies' workspaces (their git logs hold each keep's evidence)


@dataclass
class TrialRow:
    """One trial as the benchmark counts it: both rules' verdicts and their model calls."""

    stage: str
    study: int  # which try / study of the stage
    number: int
    status: str
    stage_reached: str  # pruned, failed, screen, confirm, bound, holdout, kept (or discard without a race)
    screen_delta: float | None  # suite composite − the incumbent's: what the old rule compared
    paired_delta: float | None
    lower_bound: float | None
    holdout_delta: float | None
    old_keep: bool  # the old rule's verdict on the same screen
    calls: int  # the trial's model calls under the paired rule (proposer, screen, confirm, incumbent, holdout)
    old_calls: int  # what the old rule would have spent: proposer + screen (+ the holdout of an old keep)


@dataclass
class ValidityResult:
    rows: list[TrialRow] = field(default_factory=list)
    planted: dict[str, Any] = field(default_factory=dict)
    baselines: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    resampled: dict[str, Any] = field(default_factory=dict)  # the rule replayed over the score table

    def stage(self, name: str) -> list[TrialRow]:
        return [r for r in self.rows if r.stage == name]


class NullEdits:
    """The A/A proposer: each proposal is its parent with more spaces at one place; no meaning changes."""

    def __init__(self):
        self.count = 0

    def propose(self, parent: str, operator, feedback, tried, *, other: str = "", temperature: float = 0.7,
                rng=None, **_) -> Proposal:
        self.count += 1
        spaces = [m.start() for m in re.finditer(" ", parent)] or [len(parent.rstrip("\n"))]
        at, extra = spaces[self.count % len(spaces)], " " * (1 + self.count // len(spaces))
        return Proposal(parent[:at] + extra + parent[at:], f"null edit {self.count}: {len(extra)} more space(s)",
                        "rule")


class Planted:
    """The power check's proposer: always the planted improvement."""

    def __init__(self, text: str):
        self.text = text

    def propose(self, parent: str, *args, **kwargs) -> Proposal | Unusable:
        if parent == self.text:
            return Unusable("it repeats its parent unchanged")
        return Proposal(self.text, "planted: name the task's own key terms", "rule")


def seeded_copy(source: Path, dest: Path, seed: int) -> Path:
    """A copy of the workspace whose pipeline roles start from `seed`, producer.md the only optimizable file."""
    roles = {role: {"seed": seed} for role in ("planner", "producer", "evaluator")}
    return copy_workspace(source, dest, update={"portfolios": {"default": roles},
                                                "workspace": {"optimizable": ["producer.md"]}})


def planted_check(source: Path, scratch: Path, repeats: int, factory) -> dict[str, Any]:
    """Each edit of EDITS_TRIED against the starter, paired on the search tasks under `repeats` fresh seed sets
    that no try uses: whether any instruction edit has a real effect on this model."""
    root = seeded_copy(source, scratch / "planted", PLANTED_SEED)
    ws = load_workspace(root)
    store = Store.for_workspace(root / "runs")
    tasks = ws.suite.split("search")

    def scores(instructions: dict[str, str]) -> dict:
        found = {}
        for repeat in range(repeats):
            found.update(evaluate_seed_set(ws, store, instructions, tasks, repeat, split="search", factory=factory)[0])
        return found

    starter_scores = scores(ws.instructions)
    edits = {}
    for name, (file, text) in EDITS_TRIED.items():
        c = compare(scores({**ws.instructions, file: text}), starter_scores)
        edits[name] = c.to_json(0.95)
    return {"seeds": [PLANTED_SEED + r for r in range(repeats)], "starter_mean": _mean(starter_scores),
            "edits": edits}


def table_stage(source: Path, scratch: Path, options: ValidityOptions, factory, log) -> dict[str, Any]:
    """The starter, `table_nulls` null edits of its producer.md and the planted edit (spiked), each evaluated
    under `table_sets` seed sets on both splits; then the keep rule replayed over every pairing of them."""
    root = seeded_copy(source, scratch / "table", options.table_seed)
    ws = load_workspace(root)
    base = ws.instructions
    edits = NullEdits()
    variants = {"starter": (base, factory)}
    for k in range(options.table_nulls):
        variants[f"null {k + 1}"] = ({**base, "producer.md": edits.propose(base["producer.md"], None, None, None).text},
                                     factory)
    variants["planted"] = ({**base, "producer.md": PLANTED}, spiked_factory(MARKER, SPIKE, factory))
    path = Path(options.table or Path(options.out) / "table.json")
    texts = {name: instructions["producer.md"] for name, (instructions, _) in variants.items()}
    # A table may grow (more null edits, more seed sets); a variant of the same name must keep its text.
    kept = json.loads(path.read_text(encoding="utf-8")).get("texts", {}) if path.exists() else {}
    if any(kept[name] != text for name, text in texts.items() if name in kept):
        raise ValueError(f"{path}: its variants' texts differ from this run's; use another --table")
    table = collect(root, variants, options.table_sets, path, log, options.table_seed)
    table["texts"] = {**kept, **texts}
    table["machine"] = table.get("machine") or report.machine()
    path.write_text(json.dumps(table, indent=1), encoding="utf-8")
    rule = PairedKeepRule.from_settings(ws.settings.scoring, ws.settings.search.noise_repeats)
    configured = resample(table, rule)
    found = dict(configured)
    found.update(table_calls=table["calls"], table_seconds=table["seconds"], table_path=str(path),
                 table_machine=table["machine"], repeats=rule.repeats, across_tasks=rule.across_tasks)
    keeps = [found["aa"], found["power"]]
    measured = sum(d["holdout_measured"] for d in keeps)
    found["holdout_agreement"] = {"measured": measured, "rate": sum(
        (d["holdout_agreement"] or 0) * d["holdout_measured"] for d in keeps) / measured if measured else None}
    # The same table under the rule's other settings: what across_tasks and another noise_repeats would do.
    # (The configured row is the replay above, not run twice.)
    found["settings"] = [{"repeats": repeats, "across_tasks": across, **(
        configured if (repeats, across) == (rule.repeats, rule.across_tasks)
        else resample(table, replace(rule, repeats=repeats, across_tasks=across)))}
        for repeats in range(2, min(found["seed_sets"], 5) + 1) for across in (False, True)]
    # And behind the paired pruner (search/pruning.py): the calls it saves on null edits, the power it costs, at
    # its level (z 1.645: a 5% predictive chance left) and at bolder ones that would stop more screens.
    # Its noise comes from the seed sets the baseline measured upfront ([search] noise_repeats_upfront; the rest
    # are measured when a contender reaches them): the configured count, and every other one beside it.
    upfront = min(ws.settings.search.noise_repeats_upfront, rule.repeats)
    found["noise_upfront"] = upfront
    found["pruned"] = resample(table, rule, prune=True, upfront=upfront)
    found["pruned_levels"] = [{"z": z, **resample(table, rule, prune=True, z=z, upfront=upfront)}
                              for z in BOLDER_PRUNER_LEVELS]
    found["pruned_upfront"] = [{"upfront": n, **resample(table, rule, prune=True, upfront=n)}
                               for n in range(2, rule.repeats + 1) if n != upfront]
    # Early keeps ([scoring] early_keep) beside the rule without them (or with them, where configured off), both
    # behind the configured pruner: the calls a clear gain saves, and what they cost in false keeps and power.
    found["early_keep"] = rule.early_keep
    found["early_flipped"] = resample(table, replace(rule, early_keep=not rule.early_keep), prune=True,
                                      upfront=upfront)
    # And a known gain of several sizes, added to the start's own scores: what each costs near the threshold.
    found["uniform_gains"] = {str(early).lower(): uniform_gains(table, replace(rule, early_keep=early), prune=True,
                                                                upfront=upfront) for early in (False, True)}
    log(f"  resampled: {json.dumps(found)}")
    return found


def _mean(scores: dict) -> float | None:
    values = [v for v in scores.values() if v is not None]
    return sum(values) / len(values) if values else None


def study_rows(root: Path, stage: str, index: int, holdout_tasks: int, threshold: float) -> tuple[list[TrialRow],
                                                                                                 dict[str, Any]]:
    """Every trial of the workspace's study, with both rules' verdicts and calls, read back from its store."""
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    db.row_factory = sqlite3.Row
    calls = {}
    for row in db.execute("SELECT c.trial, COALESCE(e.kind, 'proposer') AS kind, COUNT(*) AS n FROM calls c "
                          "LEFT JOIN evaluations e ON c.evaluation_id = e.id WHERE c.reused = 0 "
                          "GROUP BY c.trial, kind"):
        calls.setdefault(row["trial"], {})[row["kind"]] = row["n"]
    tasks_run = {row["trial"]: row["n"] for row in db.execute(
        "SELECT e.trial, COUNT(*) AS n FROM task_results t JOIN evaluations e ON t.evaluation_id = e.id "
        "WHERE e.kind IN ('trial', 'baseline') GROUP BY e.trial")}
    rows, baseline = [], {}
    incumbent = None
    for t in db.execute("SELECT * FROM trials ORDER BY number"):
        kinds = calls.get(t["number"], {})
        if t["status"] == "baseline":
            incumbent = t["composite"]
            baseline = {"stage": stage, "study": index, "calls": sum(kinds.values()), "calls_by_kind": kinds,
                        "composite": t["composite"]}
            continue
        evidence = json.loads(t["evidence_json"]) if t["evidence_json"] else None
        screen = kinds.get("trial", 0)
        screen_delta = None if t["composite"] is None or incumbent is None or t["status"] == "pruned" \
            else t["composite"] - incumbent
        old_keep = screen_delta is not None and t["status"] != "failed" and screen_delta > threshold + 1e-9
        per_task = screen / max(tasks_run.get(t["number"], 1), 1)
        old_calls = kinds.get("proposer", 0) + screen + (round(per_task * holdout_tasks) if old_keep else 0)
        reached = evidence["stage"] if evidence else t["status"]
        holdout = evidence.get("holdout") if evidence else None
        rows.append(TrialRow(stage, index, t["number"], t["status"], reached, screen_delta,
                             evidence["search"]["mean"] if evidence else None,
                             evidence["search"]["lower_bound"] if evidence else None,
                             holdout["mean"] if holdout else None, old_keep, sum(kinds.values()), old_calls))
        if t["status"] == "keep":
            incumbent = t["composite"]
    return rows, baseline


def run(options: ValidityOptions, log: Callable[[str], None] | None = None) -> ValidityResult:
    import dspy

    dspy.disable_logging()
    log = log or (lambda text: print(text, file=sys.stdout, flush=True))
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    # The studies' workspaces: their rows are in the result; kept on request, to read a keep's commit in git.
    with workspaces.scratch("bench-validity-", keep=options.keep_scratch, log=log) as scratch:
        factory, backend_text = inner_factory(options.backend)
        result = ValidityResult(machine=report.machine(), backend=backend_text)
        source = (copy_workspace(options.workspace, scratch / "starter") if options.workspace
                  else starter(scratch / "starter"))
        ws = load_workspace(source)
        threshold = ws.settings.scoring.keep_threshold
        holdout_tasks = len(ws.suite.split("holdout"))

        def study(stage: str, index: int, root: Path, trials: int, proposer, backends=None) -> None:
            def observe(kind: str, data: dict[str, Any]) -> None:
                if kind == "trial_finished":
                    o = data["outcome"]
                    log(f"  {stage} {index} trial {o.number}: {o.status} {o.description[:110]}")
            Study(load_workspace(root), backend_factory=backends or factory, seed=options.seed + index,
                  observer=observe, proposer=proposer).optimize(n_trials=trials)
            rows, baseline = study_rows(root, stage, index, holdout_tasks, threshold)
            result.rows.extend(rows)
            result.baselines.append(baseline)

        for stage in options.stages:
            start = time.perf_counter()
            log(f"{stage}: starting")
            if stage == "planted":
                result.planted = planted_check(source, scratch, options.planted_repeats, factory)
                log(f"  planted: {json.dumps(result.planted)}")
            elif stage == "table":
                result.resampled = table_stage(source, scratch, options, factory, log)
            elif stage == "aa":
                per_study = max(1, options.aa_trials // max(options.aa_studies, 1))
                for k in range(options.aa_studies):
                    study("aa", k, seeded_copy(source, scratch / f"aa-{k}", options.aa_seed + 10 * k), per_study,
                          NullEdits())
            elif stage == "power":
                for k in range(options.power_tries):
                    root = seeded_copy(source, scratch / f"power-{k}", 100 + 10 * k)
                    study("power", k, root, 1, Planted(PLANTED), spiked_factory(MARKER, SPIKE, factory))
            elif stage == "normal":
                study("normal", 0, copy_workspace(source, scratch / "normal"), options.normal_trials, None)
            else:
                raise ValueError(f"unknown stage {stage!r}; planted, table, aa, power or normal")
            result.seconds[stage] = time.perf_counter() - start
            write(out, options, result, quiet=stage != options.stages[-1])  # a stopped run keeps its stages
    return result


def main_args(argv: Sequence[str] | None, doc: str) -> ValidityOptions:
    import argparse

    parser = ArgumentParser(description=doc.splitlines()[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    parser.add_argument("--aa-trials", type=int, default=ValidityOptions.aa_trials)
    parser.add_argument("--aa-studies", type=int, default=ValidityOptions.aa_studies)
    parser.add_argument("--aa-seed", type=int, default=ValidityOptions.aa_seed,
                        help="the first A/A study's seeds (default 200; each next study's 10 more)")
    parser.add_argument("--power-tries", type=int, default=ValidityOptions.power_tries)
    parser.add_argument("--normal-trials", type=int, default=ValidityOptions.normal_trials)
    parser.add_argument("--planted-repeats", type=int, default=ValidityOptions.planted_repeats)
    parser.add_argument("--table-nulls", type=int, default=ValidityOptions.table_nulls)
    parser.add_argument("--table-sets", type=int, default=ValidityOptions.table_sets)
    parser.add_argument("--table-seed", type=int, default=ValidityOptions.table_seed)
    parser.add_argument("--table", type=Path, default=None,
                        help="the score table's file (default OUT/table.json); an existing one is resumed or reused")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="the workspace every stage copies (default: a fresh starter)")
    parser.add_argument("--stages", default=",".join(ValidityOptions.stages),
                        help="comma-separated: planted, table, aa, power, normal")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="output folder (default runs/bench)")
    parser.add_argument("--seed", type=int, default=0, help="the studies' seed (default 0)")
    parser.add_argument("--backend", choices=("configured", "fake"), default="configured",
                        help="fake: a scripted pipeline, for the smoke tests only")
    parser.add_argument("--keep-scratch", action="store_true",
                        help="keep the studies' workspace copies (the log says where): each keep's commit is there")
    a = parser.parse_args(argv)
    return ValidityOptions(aa_trials=a.aa_trials, aa_studies=a.aa_studies, aa_seed=a.aa_seed, power_tries=a.power_tries, normal_trials=a.normal_trials,
                           planted_repeats=a.planted_repeats, table_nulls=a.table_nulls, table_sets=a.table_sets,
                           table_seed=a.table_seed, table=a.table, workspace=a.workspace, stages=tuple(s for s in a.stages.split(",") if s),
                           out=a.out, seed=a.seed, backend=a.backend, keep_scratch=a.keep_scratch)


def main(argv: Sequence[str] | None = None, doc: str = "") -> int:
    return report.run_cli("bench_validity", lambda: run(main_args(argv, doc or __doc__ or "")))
