"""Rich tables and JSON documents for the CLI; the library itself never prints."""

from __future__ import annotations

from typing import Any, Sequence

from rich.table import Table
from rich.text import Text

from ..energy import energy_label
from ..lm.calls import CallRecord, role_rows, spent_and_reused
from ..pipeline.runner import SuiteResult
from ..review.study_log import keep_entry
from ..search.shared.status import StudyStatus, model_groups
from ..workspace.config import (
    PIPELINE_ROLES,
    embedded_batch,
    embedded_contexts,
    task_concurrency,
)


def task_table(result: SuiteResult) -> Table:
    table = Table(title="Tasks", title_justify="left")
    for col in ("task", "split", "judge r1", "judge final", "criteria", "tokens", "seconds", "joules", "energy"):
        table.add_column(col, justify="left" if col in ("task", "split", "energy") else "right")
    for t in result.tasks:
        criteria = f"{t.criteria_passed}/{len(t.checks)}"
        judge_r1 = f"{t.score_r1:.2f}" if not t.failed else f"failed: {t.failure_mode}"
        if t.guarded or t.degenerate:  # a guard set the judge's score to 0: say which
            judge_r1 += " (judge-directed)" if t.guarded else " (degenerate)"
        table.add_row(t.task_id, t.split, judge_r1, f"{t.score_final:.2f}", criteria, str(t.tokens),
                      f"{t.seconds:.1f}", f"{t.joules:.1f}", energy_label(t.energy_source))
    return table


def role_table(calls: tuple[CallRecord, ...]) -> Table:
    table = Table(title="Roles", title_justify="left")
    for col in ("role", "model", "calls", "completed", "tokens out", "gen J", "load J", "J/1k out", "latency s",
                "swaps", "load s"):
        table.add_column(col, justify="left" if col in ("role", "model") else "right")
    for r in role_rows(calls):
        per_k = "-" if r["joules_per_1k_output_tokens"] is None else f"{r['joules_per_1k_output_tokens']:.1f}"
        table.add_row(r["role"], Text(r["model"]), str(r["calls"]), f"{r['completion_rate']:.0%}",  # a path: not markup
                      str(r["completion_tokens"]), f"{r['generation_joules']:.1f}", f"{r['load_joules']:.1f}", per_k,
                      f"{r['latency_s']:.1f}", str(r["swaps"]), f"{r['load_s']:.2f}")
    return table


def calls_line(calls: Sequence[CallRecord]) -> str:
    """"N model calls", and how many replies came from identical requests before instead of a call."""
    spent, reused = spent_and_reused(calls)
    return f"{len(spent)} model calls" + (
        f" ({reused} replies reused from identical earlier requests, their joules counted as when they were made)"
        if reused else "")


def suite_document(result: SuiteResult, portfolio: str) -> dict[str, Any]:
    """The JSON form of an evaluation: what `eval --json` prints."""
    spent, reused = spent_and_reused(result.calls)
    return {
        "evaluation_id": result.evaluation_id,
        "status": result.status,
        "portfolio": portfolio,
        "composite": result.score.composite,
        "judge_mean": result.score.judge_mean,
        "criteria_rate": result.score.criteria_rate,
        "joules": result.joules,
        "energy_source": result.energy_source,
        "energy_measured": energy_label(result.energy_source).startswith("measured"),
        "seconds": result.seconds,
        "swaps": result.swaps,
        "load_s": result.load_s,
        "load_joules": result.load_joules,
        "tasks": [
            {
                "task": t.task_id, "split": t.split, "score_r1": t.score_r1, "score_final": t.score_final,
                "dimensions": t.dimensions, "revisions": t.revisions,
                "criteria_passed": t.criteria_passed, "criteria_total": len(t.checks),
                "criteria": [{"criterion": c.criterion, "passed": c.passed, "reason": c.reason} for c in t.checks],
                "tokens": t.tokens, "seconds": t.seconds, "joules": t.joules, "energy_source": t.energy_source,
                "failed": t.failed, "failure_mode": t.failure_mode, "flags": list(t.flags),
            }
            for t in result.tasks
        ],
        # What this evaluation spent, as a run's role table counts it: the calls made, not the replies reused from
        # identical earlier requests (lm/replies.py), whose figures count in their tasks' as when they were made.
        "roles": role_rows(spent),
        "model_calls": len(spent),
        "replies_reused": reused,
    }


