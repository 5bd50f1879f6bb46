"""The live view of a running study and its end-of-run summary (rich); fed by the Study's observer events."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..search import near_miss
from ..search.portfolios import PortfolioRow
from ..search.results import TrialOutcome
from ..search.summary import StudySummary
from ..store.statuses import INCUMBENT_STATUSES
from ..workspace.workspace import Workspace
from .views import energy_label

STATUS_STYLE = {"keep": "bold green", "discard": "yellow", "pruned": "magenta", "failed": "red",
                "interrupted": "red", "baseline": "cyan"}


class LiveView:
    """Shows the trial in progress, the incumbent, recent outcomes, calls and energy so far."""

    def __init__(self, console: Console):
        self.console = console
        # Piped to a file (an overnight `nohup … > run.log`), a live display would only show its last
        # frame: print one line per event instead, so the log can be followed and grepped.
        self.plain = not console.is_terminal
        self.live = Live(console=console, refresh_per_second=4, transient=False)
        self.current = "starting…"
        self.progress = ""
        self.incumbent: float | None = None
        self.recent: deque[TrialOutcome] = deque(maxlen=8)
        self.joules = 0.0
        self.sources: set[str] = set()
        self.keeps = 0
        self.started = time.monotonic()
        self.notes: list[str] = []
        self.trial = 0

    def __enter__(self) -> "LiveView":
        if not self.plain:
            self.live.__enter__()
            self._refresh()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live.is_started:
            self.live.__exit__(*exc)

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self.plain:
            self.console.print(text, markup=False)
        self._refresh()

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        """Show one event of the run. A fault of the display itself never stops the run (an overnight run is worth
        more than its progress display): the live display gives way to plain lines, said in one line."""
        try:
            self._show(kind, data)
        except Exception as exc:  # noqa: BLE001 - any display fault; the run's own errors are not raised here
            if not self.plain:
                self.plain = True
                self.live.stop()
            self.console.print(f"the progress display failed ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                               "plain lines from here on, the run goes on", markup=False, highlight=False)

    def _show(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "note":
            self.note(data["text"])
            return
        if kind in ("forecast", "forecast_revised"):  # the second: made again from the study's own trials
            line = forecast_line(data)
            self.note(line if kind == "forecast" else line.replace("forecast:", "forecast, revised:", 1))
            return
        if kind == "trial_started":
            label = "baseline" if data["operator"] == "baseline" else f"{data['file']} · {data['operator']}"
            self.current, self.progress = f"trial {data['trial']}: {label}", "proposing"
            self.trial = data["trial"]
            self._plain_progress("started", label)
        elif kind == "task_done":
            self.progress = f"task {data['index'] + 1}/{data['total']} ({data['task']}: {data['value']:.2f})"
        elif kind in STAGES:
            self.progress = STAGES[kind](data)
            self._plain_progress("…", self.progress)
        elif kind == "trial_finished":
            outcome: TrialOutcome = data["outcome"]
            self.recent.append(outcome)
            self.joules += outcome.joules
            if outcome.energy_source:
                self.sources.add(outcome.energy_source)
            if outcome.status in INCUMBENT_STATUSES:
                self.incumbent = outcome.composite
                self.keeps += outcome.status == "keep"
            self.progress = outcome.status
            if self.plain:
                self.console.print(_plain_line(outcome, self.incumbent), markup=False, highlight=False)
        self._refresh()

    def _plain_progress(self, what: str, detail: str) -> None:
        """In a log, a line as each trial and each of its stages starts: a long baseline is not silence."""
        if self.plain:
            minutes = (time.monotonic() - self.started) / 60
            self.console.print(f"trial {self.trial:>3} {what:<11}{detail}  ({minutes:.1f} min)", markup=False,
                               highlight=False)

    def _refresh(self) -> None:
        if self.plain:
            return
        elapsed = time.monotonic() - self.started
        head = Text.assemble(
            ("autoresearch run  ", "bold"), (self.current, "cyan"), "  ", (self.progress, "dim"), "\n",
            f"incumbent {self.incumbent:.3f}" if self.incumbent is not None else "incumbent: evaluating baseline",
            f"  ·  keeps {self.keeps}  ·  {self.joules:,.0f} J ({energy_label('+'.join(sorted(self.sources)) or 'estimate')})",
            f"  ·  {elapsed / 60:.1f} min",
        )
        table = Table(box=None, pad_edge=False)
        for col in ("trial", "status", "composite", "delta", "J", "file", "operator / idea"):
            table.add_column(col, justify="right" if col in ("trial", "composite", "delta", "J") else "left")
        for o in self.recent:
            table.add_row(str(o.number), Text(o.status, STATUS_STYLE.get(o.status, "")),
                          "" if o.composite is None else f"{o.composite:.3f}",
                          "" if o.delta is None else f"{o.delta:+.3f}", f"{o.joules:.0f}", Text(o.file),
                          # Text, not markup: a model's idea may hold "[rule]" (dropped) or "[/INST]" (an error)
                          Text(f"{o.operator} {_described(o)}"[:60]))
        parts: list[Any] = [head, table] + [Text(n, "yellow") for n in self.notes[-2:]]
        self.live.update(Group(*parts))


# A trial's stages besides its search tasks: the live view's progress, and a line each in a log.
STAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "holdout": lambda data: "holdout tasks",
    "noise": lambda data: f"measuring the noise: repeat {data['repeat'] + 1}",
    "confirm": lambda data: f"a contender: confirming under seed set {data['repeat'] + 1}",
    "incumbent": lambda data: "the incumbent on this machine: " + (
        "holdout tasks" if data.get("split") == "holdout" else f"seed set {data['repeat'] + 1}"),
    "rejudge": lambda data: "lost the race: re-judging against the new incumbent",
}


def _plain_line(o: TrialOutcome, incumbent: float | None) -> str:
    composite = "" if o.composite is None else f"composite {o.composite:.3f}"
    if o.objective is not None and o.objective != o.composite:  # energy_weight > 0: delta is the objective's
        composite += f" objective {o.objective:.3f}"
    delta = "" if o.delta is None else f" ({o.delta:+.3f})"
    where = f" {o.file} · {o.operator}" if o.file else ""
    suffix = "" if incumbent is None else f"  | incumbent {incumbent:.3f}"
    return f"trial {o.number:>3} {o.status:<11}{composite}{delta}  {o.joules:.0f} J{where}  {_described(o)[:80]}{suffix}"


def _described(o: TrialOutcome) -> str:
    """A trial's description as a line shows it: a queued follow-up said first, since the line cuts the rest."""
    return f"{near_miss.MARK} · {o.description}" if o.crossover_next else o.description


