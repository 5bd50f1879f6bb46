"""The `autoresearch` command: the only place that prints; library errors become one line."""

from __future__ import annotations

import faulthandler
import io
import json
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.text import Text

from ..errors import AutoresearchError, Terminated, UsageError, out_of_space
from ..lm import outages
from .console import console, note_a_running_run, note_on_stderr, quiet_dspy
from .evaluate import eval_command
from .options import WORKSPACE_KEY, workspace_option
from .signals import end_by_signal, end_stopped, stop_signals


class _Group(click.Group):
    """Turns the library's typed errors into one clear line and an exit code."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _NO_ARGS_IS_HELP:
            raise  # `autoresearch` alone: click shows the help
        except click.UsageError as exc:  # the group's own options (--verison)
            _usage_error(exc, info_name or "autoresearch")

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a command's options and arguments (--repeats 0, --trails 5)
            _usage_error(exc, ctx.command_path)
        except UsageError as exc:
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(2)
        except AutoresearchError as exc:
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:  # before a command's own Ctrl-C handling (loading a model, say): not "Aborted!", 1
            click.echo("stopped by Ctrl-C", err=True)
            sys.exit(130)
        except Exception as exc:
            full = out_of_space(exc)  # from wherever it struck: the store, results.tsv, git, a report
            if full is None:
                raise
            where = _free_space(ctx.meta.get(WORKSPACE_KEY)) if "writing " not in full else ""
            click.echo(f"error: the disk is full ({full}{where}); free some space and run the same command (a run "
                       "resumes from its finished trials)", err=True)
            sys.exit(1)


# Raised by click 8.2+ for a group run without arguments, whose help it then prints.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_error(exc: click.UsageError, command_path: str) -> NoReturn:
    """Click's own usage error as one line, as for every other bad input (not click's block of three), exit 2."""
    where = exc.ctx.command_path if exc.ctx is not None else command_path
    click.echo(f"error: {where}: {_one_line(exc.format_message())} (see {where} --help)", err=True)
    sys.exit(2)


def _free_space(workspace: Path | None) -> str:
    """Where SQLite's or git's words on a full disk name no file: the workspace's disk, and its free space."""
    if workspace is None:
        return ""
    try:
        workspace = workspace.resolve()
        free = shutil.disk_usage(workspace).free
    except OSError:
        return ""
    return f"; the workspace {workspace} is on a disk with {_size(free)} free"


def _size(n: float) -> str:
    """A size as people read it: 512 bytes, 4 KB, 120 MB, 3.2 GB."""
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


@click.group(cls=_Group)
@click.version_option(package_name="autoresearch")
def main() -> None:
    """Optimize a pipeline's instructions on local models; every kept change is a git commit."""
    report_native_crashes()


main.add_command(eval_command)


