"""Rich rendering of `log` and `show`: what the loop committed, and one trial against its incumbent."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..review.study_log import EDITED, Restart, StudyLog
from ..review.trial_detail import TaskComparison, TaskSide, TrialDetail, evidence_line
from .live import STATUS_STYLE
from .views import energy_label

OUTPUT_LINES = 12  # per side, unless --full: enough to recognise an answer, short enough to compare many
OUTPUT_CHARS = 900


def local_time(stamp: str) -> str:
    """A stored UTC ISO time as local 'YYYY-MM-DD HH:MM'."""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def fmt_joules(value: float | None) -> str:
    """Joules at a precision that suits both a GPU's hundreds and a fake backend's milli-joules."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def change(before: float | None, after: float | None, spec: str = ".2f", higher_is_better: bool = True,
           show_delta: bool = False, formatter=None) -> Text:
    """'a → b', green when it got better, red when worse."""
    show = formatter or (lambda v: fmt(v, spec))
    if before is None and after is None:
        return Text("-")
    if before is None:
        return Text(f"(none) → {show(after)}")
    if after is None:
        return Text(f"{show(before)} → (not run)", "dim")
    text = f"{show(before)} → {show(after)}"
    if show_delta:
        text += f" ({after - before:+{spec}})"
    diff = after - before
    if show(before) == show(after):  # equal as printed: no colour for a difference the reader cannot see
        return Text(text)
    better = diff > 0 if higher_is_better else diff < 0
    return Text(text, "green" if better else "red")


# --- log -----------------------------------------------------------------------------------------


def log_renderables(log: StudyLog) -> list[RenderableType]:
    """The study line and the table of committed improvements, newest first."""
    counts = "  ".join(f"{k} {log.counts[k]}" for k in
                       ("baseline", "keep", "discard", "pruned", "failed", "interrupted", "running")
                       if log.counts.get(k))
    others = sum(bool(e.worker) for e in log.entries)
    whose = " (this worker's)" if others or log.baseline_elsewhere else ""  # a shared study: the store's trials
    head = Text.assemble(("Study ", "bold"), (log.study, "bold"), f" on branch {log.branch}\n",
                         f"baseline composite {fmt(log.baseline_composite)}"
                         f" (holdout {fmt(log.baseline_holdout)}"
                         + (f"; {log.baseline_elsewhere}, another worker's" if log.baseline_elsewhere else "")
                         + f")  ·  trials{whose}: {counts}")
    if not log.entries and not log.restarts:
        return [head, Text("no kept commits yet: the instructions are as they were at the baseline")]
    by_others = f", {others} by other workers of the shared study" if others else ""
    edits_only = all(r.why == EDITED for r in log.restarts)
    restarts = (f"; {len(log.restarts)} new baseline{'' if len(log.restarts) == 1 else 's'}"
                + (" where HEAD was not the incumbent (a commit of yours)" if edits_only else "")
                ) if log.restarts else ""
    table = Table(title=f"Committed improvements ({len(log.entries)}{by_others}{restarts}), newest first",
                  title_justify="left")
    for col in ("date", "trial", "commit", "file", "delta", "bound", "pairs", "composite", "holdout", "J/task",
                "operator", "description"):
        table.add_column(col, justify="right" if col in ("trial", "delta", "bound", "pairs", "composite", "holdout",
                                                         "J/task") else "left", overflow="fold")
    for e in sorted([*log.entries, *log.restarts], key=lambda row: row.trial, reverse=True):
        if isinstance(e, Restart):  # the deltas below it were measured against what came before it
            table.add_row(local_time(e.date), str(e.trial), e.commit[:10], "", "", "", "", f"{e.composite:.3f}",
                          fmt(e.holdout_composite), "-", "baseline",
                          Text(e.description, "cyan"))
            continue
        search = (e.evidence or {}).get("search") or {}
        bound = Text("inside noise", "yellow") if e.inside_noise else Text(f"{e.lower_bound:+.3f}", "green")
        pairs = f"{search['tasks']}×{search['repeats']}" if search else "–"
        table.add_row(local_time(e.date), str(e.trial), e.commit[:10], e.file, Text(f"{e.delta:+.3f}", "green"),
                      bound, pairs, f"{e.composite:.3f}", fmt(e.holdout_composite), fmt_joules(e.joules_per_task),
                      e.operator, Text(e.shown_description))
    sources = {e.energy_source for e in log.entries if e.energy_source}
    foot = Text(f"delta: mean paired difference over tasks × seeds; bound: its one-sided lower confidence bound "
                f"(\"inside noise\": kept without one above zero, as before the paired rule)  ·  "
                f"energy: {energy_label('+'.join(sorted(sources)) or 'estimate')}  ·  "
                f"`autoresearch show COMMIT` for a commit's diff, evidence and task-by-task changes"
                + ("; another worker's keep: its figures as that worker recorded them, its task-by-task changes in "
                   "its store (`git show COMMIT` here)" if others else ""), "dim")
    return [head, table, foot]