def doctor_tables(found) -> list[Table]:
    """Backends and models, GPUs and counters, and the meter of each role (every cell as written: a model name,
    a server's error or "[energy] gpus" is not markup)."""
    def row(table: Table, *cells: str) -> None:
        table.add_row(*(Text(cell) for cell in cells))

    backends = Table(title="Backends", title_justify="left")
    for col in ("backend", "ok", "detail", "models"):
        backends.add_column(col)
    for f in found.backends:
        row(backends, f.name, "yes" if f.ok else "no", f.detail, ", ".join(f.models[:6]))
    energy = Table(title="Energy counters", title_justify="left")
    energy.add_column("counter")
    energy.add_column("ok")
    energy.add_column("detail")
    for f in [*found.gpus, found.rapl]:
        row(energy, f.name, "yes" if f.ok else "no", f.detail)
    roles = Table(title="Meter per role", title_justify="left")
    for col in ("portfolio", "role", "backend", "model", "meter", "why"):
        roles.add_column(col)
    for r in found.roles:
        row(roles, r.portfolio, r.role, r.backend, r.model, r.meter, r.why)
    models = Table(title="What a study records of each model (a model changed under its name is a new baseline)",
                   title_justify="left")
    for col in ("model", "checked", "identity"):
        models.add_column(col)
    for f in found.identities:
        row(models, f.name, "yes" if f.ok else "no", f.detail)
    return [backends, energy, roles, models]


def profile_table(rows, n_tasks: int) -> Table:
    table = Table(title=f"Profile over {n_tasks} task(s): the pipeline's composite with each model in each role",
                  title_justify="left")
    for col in ("role", "model", "composite", "judge", "criteria", "J/task (role)", "latency s/call",
                "completed", "energy"):
        table.add_column(col, justify="left" if col in ("role", "model", "energy") else "right")
    for r in rows:
        table.add_row(r.role, Text(r.model), f"{r.composite:.2f}", f"{r.judge_mean:.2f}", f"{r.criteria_rate:.0%}",
                      f"{r.joules_per_task:.1f}", f"{r.latency_s:.2f}", f"{r.completion_rate:.0%}",
                      energy_label(r.energy_source))
    return table


def status_table(status: StudyStatus) -> Table:
    """One study: the incumbent line as the title, one row per worker seen in the window."""
    inc, base = status.incumbent, status.baseline
    trials = ", ".join(f"{n} {state}" for state, n in status.trials.items()) or "no trials yet"
    if inc is None:
        head = "no baseline yet"
    else:
        head = (f"incumbent: trial {inc.trial} (version {inc.version}), composite {inc.composite:.3f}"
                + (f", holdout {inc.holdout_composite:.3f}" if inc.holdout_composite is not None else "")
                + (f", commit {inc.commit_sha[:10]}" if inc.commit_sha else "")
                + f"; baseline {base.composite:.3f}; {status.keeps} keeps")
    table = Table(title=Text(f"study {status.study}: {head}\n{trials}"), title_justify="left",
                  caption_justify="left")
    labels, differences = model_groups(status.workers)
    columns = ("worker", "host", "portfolio", *(("models",) if labels else ()), "trials", "keeps", "last seen",
               "state")
    for column in columns:
        table.add_column(column, justify="right" if column in ("trials", "keeps", "last seen") else "left")
    for w in status.workers:
        table.add_row(Text(w["worker"]), Text(w["host"]), Text(w["portfolio"]),
                      *((labels[w["worker"]],) if labels else ()), str(w["trials"]), str(w["keeps"]),
                      f"{status.now - w['last_seen']:.0f}s ago", w["state"])
    if not status.workers:
        table.add_row(f"no worker seen in the last {status.window_s / 60:.0f} min", *[""] * (len(columns) - 1))
    caption = [f"{status.quiet_workers} more worker(s) seen earlier"] if status.quiet_workers else []
    if differences:  # another GGUF, llama.cpp build or Ollama digest under the same model names
        caption += [*differences, "workers on other models score every variant themselves: they share no scores"]
    if caption:
        table.caption = Text("\n".join(caption))
    return table