def report_native_crashes() -> None:
    """A crash inside native code (llama.cpp) prints "Fatal Python error: Segmentation fault" and where it
    happened, instead of dying silently; finished trials are safe in the store either way."""
    try:
        faulthandler.enable(file=sys.stderr, all_threads=False)
    except (AttributeError, ValueError, io.UnsupportedOperation):
        pass  # stderr is not a real file (a test runner captures it): there is nowhere to write


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Create a starter workspace in DIRECTORY (config, instructions, rubric, tasks, git)."""
    from ..workspace.versioning import enclosing_repository
    from ..workspace.workspace import init_workspace

    root = init_workspace(directory)
    console.print(f"Created workspace {root}", markup=False)
    outer = enclosing_repository(root)
    if outer is not None:  # the workspace is a repository of its own, which the project's would list as untracked
        console.print(f"note: it is a git repository of its own inside {outer} (a run checks out its own branch, "
                      f"which must not switch your project's): add {root.relative_to(outer)}/ to {outer}/.gitignore",
                      markup=False)
    console.print(f"Next: cd {directory} && autoresearch eval", markup=False)


def _check_sharing(storage: str | None, study_name: str | None) -> None:
    """A shared study is named and lives in a database every worker reaches; refuse anything in between."""
    from ..workspace.config import name_problem

    if study_name is not None and storage is None:
        raise UsageError("--study names a study shared by workers through a database: give --storage URL too "
                         "(e.g. postgresql://user@db/autoresearch)")
    if study_name is not None and not study_name.strip():
        raise UsageError("--study: the name is empty")
    if study_name is not None and (problem := name_problem(study_name)):
        raise UsageError(f"--study: {problem}")
    if storage is not None and study_name is None and not storage.startswith("sqlite"):
        raise UsageError(f"--storage {storage.split('@')[-1]}: a study in a database server is shared by its "
                         "workers: name it with --study NAME (the same on every machine)")


def _parse_duration(text: str | None) -> float | None:
    """'90s', '30m', '8h', '1h30m' → seconds. A bare number is refused: `--timeout 8` meant for a night would
    otherwise stop the run after its first trial (8 seconds)."""
    if text is None:
        return None
    import re

    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", text)
    if not parts or not any(parts.groups()):
        bare = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*", text)
        if bare:
            n = bare.group(1)
            raise UsageError(f"--timeout {n}: give the unit, {n}h, {n}m or {n}s (a bare number is ambiguous)")
        raise UsageError(f"--timeout: cannot read {text!r} (examples: 90s, 30m, 8h, 1h30m)")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s  # 0s: start-up repairs and the baseline, no trial (scripts/crash_test.py)


@main.command("run")
@workspace_option
@click.option("--trials", "n_trials", type=click.IntRange(min=1), default=None, help="Stop after N new trials.")
@click.option("--timeout", default=None, help="Stop starting trials after this long (e.g. 8h, 30m, 1h30m, 90s).")
@click.option("--plateau", type=click.IntRange(min=1), default=None, help="Stop after N trials with no keep.")
@click.option("--portfolio", "-p", default=None, help="Portfolio to use (default: [workspace] portfolio).")
@click.option("--storage", default=None, help="Optuna storage URL (default: sqlite under runs/); with --study, "
              "a database every worker reaches, e.g. postgresql://user@db/autoresearch.")
@click.option("--study", "study_name", default=None,
              help="Name of a study shared by every worker that names it in the same --storage.")
@click.option("--remote", default="origin", show_default=True,
              help="Shared study: the git remote where the workers' commits meet.")
@click.option("--seed", type=int, default=None, help="Seed of the sampler, for repeatable recipes.")
@click.option("--no-warm-start", "no_warm_start", is_flag=True,
              help="A new study starts from HEAD, not from the previous portfolio's best instructions.")
@click.option("--allow-sleep", "allow_sleep", is_flag=True,
              help="Let the machine sleep when idle (by default the run keeps it awake: systemd-inhibit, caffeinate).")
def run_command(path: Path, n_trials: int | None, timeout: str | None, plateau: int | None,
                portfolio: str | None, storage: str | None, study_name: str | None, remote: str,
                seed: int | None, no_warm_start: bool, allow_sleep: bool) -> None:
    """Optimize the instructions: propose variants, evaluate them, commit the ones that win."""
    import signal

    from ..lm.preflight import check_portfolio
    from ..search.results import StopReason
    from ..search.study import Study
    from ..workspace.workspace import load_workspace
    from .awake import keep_awake
    from .live import LiveView, print_summary
    from .views import decoding_line

    quiet_dspy()
    timeout_s = _parse_duration(timeout)
    if n_trials is None and timeout_s is None and plateau is None:
        raise UsageError("say when to stop: --trials N, --timeout 8h or --plateau N")
    _check_sharing(storage, study_name)
    ws = load_workspace(path)
    name = portfolio or ws.settings.workspace.portfolio
    check_portfolio(ws, name, ws.portfolio(name))
    view = LiveView(console)
    study = Study(ws, portfolio=name, storage=storage, seed=seed, observer=view.on_event,
                  warm_start=not no_warm_start, study_name=study_name, remote=remote)

    def on_sigint(signum, frame):
        if study.stop_requested:
            raise KeyboardInterrupt  # second Ctrl-C: abandon the trial in progress
        study.request_stop()
        view.note("Ctrl-C: finishing the current trial, then stopping (Ctrl-C again to abandon it)")

    # A stop signal gives a grace period, not a trial's length: SIGTERM abandons the trial in progress at once,
    # as a second Ctrl-C does, so that the summary is printed and the lock released before a SIGKILL follows.
    # A hangup has no such deadline: the trial in progress finishes, as on a first Ctrl-C.
    def on_hangup():
        study.request_stop(StopReason.HANGUP)

    previous = signal.signal(signal.SIGINT, on_sigint)
    summary = None
    try:
        with stop_signals(on_hangup) as stopped_by, view, \
                keep_awake(f"autoresearch run in {ws.root}", enabled=not allow_sleep) as awake:
            if awake:
                view.note(awake.line())
            note_a_running_run(ws.runs_dir, here=False, echo=view.note)  # here, the lock refuses it outright
            view.note(decoding_line(ws.portfolio(name), ws.settings.backends))
            summary = study.optimize(n_trials=n_trials, timeout_s=timeout_s, plateau=plateau)
    except Terminated:
        pass  # it came before the first trial began (or after the last ended): nothing was abandoned
    finally:
        signal.signal(signal.SIGINT, previous)
    if summary is not None:
        print_summary(console, summary, ws)
    if stopped_by:
        study.close()  # the store's last writes leave its write-ahead log: the process ends without exit handlers
        end_by_signal(stopped_by[-1])
    if summary.stop_reason in (StopReason.BACKEND_DOWN, StopReason.FAILED_TRIALS, StopReason.STORAGE_DOWN,
                               StopReason.HEAD_MOVED, StopReason.MODELS_CHANGING):
        sys.exit(1)  # so a script or scheduler notices that the night's run stopped early


# --- reviewing a study: log, show, report ---------------------------------------------------------


def _review_target(path: Path, study: str | None):
    """The store and study a review command reads; nothing is written to the store."""
    from ..review.refs import open_store, resolve_study

    root = path.resolve()
    store = open_store(root)
    return root, store, resolve_study(store, root, study)


@main.command("log")
@workspace_option
@click.option("--study", default=None, help="Study name (default: the one of the current settings).")
@click.option("--json", "as_json", is_flag=True, help="Print the log as JSON.")
def log_command(path: Path, study: str | None, as_json: bool) -> None:
    """Committed improvements, newest first: delta, composite, holdout, joules per task, operator."""
    from ..review.study_log import study_log
    from .review_views import log_renderables, print_all

    root, store, name = _review_target(path, study)
    log = study_log(store, name)
    if as_json:
        click.echo(json.dumps(log.to_dict(), indent=2))
        return
    print_all(console, log_renderables(log))


@main.command("show")
@click.argument("ref")
@workspace_option
@click.option("--study", default=None, help="Study name (default: the one of the current settings).")
@click.option("--full", is_flag=True, help="Show the producer's outputs whole, not cut to their first lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the trial as JSON (outputs always whole).")
def show_command(ref: str, path: Path, study: str | None, full: bool, as_json: bool) -> None:
    """One trial (REF: a trial number or a commit) against the incumbent it was compared with."""
    from ..review.refs import resolve_trial
    from ..review.trial_detail import trial_detail
    from .review_views import print_all, show_renderables

    root, store, name = _review_target(path, study)
    detail = trial_detail(store, root, name, resolve_trial(store, root, name, ref))
    if as_json:
        click.echo(json.dumps(detail.to_dict(), indent=2))
        return
    print_all(console, show_renderables(detail, full=full))


@main.command("report")
@workspace_option
@click.option("--study", default=None, help="Study name (default: the one of the current settings).")
@click.option("--open-path-only", is_flag=True, help="Print only the report's path (for scripts).")
def report_command(path: Path, study: str | None, open_path_only: bool) -> None:
    """Write a self-contained HTML report of the study under runs/ and print its path."""
    from ..review.report import write_report

    root, store, name = _review_target(path, study)
    written = write_report(store, root, name)
    if open_path_only:
        click.echo(str(written))
        return
    console.print(f"report of study {name} (self-contained, opens offline):", markup=False)
    click.echo(str(written))


@main.command()
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(path: Path, as_json: bool) -> None:
    """What this machine offers: backends, models, GPUs, energy counters, and each role's meter."""
    from dataclasses import asdict

    from ..lm.doctor import diagnose
    from ..workspace.workspace import load_workspace
    from .views import doctor_tables

    found = diagnose(load_workspace(path).settings)
    if as_json:
        click.echo(json.dumps(asdict(found), indent=2))
        return
    for table in doctor_tables(found):
        console.print(table)


