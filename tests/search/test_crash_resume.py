"""A small run of scripts/crash_test.py: real `autoresearch run` subprocesses killed with SIGKILL (at a random
time, as a commit starts, as it lands, as results.tsv grows), each followed by a resume and every check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "crash_test.py"


def load_script():
    spec = importlib.util.spec_from_file_location("crash_test_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_kill_9_at_four_points_then_resume_breaks_nothing(tmp_path):
    crash_test = load_script()
    lines: list[str] = []
    kills, violations = crash_test.crash_test(kills=4, seed=11, workdir=tmp_path, limit_s=4.0, log=lines.append)
    assert violations == [], "\n".join(lines + violations)
    assert kills == 4, "\n".join(lines)


def test_a_kill_before_the_stores_first_migration_leaves_nothing_to_flag(tmp_path):
    # The kill can land after the store's file is opened and before its first migration commits: the file has
    # no tables yet. That is a state the next run migrates, not a violation, and not a checker crash.
    crash_test = load_script()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "autoresearch.db").write_bytes(b"")
    (tmp_path / "instructions").mkdir()
    (tmp_path / "instructions" / "producer.md").write_text("Answer.\n")
    assert crash_test.instant_violations(tmp_path) == []
    (tmp_path / "instructions" / "producer.md").write_text("Answ")  # a torn write is still flagged
    assert crash_test.instant_violations(tmp_path) != []