def keeps_table(status: StudyStatus) -> Table | None:
    """A shared study's keeps, every worker's, newest first, as the ledger holds them; None before any."""
    kept = [v for v in reversed(status.versions) if v.version > 0]
    if not kept:
        return None
    table = Table(title=Text(f"keeps of study {status.study} (every worker's), newest first"), title_justify="left")
    for column in ("version", "trial", "worker", "file", "delta", "bound", "composite", "holdout", "commit", "idea"):
        table.add_column(column, justify="right" if column in ("version", "trial", "delta", "bound", "composite",
                                                                "holdout") else "left", overflow="fold")
    for v in kept:
        e = keep_entry(trial=v.trial, date=v.kept_at, commit=v.commit_sha, file=v.file, composite=v.composite,
                       holdout_composite=v.holdout_composite, trailers=v.trailers, idea=v.idea or v.subject,
                       worker=v.worker, evidence=v.evidence)
        table.add_row(str(v.version), str(e.trial), e.worker, e.file, f"{e.delta:+.3f}",
                      "–" if e.lower_bound is None else f"{e.lower_bound:+.3f}", f"{e.composite:.3f}",
                      "–" if e.holdout_composite is None else f"{e.holdout_composite:.3f}", e.commit[:10],
                      Text(e.description))  # no markup: "[rule] …"
    return table


def repeats_table(found, scoring) -> Table:
    """`eval --repeats`: each task's composite in each repeat, and its mean ± sd."""
    table = Table(title=f"Tasks over {len(found.results)} repeats (composite per task)", title_justify="left")
    table.add_column("task")
    for index, seeds in enumerate(found.seeds, 1):
        shown = sorted(set(seeds.values()))
        table.add_column(f"#{index} seed {shown[0]}" if len(shown) == 1 else f"#{index} seeds {shown}", justify="right")
    table.add_column("mean ± sd", justify="right")
    for task, values in found.task_spreads(scoring).items():
        table.add_row(task, *(f"{v:.2f}" for v in values.values), values.text())
    composite = found.composite
    table.add_row("composite", *(f"{v:.2f}" for v in composite.values), composite.text(), style="bold")
    return table


def repeats_document(found, portfolio: str, scoring) -> dict[str, Any]:
    """The JSON form of `eval --repeats`: every evaluation, the seeds of each, and the spreads."""
    return {
        "portfolio": portfolio,
        "repeats": len(found.results),
        "requested": found.requested or len(found.results),  # more than repeats: a stop ended them early
        "seeds": list(found.seeds),
        "composite": found.composite.to_json(),
        "copies": found.copies,  # every repeat reproduced the first's replies: the seeds changed nothing
        "tasks": [{"task": task, **values.to_json()} for task, values in found.task_spreads(scoring).items()],
        "evaluations": [suite_document(r, portfolio) for r in found.results],
    }


def decoding_line(portfolio, backends) -> str:
    """How a suite's tasks run: how many at once and, for the embedded model, how it decodes them."""

    line = f"tasks: {task_concurrency(portfolio, backends)} at once"
    embedded = [portfolio.role(name) for name in PIPELINE_ROLES if portfolio.role(name).backend == "embedded"]
    if not embedded:
        return line
    role = embedded[-1]
    batch, contexts = embedded_batch(role, backends), embedded_contexts(role, backends)
    if backends.embedded_draft:
        how = f"prompt-lookup drafts of up to {backends.embedded_draft} tokens"
    elif batch > 1:
        how = f"up to {batch} calls decoded in one batch"
    else:
        how = (f"{contexts} contexts side by side, one call at a time in each" if contexts > 1
               else "one call at a time")
    exact = "batched arithmetic: a study of its own" if backends.embedded_draft or batch > 1 else (
        "replies as from one context")
    return f"{line} · embedded model: {how} ({exact})"
