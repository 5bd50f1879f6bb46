#!/usr/bin/env python
"""Kill a real `autoresearch run` with SIGKILL at many random points, resume, and check nothing broke.

    python scripts/crash_test.py [--kills 20] [--seed N] [--keep]

Creates a workspace in a temporary folder and runs `autoresearch run` in a subprocess on a
scripted fake model (scripts/crash_pipeline.py runs the real command on autoresearch.testing's fake).
Each round kills the whole process group with SIGKILL — at a random time, or the moment an instruction
file is replaced (before its commit), a git index lock appears (mid git command), a commit lands, or
results.tsv grows — then checks what must hold at any instant, runs `autoresearch run --timeout 0s`
(start-up recovery, no new trial), and checks:

- no finished trial lost or re-run: every trial finished before is unchanged, numbers are contiguous,
  each trial has at most one search evaluation, nothing is left running;
- every keep in the store has its commit on the study branch, and every commit of the study is a keep;
  each commit changes one instruction file and nothing else;
- the instruction files equal HEAD (git status clean) and HEAD holds the incumbent's text;
- the store passes PRAGMA integrity_check; results.tsv has each finished trial's row exactly once;
- Optuna's trial states agree with the store (and none is left running).

Prints "kills: N  violations: 0" at the end; exits 1 on any violation.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from autoresearch.search.recovery import optuna_outcome
from autoresearch.search.results import tsv_line
from autoresearch.workspace.workspace import init_workspace

PIPELINE = HERE / "crash_pipeline.py"
TRIGGERS = ("time", "file-written", "git-lock", "commit-landed", "tsv-grew")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def make_workspace(parent: Path) -> Path:
    """A starter workspace with four search tasks and one holdout task, only producer.md optimizable."""
    root = init_workspace(parent / "ws")
    tasks = []
    for i in range(5):
        split = "search" if i < 4 else "holdout"
        tasks.append(f'[[tasks]]\nid = "t{i}"\nsplit = "{split}"\nprompt = "Task number {i}."\n'
                     f'criteria = [{{ kind = "max_words", value = 400 }}]\n')
    (root / "rubrics" / "tasks.toml").write_text("\n".join(tasks))
    config = (root / "autoresearch.toml").read_text()
    config = config.replace("max_revision_rounds = 1", "max_revision_rounds = 0")
    config = config.replace('optimizable = ["producer.md", "planner.md"]', 'optimizable = ["producer.md"]')
    # A run must live until it is killed: never stop on its own after a few failed trials in a row (the
    # scripted proposer gives no variant 10% of the time), which would leave a round without a kill.
    config += ('\n[search]\noperators = ["rephrase", "add_constraint"]\nproposer_temperatures = [0.5]\n'
               'max_consecutive_failed = 1000\n')
    (root / "autoresearch.toml").write_text(config)
    (root / "instructions" / "producer.md").write_text("Answer.\n")
    (root / "notes.txt").write_text("the user's own uncommitted file\n")  # must never be touched
    git(root, "commit", "-qam", "crash test settings")
    return root


def run_env(seed: int) -> dict[str, str]:
    env = dict(os.environ)
    env["CRASH_PIPELINE_SEED"] = str(seed)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start_run(root: Path, seed: int) -> subprocess.Popen:
    """The run in its own process group; its stdout (where a run that stops says why) goes to a file beside
    the workspace, read back when the run exits by itself (a pipe could fill and stall it)."""
    cmd = [sys.executable, str(PIPELINE), "run", "-w", str(root), "--trials", "10000", "--seed", str(seed)]
    with open(run_output(root), "wb") as out:
        return subprocess.Popen(cmd, cwd=root, env=run_env(seed), stdout=out, stderr=subprocess.PIPE,
                                start_new_session=True)


def run_output(root: Path) -> Path:
    return root.parent / "run.out"


def output_tail(root: Path, chars: int = 300) -> str:
    """The last lines of the latest run's output, on one line."""
    text = run_output(root).read_text(errors="replace") if run_output(root).exists() else ""
    return " | ".join(line.strip() for line in text[-chars:].splitlines() if line.strip())


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def branch_sha(root: Path) -> str:
    head = (root / ".git" / "HEAD").read_text().strip()
    if head.startswith("ref: "):
        ref = root / ".git" / head[5:]
        return ref.read_text().strip() if ref.exists() else ""
    return head


