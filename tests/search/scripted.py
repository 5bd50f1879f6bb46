"""Helpers of the search tests: the scripted pipeline (autoresearch.testing), git, a producer-only workspace."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from autoresearch.testing import (
    DIMENSIONS,
    ScriptedPipeline,
    bangs,
    signals_of_a_terminal,
)

# The scripted pipeline is shipped with the package (one copy): re-exported for the search tests.
__all__ = ["DIMENSIONS", "ONLY_PRODUCER", "Identified", "ScriptedPipeline", "SeedJudge", "bangs", "git",
           "producer_only", "scripted_run", "wait_for_running_trial"]

SCRIPTED_CLI = Path(__file__).with_name("shared_pipeline.py")  # the real `autoresearch` command on a fake model
REPO = Path(__file__).resolve().parents[2]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


# A search space of one operator and one temperature: trials differ only by the scripted variants. No noise
# measurement at the baseline: these tests script their calls by number ("the baseline judged 2 + 1 tasks").
ONLY_PRODUCER = '\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\nnoise_repeats = 1\n'


def producer_only(root: Path, extra_config: str = "") -> Path:
    """Make producer.md the only optimizable file (and append extra_config), committed."""
    text = (root / "autoresearch.toml").read_text()
    (root / "autoresearch.toml").write_text(text.replace(
        'optimizable = ["producer.md", "planner.md"]', 'optimizable = ["producer.md"]') + extra_config)
    git(root, "commit", "-qam", "only producer")
    return root


class Identified:
    """The scripted backend, saying which model it is (lm/model_identity.py) as a real backend does; `identity` is
    the model's name, or a function asked each time (a model that changes)."""

    def __init__(self, inner, identity):
        self.inner, self.identity = inner, identity

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def model_identity(self) -> str:
        return self.identity() if callable(self.identity) else self.identity


def scripted_run(root: Path, *args: str, delay_s: str = "0", **popen) -> subprocess.Popen:
    """The real `autoresearch run -w root …` on the scripted model, in a process of its own, with the signals of one
    started from a terminal unless `preexec_fn` says otherwise."""
    env = {**os.environ, "SCRIPTED_DELAY_S": delay_s,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    popen.setdefault("preexec_fn", signals_of_a_terminal)
    return subprocess.Popen([sys.executable, str(SCRIPTED_CLI), "run", "-w", str(root), *args], cwd=root, env=env,
                            **popen)


def wait_for_running_trial(run: subprocess.Popen, root: Path, after: int = 3) -> int | None:
    """The number of a trial that is running, once one numbered `after` or later is (None: the run ended first)."""
    db, deadline = root / "runs" / "autoresearch.db", time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        read_only = f"file:{db}?mode=ro"  # never creates the file the run is about to make
        with contextlib.suppress(sqlite3.OperationalError), \
                contextlib.closing(sqlite3.connect(read_only, uri=True, timeout=5)) as conn:
            found = conn.execute("SELECT number FROM trials WHERE status = 'running' AND number >= ?",
                                 (after,)).fetchone()  # (no such table: the store is being made)
            if found:
                return found[0]
        time.sleep(0.005)
    return None


class SeedJudge(ScriptedPipeline):
    """The judge's score is its own seed mod 10 plus the answer's '!' marks: the seed moves it by chance."""

    def respond(self, request):
        if self.role_of(request) != "evaluator":
            return super().respond(request)
        answer = re.search(r"<answer>\n(.*)\n</answer>", request.messages[-1].content, re.S).group(1)
        value = min(10, request.seed % 10 + answer.count("!"))
        return json.dumps({**{d: value for d in DIMENSIONS}, "critique": "fine"})
