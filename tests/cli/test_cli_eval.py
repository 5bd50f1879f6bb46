"""`autoresearch eval` end to end on fake models: JSON output, the SQLite log, and usage errors."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoresearch.cli.main import main
from autoresearch.lm import preflight as preflight_module
from autoresearch.pipeline import harness as harness_module
from autoresearch.store import STORE_NAME
from autoresearch.testing import signals_of_a_terminal

pytestmark = pytest.mark.usefixtures("no_counters")


@pytest.fixture
def fake_models(workspace, kit, monkeypatch):
    """Every role of the starter portfolio served by one fake that lists the starter's model. The revision differs
    from the draft: an identical answer would be judged by the judge's reply to the draft (lm/replies.py)."""
    rubric = workspace.rubric
    script = kit.Script(rubric, judge=[kit.judge_reply(rubric, 4), kit.judge_reply(rubric, 8)],
                        revise=kit.COMMIT_TIPS_ANSWER + "\nRevised after the critique.")
    fake = kit.single_fake(script)
    monkeypatch.setattr(harness_module, "create_backend", lambda role, backends: fake)
    monkeypatch.setattr(preflight_module, "create_backend", lambda role, backends: fake)
    return fake


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_eval_json_reports_every_task_and_the_composite(workspace_dir, fake_models):
    result = invoke("eval", "-w", str(workspace_dir), "--split", "search", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    tasks = doc["tasks"]
    assert [t["task"] for t in tasks] == ["onboarding-checklist", "backup-failure", "release-notes", "commit-tips"]
    for t in tasks:
        assert {"score_r1", "score_final", "criteria", "tokens", "joules", "energy_source"} <= set(t)
        assert t["tokens"] > 0 and t["joules"] > 0 and t["energy_source"] == "estimate"
        assert len(t["criteria"]) == t["criteria_total"] > 0
        assert all({"criterion", "passed", "reason"} <= set(c) for c in t["criteria"])
    assert (tasks[0]["score_r1"], tasks[0]["score_final"], tasks[0]["revisions"]) == (4.0, 8.0, 1)
    assert tasks[1]["score_r1"] == tasks[1]["score_final"] == 8.0

    judge_mean = sum(t["score_r1"] for t in tasks) / len(tasks)
    rate = sum(c["passed"] for t in tasks for c in t["criteria"]) / sum(len(t["criteria"]) for t in tasks)
    assert doc["judge_mean"] == pytest.approx(judge_mean)
    assert doc["criteria_rate"] == pytest.approx(rate)
    assert doc["composite"] == pytest.approx(0.7 * judge_mean + 0.3 * rate * 10)
    assert doc["energy_source"] == "estimate" and doc["energy_measured"] is False
    assert doc["joules"] == pytest.approx(sum(t["joules"] for t in tasks))
    assert {r["role"] for r in doc["roles"]} == {"planner", "producer", "evaluator"}
    assert (doc["swaps"], doc["load_s"], doc["load_joules"]) == (0, 0.0, 0.0)
    assert all({"swaps", "load_s", "load_joules", "generation_joules"} <= set(r) for r in doc["roles"])


def test_every_model_call_is_logged_with_tokens_and_joules(workspace_dir, fake_models):
    result = invoke("eval", "-w", str(workspace_dir), "--task", "commit-tips", "--task", "release-notes", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    conn = sqlite3.connect(workspace_dir / "runs" / STORE_NAME)
    conn.row_factory = sqlite3.Row
    calls = conn.execute("SELECT * FROM calls").fetchall()
    (evaluation,) = conn.execute("SELECT * FROM evaluations").fetchall()
    tasks = conn.execute("SELECT * FROM task_results ORDER BY id").fetchall()
    conn.close()
    assert len(calls) == len(fake_models.requests) == 3 + 3 + 2  # the first task is revised once
    assert {c["evaluation_id"] for c in calls} == {doc["evaluation_id"]} == {evaluation["id"]}
    assert all(c["prompt_tokens"] > 0 and c["completion_tokens"] > 0 and c["joules"] > 0 for c in calls)
    assert all(c["status"] == "ok" and c["energy_source"] == "estimate" for c in calls)
    assert sum(c["joules"] for c in calls) == pytest.approx(doc["joules"])
    assert evaluation["status"] == "complete" and evaluation["composite"] == pytest.approx(doc["composite"])
    assert [t["task_id"] for t in tasks] == ["release-notes", "commit-tips"]  # suite order, not option order
    assert [t["tokens"] for t in tasks] == [d["tokens"] for d in doc["tasks"]]


def test_eval_table_output_shows_composite_and_energy(workspace_dir, fake_models):
    result = invoke("eval", "-w", str(workspace_dir), "--task", "commit-tips")
    assert result.exit_code == 0, result.stderr
    doc_free = " ".join(result.stdout.split())
    assert "composite " in doc_free and "(estimated)" in doc_free and "5 model calls" in doc_free
    assert "model loads: 0 swaps, 0.0 s loading" in doc_free  # the fake never loads a model
    assert "commi" in result.stdout  # the task column (narrow without a terminal: ids may be cut short)


def test_a_second_eval_of_the_same_instructions_reuses_the_replies_of_the_first(workspace_dir, fake_models,
                                                                                monkeypatch):
    monkeypatch.setattr(fake_models, "model_identity", lambda: "model A", raising=False)  # as a real model tells
    args = ("eval", "-w", str(workspace_dir), "--task", "commit-tips", "--task", "release-notes")
    first = json.loads(invoke(*args, "--json").stdout)
    asked = len(fake_models.requests)
    second = json.loads(invoke(*args, "--json").stdout)
    assert len(fake_models.requests) == asked == first["model_calls"] == 8  # no request asked twice
    assert (first["replies_reused"], second["model_calls"], second["replies_reused"]) == (0, 0, 8)
    scores = ("score_r1", "score_final", "criteria_passed", "tokens", "joules")
    assert second["composite"] == first["composite"]
    assert [[t[k] for k in scores] for t in second["tasks"]] == [[t[k] for k in scores] for t in first["tasks"]]
    table = " ".join(invoke(*args).stdout.split())
    assert ("0 model calls (8 replies reused from identical earlier requests, their joules counted as when they were "
            "made)") in table
    assert second["roles"] == [] and "planner" not in table.split("Roles", 1)[1]  # it spent nothing on any role


def test_an_eval_on_a_model_that_cannot_tell_which_it_is_asks_every_request_again(workspace_dir, fake_models):
    args = ("eval", "-w", str(workspace_dir), "--task", "release-notes", "--json")
    first, second = (json.loads(invoke(*args).stdout) for _ in range(2))
    assert second["replies_reused"] == 0 and second["model_calls"] == 3  # judged 8 this time: not revised
    assert len(fake_models.requests) == first["model_calls"] + second["model_calls"] == 5 + 3


def test_eval_with_a_failing_model_reports_the_failed_task(workspace, workspace_dir, kit, monkeypatch):
    script = kit.Script(workspace.rubric, producer="")  # an empty reply: unparseable
    fake = kit.single_fake(script)
    monkeypatch.setattr(harness_module, "create_backend", lambda role, backends: fake)
    monkeypatch.setattr(preflight_module, "create_backend", lambda role, backends: fake)
    result = invoke("eval", "-w", str(workspace_dir), "--task", "commit-tips", "--json")
    assert result.exit_code == 0, result.stderr
    (task,) = json.loads(result.stdout)["tasks"]
    assert task["failed"] is True and task["failure_mode"] == "unparseable"
    assert task["criteria_passed"] == 0 and json.loads(result.stdout)["composite"] == 0.0


@pytest.mark.parametrize("repeats", ["1", "2"])
def test_eval_exits_1_when_a_task_got_no_answer_from_the_model(workspace, workspace_dir, kit, monkeypatch, repeats):
    # A script reading the composite must not take a task the backend never answered for a score of 0.
    from autoresearch.lm.backends import FaultyBackend

    fake = kit.single_fake(kit.Script(workspace.rubric))
    faulty = FaultyBackend(fake, share=1.0, modes=("context_length",))
    monkeypatch.setattr(harness_module, "create_backend", lambda role, backends: faulty)
    monkeypatch.setattr(preflight_module, "create_backend", lambda role, backends: fake)
    result = CliRunner().invoke(main, ["eval", "-w", str(workspace_dir), "--task", "commit-tips", "--json",
                                       "--repeats", repeats])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["tasks"]  # the document is still printed in full
    n = int(repeats)
    assert result.stderr.strip() == (f"error: {n} of {n} task evaluations got no answer from the model "
                                     f"(context_length ×{n}); the composite counts them as 0")


def assert_one_line_error(result, *fragments: str) -> None:
    """Exit 2 and an `error: ...` message naming fragments.

    The message is read with line breaks removed: cli.py prints it with a rich Console, which wraps it at
    the terminal width (80 columns without a terminal); test_usage_error_is_one_line_however_long covers that.
    """
    assert result.exit_code == 2
    message = "".join(result.stderr.splitlines())
    assert message.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in message, result.stderr


def test_usage_error_is_one_line_however_long(tmp_path):
    deep = tmp_path / ("a-long-directory-name-" * 4) / "workspace"
    deep.mkdir(parents=True)
    result = invoke("eval", "-w", str(deep))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_malformed_config_exits_2_naming_file_and_field_and_writes_nothing(workspace_dir, fake_models):
    config = workspace_dir / "autoresearch.toml"
    config.write_text(config.read_text().replace("judge_pass_threshold = 6.0", "judge_pass_threshold = 60.0"))
    result = invoke("eval", "-w", str(workspace_dir), "--json")
    assert_one_line_error(result, str(config), "scoring.judge_pass_threshold")
    assert result.stdout == ""
    assert not (workspace_dir / "runs" / STORE_NAME).exists()
    assert fake_models.requests == []


def test_config_syntax_error_exits_2(workspace_dir, fake_models):
    config = workspace_dir / "autoresearch.toml"
    config.write_text(config.read_text() + "\n[scoring\n")
    result = invoke("eval", "-w", str(workspace_dir))
    assert_one_line_error(result, str(config), "syntax error")
    assert not (workspace_dir / "runs" / STORE_NAME).exists()


def test_missing_instruction_file_exits_2_naming_the_path(workspace_dir, fake_models):
    missing = workspace_dir / "instructions" / "producer.md"
    missing.unlink()
    result = invoke("eval", "-w", str(workspace_dir), "--json")
    assert_one_line_error(result, str(missing))
    assert not (workspace_dir / "runs" / STORE_NAME).exists()


def test_unknown_task_exits_2(workspace_dir, fake_models):
    result = invoke("eval", "-w", str(workspace_dir), "--task", "nope")
    assert_one_line_error(result, "nope")
    assert not (workspace_dir / "runs" / STORE_NAME).exists()
    assert fake_models.requests == []


def test_unknown_portfolio_exits_2(workspace_dir, fake_models):
    result = invoke("eval", "-w", str(workspace_dir), "--portfolio", "nope")
    assert_one_line_error(result, "portfolios.nope")


def test_unknown_model_fails_preflight_before_the_store_is_created(workspace_dir, kit, monkeypatch):
    fake = kit.single_fake(lambda request: "unused", models=["some-other-model"])
    monkeypatch.setattr(harness_module, "create_backend", lambda role, backends: fake)
    monkeypatch.setattr(preflight_module, "create_backend", lambda role, backends: fake)
    result = invoke("eval", "-w", str(workspace_dir), "--json")
    assert_one_line_error(result, "portfolios.default.planner.model")
    assert not (workspace_dir / "runs" / STORE_NAME).exists()


def test_not_a_workspace_exits_2(tmp_path):
    result = invoke("eval", "-w", str(tmp_path))
    assert_one_line_error(result, "autoresearch init")


def test_init_command_creates_a_workspace(tmp_path):
    result = invoke("init", str(tmp_path / "new"))
    assert result.exit_code == 0
    assert (tmp_path / "new" / "autoresearch.toml").is_file()
    again = invoke("init", str(tmp_path / "new"))
    assert_one_line_error(again, "not empty")


def test_a_crash_in_native_code_says_so_in_one_first_line(tmp_path):
    import subprocess
    import sys

    # What the CLI does first, then a segfault in C (reading address 0), as llama.cpp's AMX path would.
    code = ("import ctypes; from autoresearch.cli.main import report_native_crashes; "
            "report_native_crashes(); ctypes.string_at(0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == "Fatal Python error: Segmentation fault"


SCRIPTED_CLI = Path(__file__).parents[1] / "search" / "shared_pipeline.py"  # the real command on a fake model


@pytest.mark.parametrize("stop,returncode", [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)])
def test_a_stopped_eval_repeats_shows_the_spread_of_the_repeats_it_finished(workspace_dir, stop, returncode):
    run = _scripted_eval(workspace_dir, "--repeats", "5000")
    db = workspace_dir / "runs" / STORE_NAME
    _wait_for(run, db, "SELECT COUNT(*) FROM evaluations WHERE status = 'complete'", 3)
    run.send_signal(stop)
    out, err = run.communicate(timeout=60)
    assert run.returncode == returncode, (out, err)
    done = int(re.search(r"stopped after (\d+) of 5000 repeats: the figures above are over those \1", out)[1])
    assert done >= 3 and f"over {done} repeats × " in out and err == ""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        counts = dict(conn.execute("SELECT status, COUNT(*) FROM evaluations GROUP BY status").fetchall())
    assert counts.get("complete") == done and counts.get("running") is None  # the one it stopped: interrupted


def _scripted_eval(workspace_dir: Path, *args: str, delay_s: str = "0") -> subprocess.Popen:
    """The real `eval` on the scripted model, in a process of its own, with the signals of one started from a
    terminal (a suite started in the background of a shell, or under nohup, passes SIGINT or SIGHUP on ignored)."""
    env = {**os.environ, "SCRIPTED_DELAY_S": delay_s,
           "PYTHONPATH": str(Path(__file__).parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, str(SCRIPTED_CLI), "eval", "-w", str(workspace_dir), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=signals_of_a_terminal)


def _wait_for(run: subprocess.Popen, db: Path, query: str, at_least: int) -> None:
    """Poll the store until the query counts at_least rows (or the command ended)."""
    found, deadline = 0, time.monotonic() + 60
    while found < at_least and run.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.OperationalError), \
                contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            found = conn.execute(query).fetchone()[0]
        time.sleep(0.01)


@pytest.mark.parametrize("stop,returncode", [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM),
                                             (signal.SIGHUP, -signal.SIGHUP)])
def test_a_stopped_eval_shows_the_tasks_it_finished_and_says_it_stopped(workspace_dir, stop, returncode):
    # Ctrl-C printed "Aborted!" and nothing of the tasks already in the store; SIGTERM and SIGHUP (the terminal
    # closing, with the output going to a file) killed it silently.
    run = _scripted_eval(workspace_dir, delay_s="0.25")  # 6 tasks of 3 calls each, 2 at once: about 2.5 s
    db = workspace_dir / "runs" / STORE_NAME
    _wait_for(run, db, "SELECT COUNT(*) FROM task_results", 2)
    run.send_signal(stop)
    out, err = run.communicate(timeout=60)
    assert run.returncode == returncode, (out, err)
    done = int(re.search(r"stopped after (\d+) of 6 tasks: the composite above is over the \1 that finished", out)[1])
    assert 2 <= done < 6 and err == "" and "composite " in out
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT status FROM evaluations").fetchall() == [("interrupted",)]
        assert conn.execute("SELECT COUNT(*) FROM task_results").fetchone()[0] == done


@pytest.mark.parametrize("args,said", [
    (["--json"], "stopped before any of the 6 tasks finished; the calls made are in {db}"),
    (["--repeats", "3"], "stopped before two of the 3 repeats finished: no spread to show; the evaluations made "
                         "are in {db}"),
], ids=["eval", "repeats"])
def test_an_eval_stopped_before_it_has_anything_to_show_says_so_in_one_line(workspace_dir, args, said):
    run = _scripted_eval(workspace_dir, *args, delay_s="0.25")
    db = workspace_dir / "runs" / STORE_NAME
    _wait_for(run, db, "SELECT COUNT(*) FROM calls", 1)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130 and out == ""
    assert err == said.format(db=db) + "\n"


def test_a_stopped_eval_json_says_interrupted_and_how_many_tasks_were_asked_for(workspace_dir):
    run = _scripted_eval(workspace_dir, "--json", delay_s="0.25")
    _wait_for(run, workspace_dir / "runs" / STORE_NAME, "SELECT COUNT(*) FROM task_results", 1)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    document = json.loads(out)
    assert run.returncode == 130 and err == ""
    assert document["status"] == "interrupted" and document["requested_tasks"] == 6 and 1 <= len(document["tasks"]) < 6


@pytest.mark.parametrize("holder", ["running", "dead", "none"])
def test_eval_beside_a_running_run_says_they_share_the_machine(workspace_dir, holder):
    # On 2 cores an evaluation beside a run slows both many times over, and the run's seconds and joules take in
    # the evaluation's load: nothing said so.
    import socket

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        if holder == "dead":
            other.kill()
            other.wait()
        if holder != "none":
            (workspace_dir / "runs").mkdir(exist_ok=True)
            (workspace_dir / "runs" / "run.lock").write_text(json.dumps(
                {"pid": other.pid, "host": socket.gethostname(), "started": "2026-12-04T23:04:00+00:00"}))
        run = _scripted_eval(workspace_dir, "--json", "--task", "onboarding-checklist")
        out, err = run.communicate(timeout=60)
    finally:
        other.kill()
        other.wait()
    assert run.returncode == 0, err
    assert json.loads(out)["tasks"]  # the note is on stderr: the JSON stays whole
    if holder == "running":
        assert err == (f"note: `autoresearch run` (pid {other.pid}, started 2026-12-04T23:04:00+00:00) is running in "
                       "this workspace: the two share the machine, so both run slower, and each one's seconds and "
                       "joules include the other's load\n")
    else:
        assert err == ""  # a lock a killed run left says nothing


def test_eval_beside_a_run_in_another_workspace_says_they_share_the_machine(workspace_dir, tmp_path, kit):
    # Two workspaces on one 2-core machine: a run in one and an eval in the other slow each other many times over.
    other = tmp_path / "other"
    with kit.run_lock_held(other / "runs") as holder:
        run = _scripted_eval(workspace_dir, "--json", "--task", "onboarding-checklist")
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0 and json.loads(out)["tasks"]
    assert err.startswith(f"note: `autoresearch run` (pid {holder.pid}, started ")
    assert err.endswith(f") is running on this machine, in {other.resolve()}: the two share the machine, so both run "
                        "slower, and each one's seconds and joules include the other's load\n")


@pytest.mark.parametrize("repeats", ["1", "2"])
def test_eval_in_a_folder_whose_path_holds_brackets_prints_it_as_written(tmp_path, fake_models, repeats):
    # The store's path was read as markup: "[/x]" raised rich's MarkupError after the whole evaluation.
    from autoresearch.workspace.workspace import init_workspace

    root = init_workspace(tmp_path / "old [/x]" / "ws")
    result = invoke("eval", "-w", str(root), "--split", "search", "--repeats", repeats)
    assert result.exit_code == 0, result.output
    assert f"in {root / 'runs'}" in result.stdout.replace("\n", "")


def test_a_ctrl_c_before_the_evaluation_starts_exits_130_in_one_line(workspace_dir, monkeypatch):
    # While the model loaded, Ctrl-C printed click's "Aborted!" and exited 1, as a failure would.
    def loading(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(preflight_module, "check_portfolio", loading)
    result = CliRunner().invoke(main, ["eval", "-w", str(workspace_dir)])
    assert result.exit_code == 130 and result.stderr == "stopped by Ctrl-C\n" and result.stdout == ""


def test_an_eval_through_a_server_restart_says_so_on_stderr_and_scores_as_without_one(
        workspace, kit, monkeypatch, quick_probes):
    results = kit.through_a_restart(monkeypatch, workspace, "eval", "--split", "search")
    composites = [json.loads(result.stdout)["composite"] for result in results]
    assert composites[0] == composites[1]
