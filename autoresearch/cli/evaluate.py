"""`autoresearch eval`: the current instructions evaluated once, or N times with the spread between repeats."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import click

from ..errors import UsageError
from ..lm import outages
from .console import console, note_a_running_run, note_on_stderr, quiet_dspy
from .options import workspace_option
from .signals import end_stopped, stop_signals


@click.command("eval")
@workspace_option
@click.option("--portfolio", "-p", default=None, help="Portfolio to use (default: [workspace] portfolio).")
@click.option("--split", type=click.Choice(["all", "search", "holdout"]), default="all", show_default=True)
@click.option("--task", "task_ids", multiple=True, help="Only this task (repeatable).")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Evaluate N times, each repeat with the next seeds: each task's and the composite's mean ± sd.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def eval_command(path: Path, portfolio: str | None, split: str, task_ids: tuple[str, ...], repeats: int,
                 as_json: bool) -> None:
    """Evaluate the current instructions: a row per task, the composite, and the energy; with --repeats N,
    how much each moves between repeats (the noise a difference between two evaluations must clear)."""
    from ..lm.calls import made
    from ..lm.preflight import check_portfolio
    from ..pipeline.harness import Harness
    from ..pipeline.runner import evaluate_tasks
    from ..store import Store
    from ..workspace.config import PIPELINE_ROLES
    from ..workspace.workspace import load_workspace
    from .views import (
        calls_line,
        decoding_line,
        energy_label,
        role_table,
        suite_document,
        task_table,
    )

    quiet_dspy()
    ws = load_workspace(path)
    name = portfolio or ws.settings.workspace.portfolio
    chosen = ws.portfolio(name)
    tasks = [t for t in ws.suite.tasks if split == "all" or t.split == split]
    unknown = set(task_ids) - {t.id for t in ws.suite.tasks}
    if unknown:
        raise UsageError(f"{ws.root / ws.settings.workspace.tasks}: no task with id {', '.join(sorted(unknown))}")
    if task_ids:
        tasks = [t for t in tasks if t.id in task_ids]
    if not tasks:
        raise UsageError(f"no {split} tasks to evaluate")
    check_portfolio(ws, name, chosen, roles=PIPELINE_ROLES)
    note_a_running_run(ws.runs_dir)
    store = Store.for_workspace(ws.runs_dir)
    replies = _stored_replies(ws, store, chosen)
    if repeats > 1:
        _eval_repeats(ws, store, name, tasks, repeats, split, as_json, replies)
        return
    harness = Harness(ws, chosen, replies=replies)
    progress = None

    def on_task(index: int, result) -> bool:
        if progress:
            progress.update(f"evaluated {index + 1}/{len(tasks)}: {result.task_id}")
        return True

    try:  # the spinner stops before anything below prints
        with stop_signals() as terminated, _spinner(as_json) as progress, outages.listening(note_on_stderr):
            result = evaluate_tasks(ws, harness, store, tasks, kind="eval", portfolio=name,
                                    instructions=ws.instructions, split=split, on_task=on_task, partial_on_stop=True)
    except KeyboardInterrupt:  # before any task finished: nothing to show, but say so rather than "Aborted!"
        click.echo(f"stopped before any of the {len(tasks)} tasks finished; the calls made are in {store.path}",
                   err=True)
        end_stopped(store, terminated)
    stopped = result.status == "interrupted"
    if as_json:
        click.echo(json.dumps({**suite_document(result, name), "requested_tasks": len(tasks)}, indent=2))
        if stopped:
            end_stopped(store, terminated)
        _exit_if_unanswered([result])
        return
    console.print(task_table(result))
    console.print(role_table(made(result.calls)))  # what it spent; a reused reply's figures are in its task's
    console.print(f"model loads: {result.swaps} swaps, {result.load_s:.1f} s loading "
                  f"({result.load_joules:.1f} J of the {result.joules:.1f} J)")
    console.print(decoding_line(chosen, ws.settings.backends))
    s, w = result.score, ws.settings.scoring
    console.print(f"composite {s.composite:.2f} = {w.judge_weight:g} · judge {s.judge_mean:.2f} "
                  f"+ {w.criteria_weight:g} · criteria {s.criteria_rate:.0%} · 10")
    looped = sum(bool(t.degenerate) for t in result.tasks)
    if looped:
        console.print(f"{looped} of {len(result.tasks)} answers degenerate (no words, a repetition loop or a copy of "
                      "the instructions): their judge score is 0 ([scoring] degenerate_guard)", markup=False)
    console.print(f"energy {result.joules:.1f} J ({energy_label(result.energy_source)}), "
                  f"{result.seconds:.0f} s, {calls_line(result.calls)}; evaluation #{result.evaluation_id} "
                  f"in {store.path}", markup=False)  # a path may hold "[…]"
    if stopped:
        console.print(f"stopped after {len(result.tasks)} of {len(tasks)} tasks: the composite above is over the "
                      f"{len(result.tasks)} that finished, not comparable with a whole evaluation's", markup=False)
        end_stopped(store, terminated)
    _exit_if_unanswered([result])


def _stored_replies(ws, store, portfolio):
    """The replies an identical request got before in this store, by the models answering now (store/replies.py),
    stamping the evaluation with those models as a run does, so that a `run` after this `eval` reuses its
    replies too; None where `[backends] reuse_replies = false`."""
    from ..lm.replies import replies_for
    from ..pipeline.harness import models_now
    from ..store.replies import StoredReplies

    store.models = models_now(ws, portfolio, note=note_on_stderr)
    return replies_for(ws.settings.backends, StoredReplies(store))


def _spinner(as_json: bool):
    """The "evaluating…" status line (None under --json, whose output is the document alone); it stops on exit."""
    return nullcontext() if as_json else console.status("evaluating…")


def _exit_if_unanswered(results) -> None:
    """Exit 1 when a task got no answer from its model (a timeout, a refused connection, a server error, a prompt
    over the context window): the composite counts such a task as 0, so a script must not take it for a score.
    A model's unusable reply is a score like any other (exit 0)."""
    from ..errors import answered, modes_line

    tasks = [task for result in results for task in result.tasks]
    down = [t.failure_mode for t in tasks if t.failed and not answered(t.failure_mode)]
    if down:
        click.echo(f"error: {len(down)} of {len(tasks)} task evaluations got no answer from the model "
                   f"({modes_line(down)}); the composite counts them as 0", err=True)
        sys.exit(1)