RACE_STAGES = {"screen": "out at the screen", "confirm": "out in confirmation", "bound": "inside the noise",
               "holdout": "vetoed by the holdout", "kept": "kept"}


def race_counts(outcomes) -> dict[str, int]:
    """How this run's trials that reached the keep rule ended, by stage (in race order)."""
    stages = [o.evidence.stage for o in outcomes if o.evidence is not None]
    return {label: stages.count(stage) for stage, label in RACE_STAGES.items() if stage in stages}


def forecast_line(data: dict[str, Any]) -> str:
    """The run's forecast (search/forecast.py) as one line: what the stop conditions buy, and its basis."""
    per = data["per_trial"]
    label = energy_label(data["energy_source"])
    trial = f"a trial ≈ {per['calls']:.1f} model calls, {per['joules']:,.0f} J, {per['seconds']:.0f} s"
    if data["trials"] is None:
        return (f"forecast: {trial} ({label}; from {data['basis']}); --plateau alone bounds the run"
                + late_clause(data.get("late")))
    hours = data["hours"]
    span = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min" if hours * 60 >= 1 else f"{hours * 3600:.0f} s"
    trials = f"{data['trials']}{' more' if data.get('after') else ''} trial{'' if data['trials'] == 1 else 's'}"
    return (f"forecast: {trials} ≈ {data['calls']:,.0f} model "
            f"calls, {data['joules'] / 1000:,.1f} kJ ({label}), {span} of model time "
            f"({trial}; from {data['basis']})" + late_clause(data.get("late")))


