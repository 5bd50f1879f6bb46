"""The SQLite store: numbered migrations applied once, WAL mode, and round-trips of every record."""

from __future__ import annotations

import json
import sqlite3

import pytest

from autoresearch.errors import StoreError
from autoresearch.evaluation import CheckResult
from autoresearch.lm.calls import CallRecord
from autoresearch.pipeline.harness import TaskResult
from autoresearch.store import MIGRATIONS, STORE_NAME, Store, migrate
from autoresearch.store import migrations as migrations_module


def call(**overrides) -> CallRecord:
    fields = dict(role="producer", backend="fake", model="m", prompt_hash="abc", prompt_tokens=12,
                  completion_tokens=34, latency_s=0.5, load_s=0.1, joules=2.5, energy_source="estimate",
                  status="ok", response="hello", task_id="t1")
    return CallRecord(**{**fields, **overrides})


def begin(store: Store, **overrides) -> int:
    fields = dict(kind="eval", portfolio="default", portfolio_json="{}", instructions_hash="ih",
                  evaluation_hash="eh", split="all")
    return store.begin_evaluation(**{**fields, **overrides})


def test_migrations_apply_once_and_are_recorded(tmp_path):
    path = tmp_path / "runs" / STORE_NAME
    store = Store(path)
    rows = store.conn.execute("SELECT name, applied_at FROM _migrations").fetchall()
    assert [r["name"] for r in rows] == [name for name, _ in MIGRATIONS]
    first_applied_at = [r["applied_at"] for r in rows]
    store.close()

    reopened = Store(path)
    again = reopened.conn.execute("SELECT name, applied_at FROM _migrations").fetchall()
    assert [r["applied_at"] for r in again] == first_applied_at  # not re-applied (no duplicate, no new row)
    assert migrate(reopened.conn) == []  # nothing left to apply
    tables = {r[0] for r in reopened.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"evaluations", "calls", "task_results", "_migrations"} <= tables
    reopened.close()


def test_new_migration_is_applied_to_an_existing_store_only(tmp_path, monkeypatch):
    path = tmp_path / STORE_NAME
    Store(path).close()
    extra = ("m999_test_note", "ALTER TABLE evaluations ADD COLUMN note TEXT;")
    monkeypatch.setattr(migrations_module, "MIGRATIONS", [*MIGRATIONS, extra])
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn) == ["m999_test_note"]
    assert migrate(conn) == []
    columns = {r[1] for r in conn.execute("PRAGMA table_info(evaluations)")}
    assert "note" in columns
    conn.close()


