"""`autoresearch profile`: stopped part-way, the rows that finished; its tables show model paths as written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from autoresearch.cli.main import main
from autoresearch.cli.views import profile_table, role_table
from autoresearch.lm import preflight as preflight_module
from autoresearch.lm.backends import FakeBackend
from autoresearch.lm.calls import CallRecord
from autoresearch.pipeline import profile as profiling

pytestmark = pytest.mark.usefixtures("no_counters")


@pytest.fixture
def two_candidates(monkeypatch):
    """Preflight finds both models; the profile itself is replaced by the test."""
    fake = FakeBackend("{}", models=["smollm2-135m", "big-model"])
    monkeypatch.setattr(preflight_module, "create_backend", lambda role, backends: fake)


def _row(role: str) -> profiling.ProfileRow:
    return profiling.ProfileRow(role=role, model="embedded:smollm2-135m", composite=4.0, judge_mean=4.0,
                                criteria_rate=0.5, joules_per_task=10.0, energy_source="estimate", latency_s=1.0,
                                completion_rate=1.0, calls=2)


def test_a_stopped_profile_shows_the_rows_it_finished_and_exits_130(workspace_dir, two_candidates, monkeypatch):
    # profile() returns the rows finished when a Ctrl-C stops it (tests/pipeline/test_profile.py): 2 of 6 here.
    monkeypatch.setattr(profiling, "profile", lambda *a, **k: [_row("planner"), _row("producer")])
    result = CliRunner().invoke(main, ["profile", "-w", str(workspace_dir), "--model", "embedded:smollm2-135m",
                                       "--model", "ollama:big-model"], catch_exceptions=False)
    assert result.exit_code == 130
    assert "stopped after 2 of 6 model-and-role evaluations: the rows above are those that finished" in result.stdout
    assert "planner" in result.stdout and "producer" in result.stdout


def test_a_profile_stopped_before_any_row_says_so_in_one_line(workspace_dir, two_candidates, monkeypatch):
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(profiling, "profile", stopped)
    result = CliRunner().invoke(main, ["profile", "-w", str(workspace_dir)], catch_exceptions=False)
    assert result.exit_code == 130 and result.stdout == ""
    assert result.stderr.startswith("stopped before any of the 3 model-and-role evaluations finished; the calls "
                                    "made are in ")


def test_a_profile_beside_a_running_run_says_they_share_the_machine(workspace_dir, two_candidates, monkeypatch):
    import json
    import os
    import socket

    # The test's parent process stands for the run: a live pid on this host, not the command's own.
    (workspace_dir / "runs").mkdir(exist_ok=True)
    (workspace_dir / "runs" / "run.lock").write_text(json.dumps(
        {"pid": os.getppid(), "host": socket.gethostname(), "started": "2026-12-04T23:04:00+00:00"}))
    monkeypatch.setattr(profiling, "profile", lambda *a, **k: [_row(r) for r in profiling.PROFILED_ROLES])
    result = CliRunner().invoke(main, ["profile", "-w", str(workspace_dir)], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr.startswith(f"note: `autoresearch run` (pid {os.getppid()}, started 2026-12-04T23:04:00+00:00) "
                                    "is running in this workspace: the two share the machine")


def test_a_model_path_with_brackets_is_shown_as_written():
    """eval's role table and profile's table: a GGUF path is not markup (the old tables lost "[q4]" and raised
    MarkupError on "[/x]", after the whole evaluation)."""
    path = "embedded:/models/phi [q4] [/x].gguf"  # rich would drop "[q4]" and fail on "[/x]" as markup
    console = Console(record=True, width=300)
    console.print(profile_table([profiling.ProfileRow(**{**_row("producer").__dict__, "model": path})], 2))
    call = CallRecord(role="producer", backend="embedded", model=path[len("embedded:"):], prompt_hash="h",
                      prompt_tokens=1, completion_tokens=1, latency_s=0.1, load_s=0.0, joules=1.0,
                      energy_source="estimate", status="ok")
    console.print(role_table((call,)))
    shown = console.export_text()
    assert shown.count("/models/phi [q4] [/x].gguf") == 2


def test_profiling_a_model_whose_path_holds_brackets_does_not_trip_on_its_progress_line(workspace_dir, two_candidates,
                                                                                         monkeypatch):
    # Seen from the CLI on the embedded model: the status line read "embedded:/m [/x].gguf" as markup and raised.
    def profile(*args, on_progress, **kwargs):
        on_progress("producer: embedded:/models/m [/x].gguf")
        return [_row(role) for role in profiling.PROFILED_ROLES]

    monkeypatch.setattr(profiling, "profile", profile)
    result = CliRunner().invoke(main, ["profile", "-w", str(workspace_dir)], catch_exceptions=False)
    assert result.exit_code == 0 and "stopped" not in result.stdout


def test_a_profile_through_a_server_restart_says_so_on_stderr_and_profiles_as_without_one(
        workspace, kit, monkeypatch, quick_probes):
    results = kit.through_a_restart(monkeypatch, workspace, "profile", "--tasks", "1")
    rows = [[(r["role"], r["composite"], r["completion_rate"]) for r in json.loads(result.stdout)]
            for result in results]
    assert [(role, composite) for role, composite, _ in rows[0]] == [(role, composite) for role, composite, _ in rows[1]]
    # The evaluator's one call (the third) was refused 3 times by the restarting server, then answered: the model
    # completed every call that reached it.
    assert [rate for _, _, rate in rows[0]] == [1.0, 1.0, 1.0] and [rate for _, _, rate in rows[1]] == [1.0, 1.0, 1.0]
    assert [r["calls"] for r in json.loads(results[1].stdout)] == [1, 1, 4]  # every attempt is counted as a call


def test_a_profile_says_what_it_spent_and_what_a_swap_reused(workspace, workspace_dir, kit, monkeypatch):
    from autoresearch.pipeline import harness as harness_module

    fake = kit.single_fake(kit.Script(workspace.rubric, judge=kit.judge_reply(workspace.rubric, 8)))
    fake.models = ["smollm2-135m", "big-model"]
    monkeypatch.setattr(harness_module, "create_backend", lambda role, backends: fake)
    monkeypatch.setattr(preflight_module, "create_backend", lambda role, backends: fake)
    result = CliRunner().invoke(main, ["profile", "-w", str(workspace_dir), "--tasks", "1", "--model",
                                       "embedded:smollm2-135m", "--model", "embedded:big-model"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    # The base (3 calls), then big-model in each role: its own call made, the base model's two repeated requests
    # answered from the base's replies (the fake answers alike whichever model asks).
    text = " ".join(result.stdout.split())
    assert ("6 model calls (6 replies reused from identical earlier requests, their joules counted as when they were "
            "made) in ") in text
    assert len(fake.requests) == 6