def late_clause(late: dict[str, Any] | None) -> str:
    """The incumbent's seed sets not measured yet, the one-off the forecast's per-trial cost leaves out."""
    if not late:
        return ""
    sets = f"set {late['first']}" if late["first"] == late["last"] else f"sets {late['first']}–{late['last']}"
    return (f"; once, if a contender gets that far: about {late['calls']:,.0f} calls, {late['joules'] / 1000:,.1f} kJ "
            f"for the incumbent's seed {sets}")


def print_summary(console: Console, summary: StudySummary, ws: Workspace) -> None:
    """Trials by outcome, composite baseline → best (search and holdout), energy, completion rates and commits."""
    reason = {"trials": "trial budget reached", "timeout": "timeout reached", "plateau": "plateau: no keep lately",
              "stopped": "stopped by Ctrl-C",
              "hangup": "stopped after the trial in progress: the terminal closed (SIGHUP); start the run with nohup "
                        "or in tmux to keep it going after you log out",
              "interrupted": "trial abandoned by Ctrl-C",
              "terminated": "stopped by SIGTERM, the trial in progress abandoned",
              "backend_down": "stopped: the backend keeps failing",
              "failed_trials": "stopped: trials keep failing",
              "storage_down": "stopped: the shared study's database is unreachable",
              "head_moved": "stopped: the workspace's git HEAD moved",
              "models_changing": "stopped: the models answering keep changing"}.get(summary.stop_reason, summary.stop_reason)
    # The study's name is the user's (--study, [workspace] name): shown as written, never read as markup.
    console.print(Text.assemble("\n", (f"Study {summary.study}", "bold"), f" on branch {summary.branch} — {reason}"))
    if summary.stop_message:
        console.print(f"{summary.stop_reason}: {summary.stop_message}", style="red", markup=False, soft_wrap=True)
    for note in summary.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    counts = "  ".join(f"{k} {summary.counts.get(k, 0)}" for k in
                       ("baseline", "keep", "discard", "pruned", "failed", "interrupted") if summary.counts.get(k))
    scope = f"this worker's, {summary.worker}" if summary.worker else "whole study"
    console.print(f"trials ({scope}): {counts or 'none'}")
    if summary.baseline_composite is not None and summary.best_composite is not None:
        console.print(f"composite  {summary.baseline_composite:.3f} → {summary.best_composite:.3f}"
                      f"  ({summary.best_composite - summary.baseline_composite:+.3f}) on search tasks")
    else:
        console.print("composite  no baseline yet (it is evaluated first when the run resumes)")
    if summary.baseline_holdout is not None:
        best = summary.best_holdout if summary.best_holdout is not None else summary.baseline_holdout
        console.print(f"holdout    {summary.baseline_holdout:.3f} → {best:.3f}  ({best - summary.baseline_holdout:+.3f})")
    if summary.energy_weight and summary.baseline_objective is not None and summary.best_objective is not None:
        console.print(f"objective  {summary.baseline_objective:.3f} → {summary.best_objective:.3f}"
                      f"  ({summary.best_objective - summary.baseline_objective:+.3f}) = composite − "
                      f"{summary.energy_weight:g} × kJ per task (what the keep rule compared)")
    noise = summary.noise
    if noise is not None and noise.sd is not None:
        difference = noise.difference_sd
        values = ", ".join(f"{v:.2f}" for v in noise.values)
        if noise.sd == 0:
            console.print(f"noise      {noise.of} over {noise.n} seeds: {values}, the seeds changed nothing; a "
                          f"variant's tasks are its only evidence (each counted once)")
        else:
            console.print(f"noise      {noise.of} over {noise.n} seeds: {values} (sd {noise.sd:.2f}); two single "
                          f"evaluations differ with sd {difference:.2f}")
    race = race_counts(summary.outcomes)
    if race:
        console.print("keep rule  " + ", ".join(f"{n} {what}" for what, n in race.items())
                      + " (paired over search tasks × seeds; `autoresearch show N` gives each trial's evidence)")
    keeps = sum(o.status == "keep" for o in summary.outcomes)
    reused = (f"; {summary.reused} replies reused for requests identical to earlier ones, instead of calls"
              if summary.reused else "")
    console.print(f"this run   {keeps} keep{'' if keeps == 1 else 's'} for {summary.calls} model calls and "
                  f"{summary.joules:,.0f} J ({energy_label(summary.energy_source)}){reused}")
    for number in summary.queued_follow_ups:
        console.print(f"next run   trial {number} ended inside the noise; its crossover with the incumbent is queued "
                      "and runs first when the study resumes (the same `autoresearch run`)")
    check = summary.forecast
    if check is not None and check.trials:
        f, n = check.per_trial, check.trials
        console.print(f"forecast   a trial ≈ {f.calls:.1f} calls, {f.joules:,.0f} J, {f.seconds:.0f} s of model "
                      f"time; this run's {n} trial{'' if n == 1 else 's'}: {check.calls / n:.1f} calls, "
                      f"{check.joules / n:,.0f} J, {check.seconds / n:.0f} s each")
    if summary.roles:
        console.print(role_summary_table(summary.roles))
    if len(summary.comparison) > 1:  # a comparison needs a previous portfolio
        console.print(comparison_table(summary.comparison))
    if summary.pareto:
        scope = "this worker's trials" if summary.worker else "whole study"
        table = Table(title=f"Pareto front: composite against joules per task ({scope}, runs/pareto.tsv)",
                      title_justify="left", box=None)
        for col in ("trial", "status", "composite", "J/task", "producer tokens/task", "change"):
            table.add_column(col, justify="left" if col in ("status", "change") else "right")
        for p in summary.pareto:
            change = f"{p.file} {p.operator}".strip() or "the committed instructions"
            table.add_row(str(p.trial), p.status, f"{p.composite:.3f}", f"{p.joules_per_task:.0f}",
                          f"{p.producer_tokens_per_task:.0f}", change)
        console.print(table)
    if summary.commits:
        console.print("commits:")
        for sha, subject in summary.commits:
            console.print(f"  {sha[:10]}  {subject}", markup=False)
    else:
        console.print("commits:   none this run (instruction files unchanged)")
    console.print(f"results:   {ws.runs_dir / 'results.tsv'}  ·  git log {summary.branch}", markup=False)