@main.command()
@workspace_option
@click.option("--portfolio", "-p", default=None, help="Base portfolio (default: [workspace] portfolio).")
@click.option("--model", "models", multiple=True, metavar="BACKEND:MODEL",
              help="A model to profile, e.g. ollama:qwen2.5:3b (repeatable; default: the portfolio's models).")
@click.option("--split", type=click.Choice(["search", "holdout", "all"]), default="search", show_default=True)
@click.option("--tasks", "max_tasks", type=click.IntRange(min=1), default=None, help="Use only the first N tasks.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def profile(path: Path, portfolio: str | None, models: tuple[str, ...], split: str, max_tasks: int | None,
            as_json: bool) -> None:
    """Each model in each role: quality, joules per task, latency and completion rate."""
    from dataclasses import asdict

    from ..lm.calls import CallRecorder
    from ..lm.preflight import check_portfolio
    from ..lm.replies import replies_for
    from ..pipeline import profile as profiling
    from ..store import Store
    from ..store.replies import StoredReplies
    from ..workspace.workspace import CONFIG_NAME, load_workspace
    from .views import calls_line, profile_table

    quiet_dspy()
    ws = load_workspace(path)
    name = portfolio or ws.settings.workspace.portfolio
    base = ws.portfolio(name)
    try:
        candidates = [profiling.parse_model(m, base.producer) for m in models] or profiling.candidates_of(base)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for candidate in candidates:
        trial = base.model_copy(update={r: profiling.in_role(base.role(r), candidate) for r in profiling.PROFILED_ROLES})
        check_portfolio(ws, name, trial, roles=profiling.PROFILED_ROLES)
    tasks = [t for t in ws.suite.tasks if split == "all" or t.split == split][:max_tasks]
    if not tasks:
        raise UsageError(f"{ws.root / CONFIG_NAME}: no {split} tasks to profile")
    note_a_running_run(ws.runs_dir)
    store = Store.for_workspace(ws.runs_dir)
    asked = len(candidates) * len(profiling.PROFILED_ROLES)
    spent = CallRecorder()
    try:
        with stop_signals() as terminated, console.status("profiling…") as status, outages.listening(note_on_stderr):
            rows = profiling.profile(ws, store, name, candidates, tasks,
                                     # Text: rich reads a status's str as markup, whatever the console says
                                     on_progress=lambda text: status.update(Text(f"profiling {text}")),
                                     replies=replies_for(ws.settings.backends, StoredReplies(store)), recorder=spent)
    except KeyboardInterrupt:  # before any model finished a role: nothing to show, but say so
        click.echo(f"stopped before any of the {asked} model-and-role evaluations finished; the calls made are in "
                   f"{store.path}", err=True)
        end_stopped(store, terminated)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        console.print(profile_table(rows, len(tasks)))
        console.print(f"{calls_line(spent.calls)} in {store.path}", markup=False)  # a path may hold "[…]"
        if len(rows) < asked:
            console.print(f"stopped after {len(rows)} of {asked} model-and-role evaluations: the rows above are "
                          "those that finished", markup=False)
    if len(rows) < asked:
        end_stopped(store, terminated)


@main.command()
@click.option("--storage", required=True, help="The database of the shared studies (as given to `run --storage`).")
@click.option("--study", "study_name", default=None, help="Only this study (default: every shared study there).")
@click.option("--minutes", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Show the workers seen within this many minutes.")
def status(storage: str, study_name: str | None, minutes: float) -> None:
    """Shared studies: their incumbent, trial counts, and the workers seen in the last minutes."""
    from ..search.shared.status import shared_status
    from .views import keeps_table, status_table

    found = shared_status(storage, study_name, window_s=minutes * 60)
    if not found:
        console.print("no shared study in this database yet (start one with `autoresearch run --storage URL "
                      "--study NAME`)", markup=False)
    for entry in found:
        console.print(status_table(entry))
        if (keeps := keeps_table(entry)) is not None:
            console.print(keeps)
