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