def role_summary_table(roles: list[dict[str, Any]]) -> Table:
    """Per role and model, this run's calls: energy, energy per output token, tokens, latency, loads, completion."""
    table = Table(title="Roles and models (this run's calls)", title_justify="left", box=None)
    for col in ("role", "model", "calls", "completed", "J", "load J", "J/1k out", "tokens in", "tokens out",
                "latency s", "swaps", "load s", "energy"):
        table.add_column(col, justify="left" if col in ("role", "model", "energy") else "right")
    for r in roles:
        per_k = "-" if r["joules_per_1k_output_tokens"] is None else f"{r['joules_per_1k_output_tokens']:.1f}"
        table.add_row(r["role"], Text(r["model"]), str(r["calls"]), f"{r['completion_rate']:.0%}", f"{r['joules']:.1f}",
                      f"{r['load_joules']:.1f}", per_k, str(r["prompt_tokens"]), str(r["completion_tokens"]),
                      f"{r['latency_s']:.1f}", str(r["swaps"]), f"{r['load_s']:.2f}",
                      energy_label(r["energy_source"] or "estimate"))
    if roles:  # a swap is a call that had to load its model: what the keep-alive schedule minimises
        table.caption = (f"model loads this run: {sum(r['swaps'] for r in roles)} swaps, "
                         f"{sum(r['load_s'] for r in roles):.1f} s loading")
        table.caption_justify = "left"
    return table


def comparison_table(rows: list[PortfolioRow]) -> Table:
    """This study's best against the previous portfolio's best: quality, energy and latency per task."""
    table = Table(title="Portfolios compared (each study's best: its last keep, else its baseline)",
                  title_justify="left", box=None)
    for col in ("portfolio", "study", "trial", "composite", "holdout", "J/task", "s/task", "producer tokens/task",
                "energy"):
        table.add_column(col, justify="left" if col in ("portfolio", "study", "energy") else "right")
    for r in rows:
        table.add_row(Text(r.portfolio), Text(r.study), str(r.trial), f"{r.best_composite:.3f}",
                      "-" if r.best_holdout is None else f"{r.best_holdout:.3f}", f"{r.joules_per_task:.1f}",
                      f"{r.seconds_per_task:.2f}", f"{r.producer_tokens_per_task:.0f}", energy_label(r.energy_source))
    return table