# --- show ----------------------------------------------------------------------------------------


def _status_label(d: TrialDetail) -> Text:
    if d.status == "pruned":
        label = f"PRUNED after {d.tasks_run} of {d.tasks_total or '?'} search tasks (not committed)"
    elif d.status in ("discard", "failed", "interrupted"):
        label = {"discard": "DISCARDED", "failed": "FAILED", "interrupted": "INTERRUPTED"}[d.status]
        label += " (not committed; the instruction files were left as they were)"
    else:
        label = d.status.upper()
    return Text(label, STATUS_STYLE.get(d.status, "bold"))


def _parent_line(d: TrialDetail) -> str:
    """Where the proposer started when it was not the incumbent (a parent from the per-task Pareto front)."""
    if d.parent_held_incumbents_file:
        return (f"; the proposer started from trial {d.parent_trial} (a Pareto parent), whose {d.file} "
                "is the incumbent's: the diff is its whole change")
    if d.parent_held_incumbents_file is False:
        return (f"; the proposer rewrote trial {d.parent_trial}'s own {d.file}, not the incumbent's: the diff "
                "holds that trial's change too")
    return f"; the proposer rewrote trial {d.parent_trial}'s version of {d.file}"


def header(d: TrialDetail) -> Text:
    """Who, what and the headline numbers of a trial."""
    title = Text.assemble((f"Trial {d.number}", "bold"), " · ", _status_label(d))
    if d.commit:
        title.append(f" · commit {d.commit[:10]}")
    if d.file:
        title.append(f" · {d.file} · {d.operator}")
    lines = [title]
    if d.commit_subject:
        lines.append(Text(d.commit_subject))
    if d.description:
        lines.append(Text(f"idea: {d.description}"))
    if d.note and d.note != d.description:
        lines.append(Text(f"note: {d.note}", "dim"))
    if d.before_trial is not None:
        origin = f"compared with trial {d.before_trial} ({d.before_status})"
        if d.parent_trial is not None and d.parent_trial != d.before_trial:
            origin += _parent_line(d)
        lines.append(Text(origin, "dim"))
    if d.scored_by_trial is not None and d.scored_by_trial != d.number:
        lines.append(Text(f"identical to trial {d.scored_by_trial}: its scores are shown, it was not re-evaluated",
                          "yellow"))
    if d.status == "baseline" and d.before_trial is None:  # the study's first: nothing before it
        lines.append(Text(f"composite {fmt(d.composite)} · holdout {fmt(d.holdout_composite)} · "
                          f"J/task {fmt_joules(d.joules_per_task)}"))
        return Text("\n").join(lines)
    if d.status == "baseline":  # a new baseline: set beside the incumbent it replaced, as a trial is
        lines.append(Text(f"new baseline: {d.restart}; the incumbent from here on", "yellow"))
    if d.tasks_run < d.tasks_total and d.composite_before_same_tasks is not None:
        # Pruned or interrupted, it ran only some tasks: compare like with like, not with the full composite.
        figures = Text(f"composite on the {d.tasks_run} tasks it ran (incumbent → trial) ").append_text(
            change(d.composite_before_same_tasks, d.composite, ".3f", show_delta=True))
    else:
        # The whole suite's composite under the configured seeds; the keep rule's mean of per-task differences
        # (over every seed set it ran) is the evidence line below: they differ, so they are named apart.
        figures = Text("suite composite ").append_text(change(d.composite_before, d.composite, ".3f",
                                                              show_delta=True))
    if d.holdout_composite is not None:
        figures.append(" · holdout ").append_text(change(d.holdout_before, d.holdout_composite, ".3f",
                                                         show_delta=True))
    figures.append(" · J/task ").append_text(change(d.joules_per_task_before, d.joules_per_task,
                                                    higher_is_better=False, formatter=fmt_joules))
    lines.append(figures)
    if d.evidence:
        lines.append(Text(evidence_line(d.evidence), "dim" if d.evidence.get("keep") else "yellow"))
    if d.noise_sd is not None:
        lines.append(Text(f"noise: {d.noise_of} moves with sd {d.noise_sd:.2f} over {d.noise_repeats} "
                          "seeds", "dim"))
    return Text("\n").join(lines)