def wait_and_kill(proc: subprocess.Popen, root: Path, trigger: str, rng: random.Random, limit_s: float) -> str:
    """Kill the run when the trigger fires (or at limit_s); return what happened."""
    started = time.monotonic()
    deadline = started + (rng.uniform(0.5, limit_s) if trigger == "time" else limit_s)
    armed = started + 2.0  # past start-up (its own `git status`), into the trials
    index_lock = root / ".git" / "index.lock"
    producer = root / "instructions" / "producer.md"
    tsv = root / "runs" / "results.tsv"
    first_sha = branch_sha(root)
    first_tsv = tsv.stat().st_size if tsv.exists() else 0
    first_inode = producer.stat().st_ino
    fired = "deadline"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return (f"exited by itself (rc {proc.returncode}): {proc.stderr.read().decode()[-300:]} "
                    f"{output_tail(root)}")
        if trigger == "file-written" and producer.stat().st_ino != first_inode:
            fired = trigger
            break
        if trigger == "git-lock" and time.monotonic() > armed and index_lock.exists():
            fired = trigger
            break
        if trigger == "commit-landed" and branch_sha(root) != first_sha:
            fired = trigger
            break
        if trigger == "tsv-grew" and tsv.exists() and tsv.stat().st_size != first_tsv:
            fired = trigger
            break
        time.sleep(0.0005)
    kill_group(proc)
    return f"killed at {time.monotonic() - started:.2f}s ({fired})"


REPAIRS = {  # what a resume's notes say it repaired → a short name for the log
    "stale lock": "lock", "recorded as keep": "keep-from-commit", "restored": "file-restored",
    "left by a git command": "git-lock-removed", "half-written": "temp-removed", "cut off": "tsv-row-repaired",
    "not on": "keep-revoked",
}


def repairs(output: str) -> list[str]:
    notes = [line for line in output.splitlines() if line.startswith("note: ")]
    return sorted({name for line in notes for key, name in REPAIRS.items() if key in line})


# --- the checks -----------------------------------------------------------------------------------

def _connect(root: Path) -> sqlite3.Connection | None:
    path = root / "runs" / "autoresearch.db"
    if not path.exists():
        return None
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    return db


def instant_violations(root: Path) -> list[str]:
    """What must hold at any instant, even right after a kill and before any recovery."""
    out: list[str] = []
    db = _connect(root)
    if db is None:
        return out
    if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        out.append("store: integrity_check failed")
    texts = {"Answer.\n"}
    # A kill between the store's file being opened and its first migration's commit leaves a store without
    # tables (each migration is one transaction): nothing recorded yet, which the next run migrates.
    recorded = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='trials'").fetchone()
    for row in db.execute("SELECT variant_text, instructions_json FROM trials") if recorded else ():
        if row["variant_text"]:
            texts.add(row["variant_text"])
        if row["instructions_json"]:
            texts.update(json.loads(row["instructions_json"]).values())
    current = (root / "instructions" / "producer.md").read_text()
    if current not in texts:
        out.append(f"instructions/producer.md holds a text the loop never wrote (half-written?): {current[:60]!r}")
    for row in db.execute("SELECT t.number, t.commit_sha, s.branch FROM trials t JOIN studies s ON s.name = t.study"
                          " WHERE t.status = 'keep'") if recorded else ():
        if not row["commit_sha"] or subprocess.run(
                ["git", "merge-base", "--is-ancestor", row["commit_sha"], row["branch"]], cwd=root).returncode:
            out.append(f"trial {row['number']}: keep in the store without its commit on {row['branch']}")
    db.close()
    return out


