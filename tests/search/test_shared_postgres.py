"""Three `autoresearch run` worker processes on one study through a real PostgreSQL server on loopback.

Each worker has its own clone of one repository and pushes to one bare remote; the models are a scripted
fake (tests/search/shared_pipeline.py) whose score is a function of the instructions, so the workers keep
often and race for the same incumbent versions.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import optuna
import sqlalchemy
from click.testing import CliRunner
from optuna.trial import TrialState
from scripted import ScriptedPipeline
from test_shared import BRANCH, STUDY, remote_keeps, shared_setup, study

from autoresearch.cli.main import main
from autoresearch.review.study_log import study_log
from autoresearch.search.recovery import Recovery, optuna_outcome
from autoresearch.search.shared.ledger import Ledger
from autoresearch.store import Store

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = Path(__file__).with_name("shared_pipeline.py")
TRIALS = 6


def optuna_state(row) -> TrialState:
    """The Optuna state a trial's recorded outcome ends in (recovery.optuna_outcome, the one mapping)."""
    return optuna_outcome(row)[0]


def test_three_workers_share_one_study_through_postgresql(loop_workspace, tmp_path, postgres_server):
    url = postgres_server.new_database()
    remote, clones = shared_setup(loop_workspace, tmp_path, 3)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [subprocess.Popen([sys.executable, str(PIPELINE), "run", "-w", str(clone), "--storage", url,
                                 "--study", STUDY, "--trials", str(TRIALS)],
                                cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for clone in clones]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], "\n\n".join(outputs)

    # Every trial accounted for: each Optuna trial is finished and recorded by exactly one worker, in the
    # state its recorded outcome says.
    trials = optuna.load_study(study_name=STUDY, storage=url).get_trials(deepcopy=False)
    rows = {}
    for clone in clones:
        for row in Store.for_workspace(clone / "runs").trials(STUDY):
            assert row["number"] not in rows, f"trial {row['number']} recorded by two workers"
            rows[row["number"]] = row
    assert sorted(rows) == sorted(t.number for t in trials)
    for t in trials:
        assert t.state == optuna_state(rows[t.number]), (t.number, t.state, rows[t.number]["status"])
    baselines = [r for r in rows.values() if r["status"] == "baseline"]
    assert len(rows) - len(baselines) == 3 * TRIALS  # every worker ran its trials (and at most one baseline)

    # No duplicate commit: the remote's study branch has one commit per ledger keep, in version order.
    ledger = Ledger(url, STUDY)
    versions = ledger.keeps()
    keeps = [r for r in rows.values() if r["status"] == "keep"]
    assert len(keeps) >= 2, ("the scripted proposer should have produced keeps: "
                             + "; ".join(f"{n} {r['status']} {r['note']}" for n, r in sorted(rows.items())))
    on_remote = remote_keeps(remote)
    assert [int(trial) for trial, _ in on_remote] == [v.trial for v in versions[1:]]
    assert sorted(r["number"] for r in keeps) == sorted(v.trial for v in versions[1:])
    assert [text for _, text in on_remote] == [v.instructions["producer.md"] for v in versions[1:]]
    assert {r["commit_sha"] for r in keeps} == {v.commit_sha for v in versions[1:]}

    # The final incumbent is the best kept composite, and it is what the branch holds.
    incumbent = ledger.incumbent()
    assert incumbent.composite == max(r["composite"] for r in keeps)
    assert incumbent.commit_sha == subprocess.run(["git", "rev-parse", BRANCH], cwd=remote, capture_output=True,
                                                  text=True, check=True).stdout.strip()

    # Linear history: no merge, every commit has one parent, and each keep beats the one before it.
    log = subprocess.run(["git", "rev-list", "--parents", BRANCH], cwd=remote, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert all(len(line.split()) <= 2 for line in log)
    objectives = [v.objective for v in versions]
    assert all(b > a + 0.1 for a, b in zip(objectives, objectives[1:]))

    # Lost races say so and were re-judged against the winner: kept on top of it when they still beat it,
    # else discarded; status shows the three workers and the incumbent.
    lost = [r for r in rows.values() if (r["note"] or "").startswith("lost the race to trial")]
    assert lost and all(r["status"] in ("discard", "keep") for r in lost)  # several per run with parents = 1
    assert all("re-judged against it" in r["note"] or "identical to the new incumbent" in r["note"]
               or "races lost in a row" in r["note"] for r in lost)
    # Each worker's log lists, beside its own keeps, every keep it read before its last one (it reads the
    # study's incumbents before each trial), with the commit the ledger names.
    commits = {v.trial: v.commit_sha for v in versions[1:]}
    for clone in clones:
        store = Store.for_workspace(clone / "runs")
        entries = study_log(store, STUDY).entries
        store.close()
        own = [v.version for v in versions[1:] if commits[v.trial] in {e.commit for e in entries if not e.worker}]
        seen = {v.trial for v in versions[1:max(own, default=1)]}
        assert seen <= {e.trial for e in entries}, (clone, seen, [e.trial for e in entries])
        assert all(e.commit == commits[e.trial] for e in entries)
    shown = CliRunner().invoke(main, ["status", "--storage", url])
    assert shown.exit_code == 0, shown.output
    assert f"incumbent: trial {incumbent.trial} (version {incumbent.version})" in shown.output
    assert shown.output.count("stopped: trials") == 3
    ledger.close()


VARIANTS = [f"Answer{'!' * i}\n" for i in range(1, 12)]


def test_a_database_restarted_between_trials_goes_unnoticed(loop_workspace, tmp_path, postgres_server):
    # A restart drops every pooled connection; without a ping on checkout the next query failed and the run stopped.
    url = postgres_server.new_database()
    _, [clone] = shared_setup(loop_workspace, tmp_path, 1)
    s = study(clone, ScriptedPipeline(variants=VARIANTS), url)
    s.observer = lambda kind, data: (kind == "trial_finished" and data["outcome"].number == 2
                                     and (postgres_server.halt(), postgres_server.resume()))
    summary = s.optimize(n_trials=4)
    assert summary.stop_reason == "trials" and len(summary.outcomes) == 4
    assert "failed" not in {o.status for o in summary.outcomes}
    assert not any("database" in note for note in summary.notes)


def test_a_database_down_for_a_while_is_waited_for_and_the_run_resumes(loop_workspace, tmp_path, postgres_server):
    url = postgres_server.new_database()
    _, [clone] = shared_setup(loop_workspace, tmp_path, 1)
    s = study(clone, ScriptedPipeline(variants=VARIANTS), url)
    restarted = []

    def observer(kind, data):
        if kind == "trial_finished" and data["outcome"].number == 2:
            postgres_server.halt()  # the next query (the incumbent, before trial 3) finds nothing listening
            restarted.append(threading.Timer(1.5, postgres_server.resume))
            restarted[0].start()

    s.observer = observer
    summary = s.optimize(n_trials=6)
    restarted[0].join()
    assert summary.stop_reason == "trials" and len(summary.outcomes) == 6
    where = f"the study's database at {url}"
    went, back, resumed = [n for n in summary.notes if where in n or "resumes" in n]
    assert went.startswith(f"{where} stopped answering (") and "waiting up to 10 min" in went
    assert re.fullmatch(re.escape(where) + r" answers again after \d+ s", back)
    assert resumed == "the run resumes as the same command would: start-up repairs, then the next trial"
    # Every trial accounted for, in both records: none left running in Optuna or the store.
    states = Counter(t.state for t in optuna.load_study(study_name=STUDY, storage=url).get_trials(deepcopy=False))
    rows = Store.for_workspace(clone / "runs").trials(STUDY)
    assert TrialState.RUNNING not in states and not [r for r in rows if r["status"] == "running"]
    # --trials 6 made 6 trials, the one that finished as the database went away among them, and the summary lists
    # every keep of the run
    assert len([r for r in rows if r["status"] != "baseline"]) == 6
    assert sorted(sha for sha, _ in summary.commits) == sorted(r["commit_sha"] for r in rows if r["status"] == "keep")
    assert sum(states.values()) == len(rows) and {optuna_state(r) for r in rows} <= set(states)


def test_a_connection_optuna_lost_inside_its_own_session_is_a_lost_database_not_a_traceback(
        loop_workspace, tmp_path, postgres_server, monkeypatch):
    # Optuna reports a connection lost mid-session as StorageInternalError ("…invalid data in the commit…"), raised
    # from the OperationalError: that escaped as a traceback. Here the database answers again at once.
    url = postgres_server.new_database()
    _, [clone] = shared_setup(loop_workspace, tmp_path, 1)
    real_tell, lost = Recovery.tell, []

    def tell(self, row):
        if row["number"] == 2 and not lost:
            lost.append(row["number"])
            try:
                raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("server closed the connection"))
            except sqlalchemy.exc.OperationalError as exc:
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc
        return real_tell(self, row)

    monkeypatch.setattr(Recovery, "tell", tell)
    summary = study(clone, ScriptedPipeline(variants=VARIANTS), url).optimize(n_trials=4)
    assert lost and summary.stop_reason == "trials" and len(summary.outcomes) == 4
    assert (f"the study's database at {url} was lost (server closed the connection) and answers "
            "again; the run resumes as the same command would: start-up repairs, then the next trial") in summary.notes