def diff_text(lines: list[str]) -> Text:
    """A unified diff, coloured as git colours it."""
    out = Text()
    for line in lines:
        style = ("bold" if line.startswith(("---", "+++")) else "cyan" if line.startswith("@@")
                 else "green" if line.startswith("+") else "red" if line.startswith("-") else "")
        out.append(line + "\n", style)
    return out


def task_table(tasks: list[TaskComparison]) -> Table:
    """Per task: composite, judge r1, criteria, energy and latency, before → after."""
    table = Table(title="Tasks, before → after", title_justify="left")
    for col in ("task", "split", "composite", "judge r1", "criteria", "joules", "seconds"):
        table.add_column(col, justify="left" if col in ("task", "split") else "right")
    for t in tasks:
        b, a = t.before, t.after
        table.add_row(
            t.task_id, t.split,
            change(_get(b, "composite"), _get(a, "composite"), show_delta=True),
            change(_get(b, "score_r1"), _get(a, "score_r1")),
            change(_get(b, "criteria_passed"), _get(a, "criteria_passed"),
                   formatter=lambda v: f"{int(v)}/{(a or b).criteria_total}"),
            change(_get(b, "joules"), _get(a, "joules"), higher_is_better=False, formatter=fmt_joules),
            change(_get(b, "seconds"), _get(a, "seconds"), ".2f", higher_is_better=False),
        )
    return table


def _get(side: TaskSide | None, name: str) -> float | None:
    return None if side is None else float(getattr(side, name))


def dimension_table(tasks: list[TaskComparison]) -> Table | None:
    """Per task and rubric dimension: the judge's first-pass score, before → after."""
    dims: list[str] = []
    for t in tasks:
        for side in (t.before, t.after):
            for name in (side.dimensions if side else {}):
                if name not in dims:
                    dims.append(name)
    if not dims:
        return None
    table = Table(title="Rubric dimensions (judge, first pass), before → after", title_justify="left")
    table.add_column("task")
    for name in dims:
        table.add_column(name, justify="right")
    for t in tasks:
        cells = [change(t.before.dimensions.get(n) if t.before else None,
                        t.after.dimensions.get(n) if t.after else None, ".1f") for n in dims]
        table.add_row(t.task_id, *cells)
    return table