def settled_violations(root: Path, before: dict[tuple[str, int], tuple]) -> tuple[list[str], dict]:
    """What must hold once a run has started (and so reconciled) and ended; `before` is the previous snapshot."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out: list[str] = []
    db = _connect(root)
    if db is None:
        return ["store: missing after a completed run"], before
    if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        out.append("store: integrity_check failed")
    if (root / ".git" / "index.lock").exists():
        out.append("git: index.lock left behind")
    if (root / "runs" / "run.lock").exists():
        out.append("runs/run.lock left behind by a run that ended")
    status = git(root, "status", "--porcelain", "--untracked-files=all", "--", "instructions")
    if status.strip():
        out.append(f"git status not clean for instructions: {status.strip()}")
    if (root / "notes.txt").read_text() != "the user's own uncommitted file\n":
        out.append("the user's notes.txt was touched")
    tsv_path = root / "runs" / "results.tsv"
    tsv_lines = tsv_path.read_text().splitlines()[1:] if tsv_path.exists() else []
    snapshot: dict[tuple[str, int], tuple] = {}
    storage = optuna.storages.RDBStorage(f"sqlite:///{root / 'runs' / 'optuna.db'}")
    for study in db.execute("SELECT * FROM studies").fetchall():
        name, branch = study["name"], study["branch"]
        rows = db.execute("SELECT * FROM trials WHERE study=? ORDER BY number", (name,)).fetchall()
        numbers = [r["number"] for r in rows]
        if numbers != list(range(len(numbers))):
            out.append(f"{name}: trial numbers not contiguous: {numbers}")
        for r in rows:
            key = (name, r["number"])
            snapshot[key] = (r["status"], r["composite"], r["variant_hash"], r["evaluation_id"], r["commit_sha"])
            if r["status"] == "running":
                out.append(f"trial {r['number']}: left running")
            elif key in before and before[key] != snapshot[key]:
                out.append(f"trial {r['number']}: finished trial changed: {before[key]} → {snapshot[key]}")
            if r["status"] != "running" and tsv_lines.count(tsv_line(r)) != 1:
                out.append(f"trial {r['number']}: {tsv_lines.count(tsv_line(r))} rows in results.tsv, not 1")
            searches = db.execute("SELECT COUNT(*) FROM evaluations WHERE study=? AND trial=? AND kind IN "
                                  "('trial', 'baseline')", (name, r["number"])).fetchone()[0]
            if searches > 1:
                out.append(f"trial {r['number']}: evaluated {searches} times (re-run)")
            if r["evaluation_id"] is not None:
                e = db.execute("SELECT trial, status FROM evaluations WHERE id=?", (r["evaluation_id"],)).fetchone()
                if e is None or e["trial"] != r["number"]:
                    out.append(f"trial {r['number']}: its evaluation belongs to another trial")
        lost = [k for k in before if k[0] == name and k not in snapshot]
        if lost:
            out.append(f"finished trials lost: {lost}")
        running = db.execute("SELECT COUNT(*) FROM evaluations WHERE study=? AND status='running'", (name,)).fetchone()[0]
        if running:
            out.append(f"{name}: {running} evaluations left running")
        # git: the commits of the study and the keeps of the store are the same set.
        log = git(root, "log", branch, "--fixed-strings", f"--grep=Autoresearch-Study: {name}", "--format=%H %s%n%b%x1e")
        commits = {}
        for entry in filter(str.strip, log.split("\x1e")):
            sha = entry.split()[0]
            trial = next(line.split(": ")[1] for line in entry.splitlines() if line.startswith("Autoresearch-Trial:"))
            commits[int(trial)] = sha
            files = git(root, "show", "--name-only", "--format=", sha).split()
            if files != ["instructions/producer.md"]:
                out.append(f"commit {sha[:10]} changes {files}, not only the instruction file")
        keeps = {r["number"]: r["commit_sha"] for r in rows if r["status"] == "keep"}
        if keeps != commits:
            out.append(f"{name}: keeps in the store {keeps} ≠ commits on {branch} {commits}")
        if git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() != branch:
            out.append(f"HEAD is not on {branch}")
        incumbent = [r for r in rows if r["status"] in ("baseline", "keep")]
        if incumbent:
            text = json.loads(incumbent[-1]["instructions_json"])["producer.md"]
            if git(root, "show", "HEAD:instructions/producer.md") != text:
                out.append("HEAD's producer.md is not the incumbent's text")
        # Optuna agrees with the store.
        try:
            ostudy = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            continue
        states = {t.number: t for t in ostudy.get_trials(deepcopy=False)}
        if set(states) != set(numbers):
            out.append(f"{name}: Optuna trials {sorted(states)} ≠ store trials {numbers}")
        for r in rows:
            t = states.get(r["number"])
            if t is None:
                continue
            want = expected_state(r)
            if t.state.name != want:
                out.append(f"trial {r['number']}: Optuna {t.state.name}, store {r['status']} (want {want})")
            elif want == "COMPLETE" and abs(t.value - r["composite"]) > 1e-9:
                out.append(f"trial {r['number']}: Optuna value {t.value} ≠ composite {r['composite']}")
    db.close()
    return out, snapshot


def expected_state(row) -> str:
    """The Optuna state the store's row says the trial ended in: the loop's one mapping (a trial without a usable
    variant is PRUNED, not FAIL, since c442853; a copy of the mapping here missed that)."""
    return optuna_outcome(row)[0].name


def settle(root: Path, seed: int) -> tuple[int, str]:
    """`autoresearch run --timeout 0s`: start-up recovery (and the baseline, if none), then stop."""
    cmd = [sys.executable, str(PIPELINE), "run", "-w", str(root), "--timeout", "0s", "--seed", str(seed)]
    done = subprocess.run(cmd, cwd=root, env=run_env(seed), capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


RUN_TRIES = 3  # runs started per round at most, when one stops on its own before it can be killed


def crash_test(kills: int = 20, seed: int = 0, workdir: Path | None = None, limit_s: float = 5.0,
               log=print) -> tuple[int, list[str]]:
    """Run the kill/resume rounds; return (kills made, violations)."""
    rng = random.Random(seed)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="crash-test-")
        workdir = Path(tmp.name)
    root = make_workspace(workdir)
    violations: list[str] = []
    snapshot: dict = {}
    made = 0
    try:
        for round_ in range(1, kills + 1):
            trigger = TRIGGERS[round_ % len(TRIGGERS)] if round_ > 1 else "time"
            for _ in range(RUN_TRIES):
                proc = start_run(root, rng.randrange(1 << 30))
                what = wait_and_kill(proc, root, trigger, rng, limit_s)
                if not what.startswith("exited by itself"):
                    break
                # A run may stop on its own before the kill: the pipeline's injected faults can fail the
                # baseline's tasks ("the baseline failed", rc 1). Not a violation; start it again, as a user would.
                log(f"round {round_:2d}: {what.strip()[:400]} — started again")
            made += what.startswith("killed")
            found = [f"round {round_} after kill: {v}" for v in instant_violations(root)]
            rc, output = settle(root, seed)
            if rc != 0:
                found.append(f"round {round_}: resume exited {rc}: {output.strip()[-400:]}")
            settled, snapshot = settled_violations(root, snapshot)
            found += [f"round {round_} after resume: {v}" for v in settled]
            statuses = [v[0] for v in snapshot.values()]
            log(f"round {round_:2d}: {what:<34} trials {len(statuses):3d} "
                f"(keep {statuses.count('keep')}, interrupted {statuses.count('interrupted')})"
                f"  repaired: {', '.join(repairs(output)) or '-'}"
                + (f"  VIOLATIONS: {found}" if found else ""))
            violations += found
    finally:
        if tmp is not None:
            tmp.cleanup()
    return made, violations


def main() -> int:
    from autoresearch.bench.arguments import ArgumentParser

    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the workspace (printed) for inspection")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="crash-test-")) if args.keep else None
    if workdir:
        print(f"workspace: {workdir / 'ws'}")
    started = time.monotonic()
    made, violations = crash_test(args.kills, args.seed, workdir)
    print(f"kills: {made}  violations: {len(violations)}  ({time.monotonic() - started:.0f} s)")
    for v in violations:
        print(f"  {v}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