def _eval_repeats(ws, store, name: str, tasks, repeats: int, split: str, as_json: bool, replies) -> None:
    """`eval --repeats N`: N evaluations, each with the next seeds, and the spread of their scores; a Ctrl-C,
    SIGTERM or SIGHUP after two or more repeats shows those, then ends the command as the signal would have."""
    from ..pipeline.repeats import evaluate_repeats

    progress = None
    done = {"n": 0}

    def on_task(index: int, result) -> bool:
        done["n"] += 1
        if progress:
            progress.update(f"evaluated {done['n']}/{len(tasks) * repeats}: repeat {(done['n'] - 1) // len(tasks) + 1}, "
                            f"{result.task_id}")
        return True

    try:
        with stop_signals() as terminated, _spinner(as_json) as progress, outages.listening(note_on_stderr):
            found = evaluate_repeats(ws, store, name, tasks, repeats, split=split, on_task=on_task, replies=replies)
    except KeyboardInterrupt:  # before two repeats finished: no spread to show, but say so rather than "Aborted!"
        click.echo(f"stopped before two of the {repeats} repeats finished: no spread to show; the evaluations "
                   f"made are in {store.path}", err=True)
        end_stopped(store, terminated)
    _print_repeats(ws, store, name, tasks, found, as_json)
    if found.requested:
        end_stopped(store, terminated)
    _exit_if_unanswered(found.results)


def _print_repeats(ws, store, name: str, tasks, found, as_json: bool) -> None:
    """`eval --repeats`: the table of every repeat and the spreads, or their JSON."""
    from ..lm.calls import energy_source_of
    from .views import calls_line, energy_label, repeats_document, repeats_table

    scoring = ws.settings.scoring
    if as_json:
        click.echo(json.dumps(repeats_document(found, name, scoring), indent=2))
        return
    console.print(repeats_table(found, scoring))
    c = found.composite
    console.print(f"composite {c.mean:.2f} ± {c.sd:.2f} (sd), standard error {c.se:.2f}, over {c.n} repeats × "
                  f"{len(tasks)} tasks; two single evaluations of these instructions differ with sd "
                  f"{c.difference_sd:.2f}, against a keep threshold of {scoring.keep_threshold:g}")
    if found.copies:
        console.print("the seeds changed no reply: every repeat copied the first (a backend that ignores the seed, "
                      "e.g. temperature 0); `run` measures no noise past 2 seed sets and counts each task once")
    calls = [call for r in found.results for call in r.calls]
    joules, source = sum(c.joules for c in calls), energy_source_of(calls)
    ids = ", ".join(f"#{r.evaluation_id}" for r in found.results)
    console.print(f"energy {joules:.1f} J ({energy_label(source)}), {sum(r.seconds for r in found.results):.0f} s, "
                  f"{calls_line(calls)}; evaluations {ids} in {store.path}", markup=False)  # a path may hold "[…]"
    if found.requested:
        console.print(f"stopped after {len(found.results)} of {found.requested} repeats: the figures above are over "
                      f"those {len(found.results)}", markup=False)