def criteria_changes(tasks: list[TaskComparison]) -> Text | None:
    """The checks that flipped between the two evaluations, with the reason of the new result."""
    out = Text()
    for t in tasks:
        if t.before is None or t.after is None:
            continue
        old = {c["criterion"]: c["passed"] for c in t.before.criteria}
        for c in t.after.criteria:
            if c["criterion"] in old and old[c["criterion"]] != c["passed"]:
                verdict = ("failed → passed", "green") if c["passed"] else ("passed → failed", "red")
                out.append(f"  {t.task_id}: {c['criterion']}: ").append(verdict[0], verdict[1])
                out.append(f" ({c['reason']})\n")
    return Text("Criteria that changed\n", "bold").append_text(out) if out else None


def zeroed_answers(tasks: list[TaskComparison]) -> Text | None:
    """The answers whose judge score a guard replaced by 0 (a loop, a copy of the instructions, text aimed at the
    judge), before and after."""
    out = Text()
    for t in tasks:
        for side, name in ((t.before, "before"), (t.after, "after")):
            if side is not None and side.zeroed:
                out.append(f"  {t.task_id} ({name}): {side.zeroed}\n")
    return Text("Answers whose judge score a guard set to 0\n", "bold").append_text(out) if out else None


def clip(text: str, full: bool) -> tuple[str, bool]:
    """The output as shown: whole with --full, else its first lines; True when something was cut."""
    if full:
        return text, False
    lines = text.splitlines()
    cut = "\n".join(lines[:OUTPUT_LINES])[:OUTPUT_CHARS]
    return cut, cut != text.rstrip("\n") and cut != text


def outputs(d: TrialDetail, full: bool) -> tuple[list[Table], bool]:
    """The producer's first-pass outputs, before | after, one table per task."""
    tables, truncated = [], False
    for t in d.tasks:
        table = Table(title=f"{t.task_id} ({t.split}): producer output", title_justify="left",
                      show_lines=False, expand=True)
        table.add_column(f"before (trial {d.before_trial})" if d.before_trial is not None else "before", ratio=1)
        table.add_column(f"after (trial {d.number})", ratio=1)
        if t.before is not None and t.after is not None and t.before.output == t.after.output:
            text, cut = clip(t.after.output, full)
            truncated |= cut
            table.add_row(Text("(the same output before and after)\n" + text + ("\n…" if cut else ""), "dim"), "")
            tables.append(table)
            continue
        cells = []
        for side in (t.before, t.after):
            if side is None:
                cells.append(Text("(not run)", "dim"))
                continue
            text, cut = clip(side.output, full)
            truncated |= cut
            label = f"[failed: {side.failure_mode}]\n" if side.failed else ""
            cells.append(Text(label + text + ("\n…" if cut else "")))
        table.add_row(*cells)
        tables.append(table)
    return tables, truncated


def show_renderables(d: TrialDetail, full: bool = False) -> list[RenderableType]:
    """Header, instruction diff, per-task tables, changed criteria and the outputs side by side."""
    parts: list[RenderableType] = [header(d), Text("")]
    if d.diff:
        parts.append(diff_text(d.diff))
    elif d.status != "baseline":
        parts.append(Text("(no instruction diff recorded for this trial)", "dim"))
    if d.tasks:
        parts.append(task_table(d.tasks))
        dims = dimension_table(d.tasks)
        if dims is not None:
            parts.append(dims)
        flipped = criteria_changes(d.tasks)
        if flipped is not None:
            parts.append(flipped)
        zeroed = zeroed_answers(d.tasks)
        if zeroed is not None:
            parts.append(zeroed)
        tables, truncated = outputs(d, full)
        parts.extend(tables)
        if truncated:
            parts.append(Text(f"outputs cut to {OUTPUT_LINES} lines; --full shows them whole", "dim"))
        sources = {s.energy_source for t in d.tasks for s in (t.before, t.after) if s is not None}
        parts.append(Text(f"energy: {energy_label('+'.join(sorted(sources)))}", "dim"))
    else:
        parts.append(Text("no task results: this trial was not evaluated", "dim"))
    return parts


def print_all(console: Console, parts: list[RenderableType]) -> None:
    console.print(Group(*parts))