def test_failed_migration_rolls_back_whole(tmp_path, monkeypatch):
    path = tmp_path / STORE_NAME
    Store(path).close()
    broken = ("m999_broken", "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;")
    monkeypatch.setattr(migrations_module, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(StoreError, match=STORE_NAME):
        Store(path)
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    names = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    conn.close()
    assert "half_done" not in tables and "m999_broken" not in names


def test_store_uses_wal_mode(tmp_path):
    store = Store(tmp_path / STORE_NAME)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    # WAL is a property of the database file: a plain connection sees it too.
    conn = sqlite3.connect(tmp_path / STORE_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_evaluation_call_and_task_round_trip(tmp_path):
    store = Store(tmp_path / STORE_NAME)
    eid = begin(store, kind="trial", study="s1", trial=3, split="search")
    row = store.evaluation(eid)
    assert (row["status"], row["kind"], row["study"], row["trial"], row["split"]) == ("running", "trial", "s1", 3, "search")
    assert row["finished_at"] is None

    ok = call()
    failed = call(status="failed", failure_mode="timeout", error="took too long", response=None,
                  prompt_tokens=0, completion_tokens=0, role="evaluator")
    store.record_call(eid, ok)
    store.record_call(eid, failed)
    store.record_call(None, call(task_id="elsewhere"))  # a call outside any evaluation is kept, but not listed
    calls = store.calls(eid)
    assert [(c["role"], c["status"], c["failure_mode"]) for c in calls] == [
        ("producer", "ok", None), ("evaluator", "failed", "timeout")]
    first = calls[0]
    assert (first["prompt_tokens"], first["completion_tokens"], first["joules"], first["energy_source"]) == (
        12, 34, 2.5, "estimate")
    assert (first["latency_s"], first["load_s"], first["response"], first["task_id"]) == (0.5, 0.1, "hello", "t1")
    assert calls[1]["error"] == "took too long"

    checks = (CheckResult("min_words 3", True, "5 words (min 3)"), CheckResult("contains x", False, "no 'x'"))
    result = TaskResult(
        task_id="t1", split="search", score_r1=4.5, score_final=7.0, dimensions={"clarity": 4.5},
        checks=checks, critique="fix it", plan="1. a", output_r1="draft", output="final", revisions=1,
        seconds=1.25, calls=(ok, failed),
    )
    store.record_task(eid, result)
    (task,) = store.task_results(eid)
    assert (task["task_id"], task["score_r1"], task["score_final"], task["revisions"]) == ("t1", 4.5, 7.0, 1)
    assert json.loads(task["dimensions_json"]) == {"clarity": 4.5}
    assert json.loads(task["criteria_json"]) == [
        {"criterion": "min_words 3", "passed": True, "reason": "5 words (min 3)"},
        {"criterion": "contains x", "passed": False, "reason": "no 'x'"},
    ]
    assert (task["criteria_passed"], task["criteria_total"]) == (1, 2)
    assert (task["output_r1"], task["output"], task["plan"], task["critique"]) == ("draft", "final", "1. a", "fix it")
    assert task["tokens"] == 46 and task["joules"] == 5.0 and task["energy_source"] == "estimate"
    assert task["failed"] == 0 and task["failure_mode"] is None

    store.finish_evaluation(eid, status="complete", composite=6.1, judge_mean=4.5, criteria_rate=0.5,
                            joules=5.0, energy_source="estimate", seconds=2.0)
    done = store.evaluation(eid)
    assert (done["status"], done["composite"], done["judge_mean"], done["criteria_rate"]) == ("complete", 6.1, 4.5, 0.5)
    assert done["joules"] == 5.0 and done["finished_at"] is not None
    store.close()

    # Every write was committed: a second connection (another process) sees it all.
    other = Store(tmp_path / STORE_NAME)
    assert len(other.calls(eid)) == 2 and len(other.task_results(eid)) == 1
    assert other.evaluation(eid)["status"] == "complete"
    other.close()


def test_failed_task_round_trip_keeps_failure_mode_and_flags(tmp_path):
    store = Store(tmp_path / STORE_NAME)
    eid = begin(store)
    result = TaskResult(
        task_id="t2", split="holdout", score_r1=0.0, score_final=0.0, dimensions={},
        checks=(CheckResult("no_judge_address", False, "addresses the judge"),), failed=True,
        failure_mode="unparseable",
    )
    store.record_task(eid, result)
    (task,) = store.task_results(eid)
    assert task["failed"] == 1 and task["failure_mode"] == "unparseable"
    assert task["flags"] == "no_judge_address"
    assert task["energy_source"] == "none" and task["tokens"] == 0
    store.close()


def test_unopenable_store_is_a_store_error(tmp_path):
    (tmp_path / STORE_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=STORE_NAME):
        Store(tmp_path / STORE_NAME)


def test_a_store_that_cannot_open_on_a_full_disk_says_the_disk_is_full(tmp_path, monkeypatch):
    from collections import namedtuple

    from autoresearch.store import store as store_module

    (tmp_path / STORE_NAME).write_bytes(b"this is not a database" * 100)  # any failure to open; here a bad file
    with pytest.raises(StoreError) as room:
        Store(tmp_path / STORE_NAME)
    assert "disk is full" not in str(room.value)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(StoreError) as full:  # SQLite says "disk I/O error" there, and nothing of the disk
        Store(tmp_path / STORE_NAME)
    assert str(full.value).endswith("; the disk is full: free some space and run the same command")


def test_a_calls_seed_is_kept(tmp_path):
    store = Store(tmp_path / STORE_NAME)
    eid = begin(store, kind="eval", split="search")
    store.record_call(eid, call(seed=1234567))
    store.record_call(eid, call(seed=None))
    assert [c["seed"] for c in store.calls(eid)] == [1234567, None]


def test_a_calls_dialect_is_kept(tmp_path):
    store = Store(tmp_path / STORE_NAME)
    eid = begin(store, kind="eval", split="search")
    store.record_call(eid, call(dialect="json_object_schema"))
    store.record_call(eid, call())
    assert [c["dialect"] for c in store.calls(eid)] == ["json_object_schema", None]
