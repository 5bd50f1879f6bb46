"""A study shared by workers (one Study object per workspace clone, one SQLite storage): the incumbent in
the ledger, the compare-and-set of a keep, commits pushed to one remote, the refusals."""

from __future__ import annotations

import json
import random
import sqlite3
import time
import warnings
from collections import Counter
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from rich.console import Console
from scripted import (
    ONLY_PRODUCER,
    Identified,
    ScriptedPipeline,
    SeedJudge,
    git,
    producer_only,
)

from autoresearch.cli.live import forecast_line, print_summary
from autoresearch.cli.main import main
from autoresearch.cli.review_views import log_renderables, print_all
from autoresearch.cli.views import keeps_table, status_table
from autoresearch.errors import WorkspaceError
from autoresearch.review.study_log import study_log
from autoresearch.review.trial_detail import trial_detail
from autoresearch.search.incumbents import SharedIncumbents
from autoresearch.search.results import Incumbent
from autoresearch.search.screens import pareto_front
from autoresearch.search.shared import worker as worker_module
from autoresearch.search.shared.ledger import KeepRecord, Ledger, LostRace, workers
from autoresearch.search.shared.status import StudyStatus, shared_status
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace

STUDY = "nightly"
BRANCH = f"autoresearch/{STUDY}"


def shared_setup(loop_workspace, tmp_path: Path, workers: int, search_tasks: int = 2,
                 extra: str = ONLY_PRODUCER + "parents = 1\n") -> tuple[Path, list[Path]]:
    """A bare remote holding the configured workspace, and one clone of it per worker."""
    # parents = 1: every proposal starts from the incumbent, so the scripted proposer's "one more mark"
    # always beats it and the workers keep (and race) often.
    seed = producer_only(loop_workspace(search_tasks=search_tasks, holdout_tasks=1, extra=extra))
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    branch = git(seed, "rev-parse", "--abbrev-ref", "HEAD").strip()
    git(seed, "push", "-q", str(remote), f"HEAD:refs/heads/{branch}")
    clones = []
    for i in range(workers):
        clone = tmp_path / f"worker{i}"
        git(tmp_path, "clone", "-q", "--branch", branch, str(remote), str(clone))
        clones.append(clone)
    return remote, clones


def study(root: Path, pipeline: ScriptedPipeline, storage: str, model=None, **kw) -> Study:
    """A worker of the shared study; `model`: the identity its backend gives (a name, or a function asked each
    time), else none."""
    factory = pipeline.factory if model is None else (lambda config, backends: Identified(pipeline.backend, model))
    return Study(load_workspace(root), backend_factory=factory, storage=storage, seed=1, backoff_s=0,
                 study_name=STUDY, **kw)


def remote_keeps(remote: Path) -> list[tuple[str, str]]:
    """(trial trailer, producer.md) of every commit on the remote's study branch, oldest first."""
    out = []
    for sha in git(remote, "rev-list", "--reverse", BRANCH).split():
        body = git(remote, "log", "-1", "--format=%B", sha)
        trial = next((line.split(": ")[1] for line in body.splitlines() if line.startswith("Autoresearch-Trial:")), "")
        if trial:
            out.append((trial, git(remote, "show", f"{sha}:instructions/producer.md")))
    return out


def test_a_keep_lost_to_another_worker_is_discarded_and_the_next_builds_on_the_winner(loop_workspace, tmp_path):
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!!\n", "Answer!!!\n"])
    a, b = study(a_root, pipeline, storage), study(b_root, pipeline, storage)
    events, holdouts = [], []

    def a_observer(kind, data):
        # A has evaluated "Answer!" (its second holdout: the first is its baseline's) and is about to keep
        # it: B keeps "Answer!!" first.
        if kind == "holdout":
            holdouts.append(data["trial"])
            if len(holdouts) == 2:
                events.append(b.optimize(n_trials=1))

    a.observer = a_observer
    first = a.optimize(n_trials=1)
    b_summary = events[0]
    assert [o.status for o in b_summary.outcomes] == ["keep"]
    lost = first.outcomes[0]
    # Re-judged against B's keep, A's "Answer!" (one mark) loses to "Answer!!" (two) at the screen.
    assert lost.status == "discard" and lost.description.startswith(
        f"lost the race to trial {b_summary.outcomes[0].number} of another worker")
    assert "re-judged against it: screen: -0.70 over 2 tasks × 1 seed" in lost.description
    assert remote_keeps(remote) == [(str(b_summary.outcomes[0].number), "Answer!!\n")]

    # A's next trial starts from B's keep (its proposer was shown "Answer!!"), keeps, and pushes on top.
    a.observer = lambda kind, data: None
    second = study(a_root, pipeline, storage).optimize(n_trials=1)
    assert [o.status for o in second.outcomes] == ["keep"]
    assert [text for _, text in remote_keeps(remote)] == ["Answer!!\n", "Answer!!!\n"]
    assert git(remote, "rev-list", "--merges", BRANCH) == ""
    ledger = Ledger(storage, STUDY)
    versions = ledger.keeps()
    assert [v.version for v in versions] == [0, 1, 2]
    assert versions[-1].instructions["producer.md"] == "Answer!!!\n"
    assert versions[-1].commit_sha == git(remote, "rev-parse", BRANCH).strip()
    assert max(v.composite for v in versions) == versions[-1].composite
    # Each worker's own store holds only its own trials, numbered by the shared Optuna study.
    numbers_a = {r["number"] for r in Store.for_workspace(a_root / "runs").trials(STUDY)}
    numbers_b = {r["number"] for r in Store.for_workspace(b_root / "runs").trials(STUDY)}
    assert numbers_a.isdisjoint(numbers_b)


def test_a_keep_that_lost_the_race_but_beats_the_winner_is_kept_on_top_of_it(loop_workspace, tmp_path):
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    pipeline = ScriptedPipeline(variants=["Answer!!!\n", "Answer!\n"])
    a, b = study(a_root, pipeline, storage), study(b_root, pipeline, storage)
    events, holdouts = [], []

    def a_observer(kind, data):
        if kind == "holdout":  # A is about to commit "Answer!!!": B keeps "Answer!" first
            holdouts.append(data["trial"])
            if len(holdouts) == 2:
                events.append(b.optimize(n_trials=1))

    a.observer = a_observer
    (kept,) = a.optimize(n_trials=1).outcomes
    (b_keep,) = events[0].outcomes
    assert b_keep.status == "keep"
    assert kept.status == "keep" and kept.description.startswith(f"lost the race to trial {b_keep.number}")
    assert round(kept.delta, 9) == 1.4  # two marks above B's keep, paired on A's machine
    assert [text for _, text in remote_keeps(remote)] == ["Answer!\n", "Answer!!!\n"]
    assert [v.version for v in Ledger(storage, STUDY).keeps()] == [0, 1, 2]
    # A evaluated B's keep itself (its scores are in B's store, from B's machine), under its own trial.
    kinds = [e["kind"] for e in Store.for_workspace(a_root / "runs").trial_evaluations(STUDY, kept.number)]
    assert "incumbent" in kinds


def test_a_worker_joining_late_starts_from_the_study_incumbent_without_a_baseline(loop_workspace, tmp_path):
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!!\n"])
    first = study(a_root, pipeline, storage).optimize(n_trials=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        late = study(b_root, pipeline, storage).optimize(n_trials=1)
    assert [o.status for o in late.outcomes] == ["keep"]
    assert "baseline" not in late.counts and late.worker  # the summary's counts are this worker's
    # ... but its starting point is the study's baseline, another worker's, not "no baseline yet"
    assert (late.baseline_composite, late.baseline_holdout) == (first.baseline_composite, first.baseline_holdout)
    assert not [w for w in caught if "Heartbeat" in str(w.message)]  # Optuna's ask/tell warning is not shown
    assert [text for _, text in remote_keeps(remote)] == ["Answer!\n", "Answer!!\n"]
    assert (b_root / "instructions" / "producer.md").read_text() == "Answer!!\n"


def test_a_worker_joining_late_measures_the_study_noise_on_its_own_machine_before_its_first_screen(
        loop_workspace, tmp_path):
    # noise_repeats 3 (2 upfront): the baseline of worker A measures seed sets 0 and 1; B, which joins after it,
    # has no baseline of its own and measures the incumbent's two sets itself before it screens anything.
    noisy = ONLY_PRODUCER.replace("noise_repeats = 1", "noise_repeats = 3") + "parents = 1\n"
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2, extra=noisy)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    first = study(a_root, SeedJudge(), storage).optimize(n_trials=0)
    late = study(b_root, SeedJudge(variants=["Answer!\n"]), storage).optimize(n_trials=1)

    assert [o.status for o in late.outcomes] == ["keep"]
    db = sqlite3.connect(b_root / "runs" / "autoresearch.db")
    kinds = db.execute("SELECT kind, repeat FROM evaluations ORDER BY id").fetchall()
    assert kinds[:3] == [("incumbent", 0), ("incumbent", 1), ("trial", 0)]  # the incumbent's noise, then the screen
    # The same judge on both machines: B's noise is the baseline's, value for value (seeds 7 and 8, then 9 when
    # B's contender reached the third set).
    assert first.noise.n == 2 and late.noise.values[:2] == first.noise.values and late.noise.n == 3
    body = git(remote, "log", "-1", "--format=%B", BRANCH)
    assert f"Autoresearch-Noise-Sd: {late.noise.sd:.3f} (the baseline's composite over 3 seeds)" in body
    # The review commands read the same from B's store: the study's baseline, and the noise beside a trial.
    store = Store(b_root / "runs" / "autoresearch.db")
    log = study_log(store, STUDY)
    assert (log.baseline_composite, log.baseline_elsewhere) == (first.baseline_composite,
                                                                f"trial 0 of worker {first.worker}")
    detail = trial_detail(store, b_root, STUDY, late.outcomes[0].number)
    assert (detail.noise_sd, detail.noise_repeats) == (late.noise.sd, 3)
    store.close()


def test_a_worker_joining_after_a_keep_measures_the_noise_on_the_incumbent_it_joined_at(loop_workspace, tmp_path):
    # B joins after A kept trial 1: it never evaluates the baseline's instructions, so the incumbent it joined at
    # is what its noise, its keeps' noise trailer, its `show` and its forecast are measured on.
    noisy = ONLY_PRODUCER.replace("noise_repeats = 1", "noise_repeats = 3") + "parents = 1\n"
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2, extra=noisy)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    first = study(a_root, SeedJudge(variants=["Answer!\n"]), storage).optimize(n_trials=1)
    (a_keep,) = first.outcomes
    assert a_keep.status == "keep"
    events = []
    late = study(b_root, SeedJudge(variants=["Answer!!\n", "Answer!!!\n"]), storage,
                 observer=lambda kind, data: events.append((kind, data.get("split")))).optimize(n_trials=2)
    b_keep = late.outcomes[0]
    assert b_keep.status == "keep"
    joined = f"the incumbent this worker joined at (trial {a_keep.number})"
    assert late.noise is not None and late.noise.of == joined and late.noise.n >= 2
    body = git(remote, "log", "-1", "--format=%B", b_keep.commit)
    assert f"Autoresearch-Noise-Sd: {late.noise.sd:.3f} (the composite of {joined} over" in body
    kinds = [kind for kind, _ in events]
    assert "forecast" in kinds and kinds.index("forecast") > kinds.index("trial_finished")
    # Before its first screen the incumbent's upfront seed sets; for the race its third set and its holdout
    # tasks, each so named.
    assert [split for kind, split in events if kind == "incumbent"][:4] == ["search", "search", "search", "holdout"]
    console = Console(record=True, width=200)
    print_summary(console, late, load_workspace(b_root))
    assert f"noise      {joined} over {late.noise.n} seeds: " in console.export_text()
    store = Store(b_root / "runs" / "autoresearch.db")
    detail = trial_detail(store, b_root, STUDY, b_keep.number)
    store.close()
    assert detail.noise_of == f"the composite of {joined}" and detail.noise_sd == late.noise.sd


def test_a_worker_joining_late_forecasts_its_remaining_trials_once_it_measured_the_baseline_here(
        loop_workspace, tmp_path):
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    study(a_root, ScriptedPipeline(), storage).optimize(n_trials=0)
    events = []
    b = study(b_root, ScriptedPipeline(variants=["Answer!\n", "Answer!!\n", "Answer!!!\n"]), storage,
              observer=lambda kind, data: events.append((kind, data)))
    summary = b.optimize(n_trials=3)
    # No cost of its own before its first trial, which evaluated the baseline's instructions on this machine.
    kinds = [kind for kind, _ in events if kind in ("forecast", "trial_finished")]
    assert kinds == ["trial_finished", "forecast", "trial_finished", "trial_finished"]
    made = next(data for kind, data in events if kind == "forecast")
    assert (made["after"], made["trials"]) == (1, 2) and "the baseline's screen" in made["basis"]
    assert forecast_line(made).startswith("forecast: 2 more trials ≈ ")
    assert summary.forecast.trials == 2  # checked against the trials after it, not the one before


def test_show_on_a_worker_compares_a_trial_with_the_incumbent_another_worker_kept(loop_workspace, tmp_path):
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    study(a_root, ScriptedPipeline(), storage).optimize(n_trials=0)  # A's baseline is the study's incumbent
    late = study(b_root, ScriptedPipeline(variants=["Answer!\n"]), storage).optimize(n_trials=1)
    (trial,) = late.outcomes
    store = Store(b_root / "runs" / "autoresearch.db")
    detail = trial_detail(store, b_root, STUDY, trial.number)
    store.close()
    # B's store holds no trial 0, but its own evaluation of that incumbent under the screen's seeds.
    assert (detail.before_trial, detail.before_status) == (0, "another worker's")
    assert detail.tasks_total == 2 and all(t.before is not None and t.after is not None for t in detail.tasks
                                           if t.split == "search")
    assert detail.composite_before is not None and detail.joules_per_task_before is not None
    assert "-Answer.\n" in [line + "\n" for line in detail.diff] and "+Answer!" in detail.diff


def test_a_workers_log_and_report_list_the_keeps_other_workers_made(loop_workspace, tmp_path):
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    first = study(a_root, ScriptedPipeline(variants=["Answer!\n"]), storage).optimize(n_trials=1)
    second = study(b_root, ScriptedPipeline(variants=["Answer!!\n"]), storage).optimize(n_trials=1)
    (a_keep,), (b_keep,) = first.outcomes, second.outcomes
    assert (a_keep.status, b_keep.status) == ("keep", "keep")
    store = Store(b_root / "runs" / "autoresearch.db")
    log = study_log(store, STUDY)
    store.close()
    # Newest first: B's own keep, then A's, with the figures and evidence A recorded in the ledger.
    assert [(e.trial, e.worker) for e in log.entries] == [(b_keep.number, ""), (a_keep.number, first.worker)]
    theirs = log.entries[1]
    assert theirs.commit == git(remote, "rev-parse", f"{BRANCH}~1").strip() == a_keep.commit
    assert (theirs.composite, round(theirs.delta, 3), theirs.operator) == (a_keep.composite, round(a_keep.delta, 3),
                                                                           a_keep.operator)
    assert theirs.file == "producer.md" and theirs.holdout_composite == a_keep.holdout_composite
    assert theirs.evidence is not None and theirs.evidence["search"]["tasks"] == 2
    assert theirs.lower_bound == a_keep.evidence.lower_bound and theirs.joules_per_task is None
    assert log.counts.get("keep") == 1  # the trial counts stay this worker's

    console = Console(record=True, width=300)
    print_all(console, log_renderables(log))
    shown = console.export_text()
    assert f"[worker {first.worker}] {a_keep.description}" in shown
    assert "Committed improvements (2, 1 by other workers of the shared study)" in shown
    assert "trials (this worker's): keep 1" in shown
    cli = CliRunner()
    refused = cli.invoke(main, ["show", str(a_keep.number), "-w", str(b_root), "--study", STUDY])
    assert refused.exit_code == 2 and f"was kept by worker {first.worker}" in refused.output
    by_commit = cli.invoke(main, ["show", a_keep.commit[:10], "-w", str(b_root), "--study", STUDY])
    assert by_commit.exit_code == 2 and f"trial {a_keep.number} was kept by worker" in by_commit.output
    report = cli.invoke(main, ["report", "-w", str(b_root), "--study", STUDY, "--open-path-only"])
    assert report.exit_code == 0, report.output
    html = Path(report.output.strip()).read_text()
    assert f"[worker {first.worker}]" in html and f'href="#trial-{a_keep.number}"' not in html


def test_a_worker_takes_parents_from_the_front_of_its_own_screens_weighed_against_the_incumbent(
        loop_workspace, tmp_path):
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2,
                                            extra=ONLY_PRODUCER + 'pruner = "none"\nparents = 3\n')
    storage = f"sqlite:///{tmp_path / 'shared.db'}"

    def score(answer, task):  # "worse" loses both tasks to the incumbent; "special" wins task 0 and loses task 1
        if "special" in answer:
            return 9 if "number 0" in task else 1
        return 4 if "worse" in answer else 6

    study(a_root, ScriptedPipeline(score=score), storage).optimize(n_trials=0)  # the incumbent is A's baseline
    b = study(b_root, ScriptedPipeline(variants=["Answer, worse.\n", "Answer, special.\n"], score=score), storage)
    summary = b.optimize(n_trials=2)
    worse, special = summary.outcomes
    assert (worse.status, special.status) == ("discard", "discard")
    incumbent = b.incumbents.current()
    # B's store has no row of trial 0: its own evaluation of the incumbent stands in for it, so "worse",
    # beaten on every task, is on no front; "special", best on task 0, is a parent.
    front = pareto_front(b.runner.screens(incumbent))
    assert sorted(front) == [0, special.number]
    parents = b.incumbents.parents(incumbent, 3, front)
    assert [p.trial for p in parents] == [0, special.number]
    assert parents[1].instructions["producer.md"] == "Answer, special.\n"


def test_a_keep_recorded_but_never_pushed_is_replayed_once_by_the_next_keeper(loop_workspace, tmp_path, monkeypatch):
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!!\n"])
    monkeypatch.setattr(worker_module, "PUSH_GRACE_S", 0.0)
    real_push = worker_module.InstructionRepo.push
    blocked = {"on": True}

    def push(self, remote_name, branch):  # A's machine loses the network right after its transaction
        if blocked["on"] and Path(self.root) == a_root and self.fetch_branch(remote_name, branch) is not None:
            raise WorkspaceError("network unreachable")
        return real_push(self, remote_name, branch)

    monkeypatch.setattr(worker_module.InstructionRepo, "push", push)
    a = study(a_root, pipeline, storage)
    notes = []
    a.observer = lambda kind, data: kind == "note" and notes.append(data["text"])
    assert [o.status for o in a.optimize(n_trials=1).outcomes] == ["keep"]
    assert any("not pushed yet" in n for n in notes)
    assert remote_keeps(remote) == []
    blocked["on"] = False
    b = study(b_root, pipeline, storage)
    b_notes = []
    b.observer = lambda kind, data: kind == "note" and b_notes.append(data["text"])
    assert [o.status for o in b.optimize(n_trials=1).outcomes] == ["keep"]
    assert any("never pushed" in n for n in b_notes)
    keeps = remote_keeps(remote)
    assert [text for _, text in keeps] == ["Answer!\n", "Answer!!\n"]  # one commit per keep, in order
    assert len({trial for trial, _ in keeps}) == 2
    assert Ledger(storage, STUDY).keeps()[1].commit_sha == git(remote, "rev-parse", f"{BRANCH}~1").strip()


def test_claims_of_one_version_succeed_once(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", "s")
    record = KeepRecord(0, 0, "w1", 3.0, 3.0, None, {"producer.md": "x"}, {}, feedback=_feedback())
    with ledger.claim(record) as claim:
        claim.set_commit("a" * 40)
    with pytest.raises(LostRace):
        with ledger.claim(KeepRecord(0, 5, "w2", 9.0, 9.0, None, {}, {}, feedback=_feedback())):
            pass
    with pytest.raises(RuntimeError):  # an error inside the block rolls the claim back
        with ledger.claim(KeepRecord(1, 2, "w1", 4.0, 4.0, None, {}, {}, feedback=_feedback())):
            raise RuntimeError("git push failed")
    assert [(k.version, k.trial, k.commit_sha) for k in ledger.keeps()] == [(0, 0, "a" * 40)]
    assert ledger.incumbent().feedback == _feedback()


def test_a_worker_with_other_models_or_evaluation_is_refused(loop_workspace, tmp_path):
    _, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    pipeline = ScriptedPipeline(variants=["Answer!\n"])
    study(a_root, pipeline, storage).optimize(n_trials=1)
    config = b_root / "autoresearch.toml"
    config.write_text(config.read_text().replace("temperature = 0.3\nmax_tokens = 280",
                                                 "temperature = 0.9\nmax_tokens = 280", 1))
    git(b_root, "commit", "-qam", "another producer temperature")
    with pytest.raises(WorkspaceError, match="different models"):
        study(b_root, pipeline, storage).optimize(n_trials=1)


def test_a_shared_study_needs_a_remote(loop_workspace, tmp_path):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    with pytest.raises(WorkspaceError, match="no remote 'origin'"):
        study(root, ScriptedPipeline(), f"sqlite:///{tmp_path / 's.db'}").optimize(n_trials=1)
    assert not (root / "runs" / "results.tsv").exists()  # refused before any trial


@pytest.mark.parametrize("args, message", [
    (["--study", "n"], "give --storage URL too"),
    (["--storage", "postgresql://u@db/x"], "name it with --study NAME"),
    (["--storage", "sqlite:///s.db", "--study", "my night"], "--study: 'my night' cannot name a git branch"),
])
def test_cli_refuses_half_a_shared_study(tmp_path, args, message):
    result = CliRunner().invoke(main, ["run", "-w", str(tmp_path), "--trials", "1", *args])
    assert result.exit_code == 2 and message in result.output


def test_status_shows_incumbent_and_workers(loop_workspace, tmp_path):
    _, (a_root,) = shared_setup(loop_workspace, tmp_path, 1)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    study(a_root, ScriptedPipeline(variants=["Answer!\n"]), storage).optimize(n_trials=2)
    result = CliRunner().invoke(main, ["status", "--storage", storage])
    assert result.exit_code == 0, result.output
    assert f"study {STUDY}: incumbent: trial 1 (version 1)" in result.output
    # As `log` says them: trial 2 got no usable variant, which Optuna is told as pruned (its sampler learns from it).
    assert "1 baseline, 1 keep, 1 failed\n" in result.output
    assert "stopped: trials" in result.output
    [entry] = shared_status(storage)
    assert (entry.workers[0]["trials"], entry.workers[0]["keeps"], entry.keeps) == (3, 1, 1)  # baseline + 2
    # Every worker's keeps, from the database alone: the keep's worker, delta, bound and idea.
    assert "keeps of study nightly (every worker's), newest first" in result.output
    console = Console(record=True, width=300)
    console.print(keeps_table(entry))
    (row,) = [line for line in console.export_text().splitlines() if entry.workers[0]["worker"] in line]
    kept = entry.versions[1]
    assert kept.trailers["Autoresearch-Delta"] in row and kept.commit_sha[:10] in row and kept.idea in row
    assert f"{kept.evidence['search']['lower_bound']:+.3f}" in row
    missing = CliRunner().invoke(main, ["status", "--storage", storage, "--study", "other"])
    assert missing.exit_code == 2 and "no such shared study" in missing.output


def test_status_on_a_sqlite_file_that_does_not_exist_says_so_and_creates_nothing(tmp_path):
    typo = tmp_path / "shraed.db"
    result = CliRunner().invoke(main, ["status", "--storage", f"sqlite:///{typo}"])
    assert result.exit_code == 2 and f"no such database file {typo}" in result.output
    assert not typo.exists()


def test_the_status_tables_show_ideas_and_names_as_written_not_as_markup():
    record = KeepRecord(1, 4, "w", 4.0, 4.0, None, {}, {}, _feedback(), file="producer.md", idea="[rule] be brief",
                        trailers={"Autoresearch-Delta": "+0.500"}, evidence={"search": {"lower_bound": 0.2}})
    baseline = KeepRecord(0, 0, "w", 3.5, 3.5, None, {}, {}, _feedback())
    study = "nightly [/x]"  # --study is free text: "[/x]" read as markup is an error
    worker = {"worker": "w", "host": "h", "portfolio": "[big]", "trials": 4, "keeps": 1, "last_seen": 0.0,
              "state": "running"}
    status = StudyStatus(study, record, baseline, 1, {"keep": 1}, [worker], 0, versions=[baseline, record])
    console = Console(record=True, width=300)
    console.print(status_table(status))
    console.print(keeps_table(status))
    shown = console.export_text()
    assert "[rule] be brief" in shown and "+0.200" in shown
    assert f"study {study}: incumbent" in shown and f"keeps of study {study}" in shown and "[big]" in shown


def _feedback():
    from autoresearch.search.proposer import Feedback

    return Feedback(("be brief",), (("depth", 2.0),), (("max_words", 1, "too long"),))


def test_ledger_rows_round_trip_as_json(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", "s")
    record = KeepRecord(0, 3, "w", 1.5, 1.2, 2.0, {"a.md": "é"}, {"revision_rounds": 1}, feedback=_feedback(),
                        file="a.md", subject="s", trailers={"Autoresearch-Trial": "3"})
    with ledger.claim(record):
        pass
    back = ledger.incumbent()
    assert back.instructions == {"a.md": "é"} and back.knobs == {"revision_rounds": 1}
    assert back.trailers == {"Autoresearch-Trial": "3"} and back.holdout_composite == 2.0
    assert back.feedback == _feedback() and back.file == "a.md"


def test_status_reads_a_ledger_an_older_autoresearch_made_without_altering_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    ledger = Ledger(url, "s")
    ledger.register({"evaluation": "e"})
    with ledger.claim(KeepRecord(0, 0, "h:1:a", 4.0, 4.0, None, {"a.md": "x"}, {}, feedback=_feedback())):
        pass
    ledger.heartbeat("h:1:a", workspace="w", portfolio="default", trials=1, keeps=0, state="running")
    ledger.close()
    conn = sqlite3.connect(tmp_path / "old.db")  # as before the columns added since were there
    added = [("autoresearch_keeps", "idea"), ("autoresearch_keeps", "evidence_json"), ("autoresearch_workers", "models")]
    for table, column in added:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(main, ["status", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "study s: incumbent: trial 0 (version 0), composite 4.000" in result.output and "h:1:a" in result.output
    conn = sqlite3.connect(tmp_path / "old.db")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(autoresearch_workers)")}
    conn.close()
    assert "models" not in columns  # read, not altered: the workers still at work own it


def _identity(quantization: str) -> str:
    return json.dumps({role: f"gguf {quantization}" for role in ("evaluator", "planner", "producer")}, sort_keys=True)


def test_status_says_which_workers_run_other_models_and_how_they_differ(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(url, "s")
    ledger.register({"evaluation": "e"})
    for worker, quantization in (("h:1:a", "Q4_1"), ("h:2:b", "Q8_0"), ("h:3:c", "Q4_1")):
        ledger.heartbeat(worker, workspace="w", portfolio="default", trials=1, keeps=0, state="running",
                         models=_identity(quantization))
        time.sleep(0.01)  # seen in this order: c the most recently
    ledger.close()
    (entry,) = shared_status(url)
    console = Console(record=True, width=300)
    console.print(status_table(entry))
    shown = console.export_text()
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in shown.splitlines() if line.startswith("│ h:")]
    rows = {row[0]: row[3] for row in cells}  # worker → models
    assert rows == {"h:3:c": "A", "h:2:b": "B", "h:1:a": "A"}
    assert "models B: planner, producer, evaluator: gguf Q4_1 → gguf Q8_0" in shown
    assert "workers on other models score every variant themselves: they share no scores" in shown
    ledger = Ledger(url, "s")
    ledger.heartbeat("h:2:b", workspace="w", portfolio="default", trials=2, keeps=0, state="running",
                     models=_identity("Q4_1"))
    ledger.close()
    console = Console(record=True, width=300)
    console.print(status_table(shared_status(url)[0]))
    assert "models" not in console.export_text()  # all on one model again: no column, no caption


def test_a_shared_workers_heartbeat_says_which_models_score_its_trials(loop_workspace, tmp_path):
    _, (root,) = shared_setup(loop_workspace, tmp_path, 1)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    study(root, ScriptedPipeline(variants=["Answer, A.\n"]), storage, model="Q4_1").optimize(n_trials=1)
    ledger = Ledger(storage, STUDY)
    (seen,) = workers(ledger)
    ledger.close()
    assert json.loads(seen["models"])["producer"] == "Q4_1"


def test_the_running_trial_of_a_worker_that_died_is_failed_after_the_grace_period(loop_workspace, tmp_path,
                                                                                  monkeypatch):
    import optuna
    from optuna.trial import TrialState

    from autoresearch.search import incumbents as sharing

    monkeypatch.setattr(sharing, "TRIAL_HEARTBEAT_S", 1)
    monkeypatch.setattr(sharing, "TRIAL_GRACE_S", 1)
    _, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!!\n"])
    study(a_root, pipeline, storage).optimize(n_trials=1)
    # A worker on another machine asks for a trial, beats once, and dies (never tells).
    rdb = optuna.storages.RDBStorage(storage, heartbeat_interval=1, grace_period=1)
    dead = optuna.load_study(study_name=STUDY, storage=rdb).ask()
    rdb.record_heartbeat(dead._trial_id)
    time.sleep(2.5)
    study(b_root, pipeline, storage).optimize(n_trials=1)
    states = {t.number: t.state for t in optuna.load_study(study_name=STUDY, storage=storage).get_trials()}
    assert states[dead.number] == TrialState.FAIL
    assert TrialState.RUNNING not in states.values()


def test_a_shared_run_whose_database_goes_away_stops_with_one_line(loop_workspace, tmp_path, monkeypatch):
    import sqlalchemy

    _, (a_root,) = shared_setup(loop_workspace, tmp_path, 1)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    real, real_keeps = Ledger.incumbent, Ledger.keeps
    down = []

    def gone():
        return sqlalchemy.exc.OperationalError("SELECT", {}, ConnectionError("connection refused"))

    def incumbent(self):  # once the baseline is in, every read finds the database gone (the summary's among them)
        if down:
            raise gone()
        return real(self)

    def keeps(self):
        if down:
            raise gone()
        return real_keeps(self)

    def observer(kind, data):
        if kind == "forecast":  # made from the finished baseline, before the first trial reads the incumbent
            down.append(1)

    monkeypatch.setattr(Ledger, "incumbent", incumbent)
    monkeypatch.setattr(Ledger, "keeps", keeps)
    summary = study(a_root, ScriptedPipeline(variants=["Answer!\n"]), storage,
                    observer=observer).optimize(n_trials=2)
    assert summary.stop_reason == "storage_down"
    assert "is unreachable (connection refused)" in summary.stop_message and "resume" in summary.stop_message
    assert summary.counts == {"baseline": 1}  # the finished baseline is kept
    assert summary.baseline_composite is not None  # this worker's own baseline, read from its store
    # The database file answered the wait's probe at once, so the run resumed; its start-up found it gone again.
    assert summary.notes[-2] == (f"the study's database at {storage} was lost (connection refused) and answers again; "
                                 "the run resumes as the same command would: start-up repairs, then the next trial")
    assert summary.notes[-1].startswith("the resumed run could not start: (builtins.ConnectionError) connection "
                                        "refused")


def test_a_database_lost_again_before_a_resumed_run_finishes_a_trial_stops_the_run(loop_workspace, tmp_path,
                                                                                   monkeypatch):
    # The database answers the wait's probe but not the run's reads: resuming again and again would never end.
    import sqlalchemy

    _, (a_root,) = shared_setup(loop_workspace, tmp_path, 1)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    reads = []

    def refresh(self, incumbent):
        reads.append(1)
        if len(reads) > 10:
            raise AssertionError("still resuming")
        raise sqlalchemy.exc.OperationalError("SELECT", {}, ConnectionError("connection refused"))

    monkeypatch.setattr(SharedIncumbents, "refresh", refresh)
    summary = study(a_root, ScriptedPipeline(variants=["Answer!\n"]), storage).optimize(n_trials=2)
    assert summary.stop_reason == "storage_down" and len(reads) == 2  # the run, and one resume
    assert sum("the run resumes" in note for note in summary.notes) == 1


def test_a_restarted_worker_pushes_its_own_keep_that_was_never_pushed(loop_workspace, tmp_path, monkeypatch):
    remote, (a_root,) = shared_setup(loop_workspace, tmp_path, 1)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    real_push = worker_module.InstructionRepo.push
    blocked = {"on": True}

    def push(self, remote_name, branch):  # the network drops right after the keep's transaction
        if blocked["on"] and self.fetch_branch(remote_name, branch) is not None:
            raise WorkspaceError("network unreachable")
        return real_push(self, remote_name, branch)

    monkeypatch.setattr(worker_module.InstructionRepo, "push", push)
    pipeline = ScriptedPipeline(variants=["Answer!\n"])
    kept = study(a_root, pipeline, storage).optimize(n_trials=1).outcomes[0]
    assert kept.status == "keep" and remote_keeps(remote) == []
    blocked["on"] = False
    again = study(a_root, pipeline, storage)
    notes = []
    again.observer = lambda kind, data: kind == "note" and notes.append(data["text"])
    again.optimize(n_trials=1)
    assert remote_keeps(remote) == [(str(kept.number), "Answer!\n")]
    assert any("not pushed then" in n for n in notes)
    row = Store.for_workspace(a_root / "runs").trial(STUDY, kept.number)
    assert row["status"] == "keep" and row["commit_sha"] == git(remote, "rev-parse", BRANCH).strip()


def test_workers_share_one_memory_of_ideas_variants_and_the_plateau(loop_workspace, tmp_path):
    remote, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    level = lambda answer, task: 5  # every variant scores as the incumbent does: each trial is a discard
    first = ScriptedPipeline(variants=["Answer, A.\n", "Answer, B.\n"], score=level)
    a = study(a_root, first, storage).optimize(n_trials=2)
    assert [o.status for o in a.outcomes] == ["discard", "discard"]
    second = ScriptedPipeline(variants=["Answer, A.\n", "Answer, C.\n"], score=level)
    b = study(b_root, second, storage).optimize(n_trials=5, plateau=3)
    # B's first proposal is A's first variant: not evaluated again, though B's own store never saw it.
    (twin,) = b.outcomes
    assert twin.status == "discard" and twin.description.startswith(f"identical to trial {a.outcomes[0].number} (worker")
    assert second.calls_by_role.get("evaluator", 0) == 0
    # --plateau counted A's two discards too: B stopped after its one trial, the third without a keep.
    assert b.stop_reason == "plateau"
    # And B's proposer was told what A had tried.
    (request,) = [r for r in second.backend.requests if second.role_of(r) == "proposer"]
    assert "variant 1 (discard" in request.messages[-1].content and "variant 2 (discard" in request.messages[-1].content


def test_a_variant_another_worker_scored_with_other_models_is_evaluated_again(loop_workspace, tmp_path):
    _, (a_root, b_root, c_root) = shared_setup(loop_workspace, tmp_path, 3)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    level = lambda answer, task: 5  # every variant scores as the incumbent does: each trial is a discard
    first = ScriptedPipeline(variants=["Answer, A.\n"], score=level)
    (a,) = study(a_root, first, storage, model="Q4_1").optimize(n_trials=1).outcomes
    # B's models have the same names (the study admits it) but are another quantization: A's score is not its.
    second = ScriptedPipeline(variants=["Answer, A.\n"], score=level)
    (b,) = study(b_root, second, storage, model="Q8_0").optimize(n_trials=1).outcomes
    assert b.status == "discard" and "identical" not in b.description
    assert second.calls_by_role.get("evaluator", 0) > 0
    # A third worker on A's models reuses either's score of that variant: its own models' (A's).
    third = ScriptedPipeline(variants=["Answer, A.\n"], score=level)
    (c,) = study(c_root, third, storage, model="Q4_1").optimize(n_trials=1).outcomes
    assert c.description.startswith(f"identical to trial {a.number} (worker")
    assert third.calls_by_role.get("evaluator", 0) == 0


def test_a_worker_whose_models_change_during_the_run_scores_the_incumbent_again_without_a_baseline(
        loop_workspace, tmp_path):
    _, (root,) = shared_setup(loop_workspace, tmp_path, 1)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    serving = {"model": "Q4_1"}

    def propose(parent: str) -> tuple[str, str]:
        serving["model"] = "Q8_0"  # re-quantized behind the same name while trial 1 runs
        return "one more mark", parent.rstrip("\n") + ",\n"

    run = study(root, ScriptedPipeline(propose=propose, score=lambda answer, task: 5), storage,
                model=lambda: serving["model"])
    summary = run.optimize(n_trials=2)
    assert [(o.number, o.status) for o in summary.outcomes] == [(1, "discard"), (2, "discard")]  # no baseline
    swapped, = [n for n in summary.notes if "during the run" in n]
    assert swapped.startswith("the models changed (planner, producer, evaluator: Q4_1 → Q8_0) during the run: this "
                              "worker reuses none of its scores made before")
    store = Store.for_workspace(root / "runs")
    try:  # trial 2 scored the study's incumbent (trial 0) again, under the new models
        rows = store.conn.execute("SELECT kind, models FROM evaluations WHERE trial = 2").fetchall()
    finally:
        store.close()
    assert "incumbent" in {r["kind"] for r in rows}
    assert all(json.loads(r["models"])["producer"] == "Q8_0" for r in rows)


def test_a_worker_whose_models_changed_since_its_last_run_says_so_and_scores_the_incumbent_again(
        loop_workspace, tmp_path):
    _, (root,) = shared_setup(loop_workspace, tmp_path, 1)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    level = lambda answer, task: 5
    study(root, ScriptedPipeline(variants=["Answer, A.\n"], score=level), storage, model="Q4_1").optimize(n_trials=1)
    again = study(root, ScriptedPipeline(variants=["Answer, A.\n"], score=level), storage, model="Q8_0")
    summary = again.optimize(n_trials=1)
    (trial,) = summary.outcomes
    assert "identical" not in trial.description  # its own earlier score of that variant was the other models'
    changed, = [n for n in summary.notes if "changed" in n]
    assert changed.startswith("the models changed (planner, producer, evaluator: Q4_1 → Q8_0) since this worker's "
                              "last evaluation in the study: this worker reuses none")


PRUNING = ('\n[search]\noperators = ["rephrase"]\nproposer_temperatures = [0.5]\nnoise_repeats = 2\n'
           'pruner = "paired"\n')


def hopeless() -> ScriptedPipeline:
    """A pipeline whose one variant the paired pruner stops after its first task (see test_pruning.py)."""
    rng = random.Random(5)  # the judge's seed-to-seed wobble, so that the incumbent's noise is measured
    return ScriptedPipeline(variants=["Answer worse.\n"],
                            score=lambda answer, task: (1 if "worse" in answer else 8) + rng.choice([0, 1]))


def test_a_variant_another_worker_pruned_against_this_incumbent_is_not_screened_again(loop_workspace, tmp_path):
    _, (a_root, b_root) = shared_setup(loop_workspace, tmp_path, 2, search_tasks=3, extra=PRUNING)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    (pruned,) = study(a_root, hopeless(), storage).optimize(n_trials=1).outcomes
    assert pruned.status == "pruned"
    second = hopeless()
    (again,) = study(b_root, second, storage).optimize(n_trials=1).outcomes
    # B's own store never saw A's trial: the ledger told it, with the incumbent A was pruned against.
    assert again.status == "pruned"
    assert again.description.startswith(f"identical to trial {pruned.number}, pruned against this incumbent")
    assert second.calls_by_role.get("producer", 0) == 0  # no task ran
    row = Store.for_workspace(b_root / "runs").trial(STUDY, again.number)
    assert row["evaluation_id"] is None


def _trial_row(number: int, status: str, variant: str, incumbent_before: float | None) -> sqlite3.Row:
    """A store trials row (sqlite3.Row, as Store.trial returns) with the columns record_trial reads."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    return conn.execute("SELECT ? AS number, ? AS status, 'producer.md' AS file, 'idea' AS idea, NULL AS delta,"
                        " ? AS variant_hash, NULL AS composite, NULL AS objective, ? AS incumbent_before",
                        (number, status, variant, incumbent_before)).fetchone()


class _Worker:
    def __init__(self, ledger: Ledger):
        self.ledger, self.worker = ledger, "b"


def test_pruned_twin_reads_every_workers_pruned_trials_with_their_incumbent(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", "s")
    ledger.record_trial("a", _trial_row(1, "pruned", "v1", 5.0))
    ledger.record_trial("a", _trial_row(2, "pruned", "v2", 4.0))  # pruned against an earlier incumbent
    ledger.record_trial("a", _trial_row(3, "discard", "v3", 5.0))
    store = Store.for_workspace(tmp_path / "runs")  # worker b's own store: empty
    shared = SharedIncumbents(store, None, "s", _Worker(ledger), "", "")
    incumbent = Incumbent(0, 5.0, {}, {}, None, None, 5.0)
    assert shared.pruned_twin("v1", incumbent)["number"] == 1
    assert shared.evaluated("v1", incumbent)["status"] == "pruned"
    assert shared.pruned_twin("v2", incumbent) is None  # the incumbent has changed since: screen it again
    assert shared.pruned_twin("v3", incumbent) is None
    assert shared.pruned_twin("v9", incumbent) is None


def test_ledger_twins_are_reused_only_by_a_worker_whose_models_scored_them(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", "s")
    ledger.record_trial("a", _trial_row(1, "pruned", "v1", 5.0), models="Q4_1")
    scored = _trial_row(2, "discard", "v2", 5.0)
    ledger.record_trial("a", {**dict(scored), "composite": 5.0, "objective": 5.0}, models="Q4_1")
    ledger.record_trial("a", _trial_row(3, "pruned", "v3", 5.0))  # recorded before the ledger kept models
    store = Store.for_workspace(tmp_path / "runs")
    shared = SharedIncumbents(store, None, "s", _Worker(ledger), "", "")
    incumbent = Incumbent(0, 5.0, {}, {}, None, None, 5.0)
    store.models = "Q8_0"
    assert shared.evaluated("v1", incumbent) is None and shared.evaluated("v2", incumbent) is None
    assert shared.evaluated("v3", incumbent) is None  # made by models nobody knows
    store.models = "Q4_1"
    assert shared.evaluated("v1", incumbent)["number"] == 1 and shared.evaluated("v2", incumbent)["number"] == 2
    assert shared.evaluated("v3", incumbent) is None


def test_an_older_ledger_gains_the_incumbent_column_when_opened(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    conn = sqlite3.connect(tmp_path / "old.db")  # autoresearch_tried as the first version made it
    conn.execute("CREATE TABLE autoresearch_tried (study VARCHAR(512) NOT NULL, trial INTEGER NOT NULL,"
                 " worker VARCHAR(256) NOT NULL, status VARCHAR(32) NOT NULL, file VARCHAR(512), idea TEXT,"
                 " delta FLOAT, variant_hash VARCHAR(64), composite FLOAT, objective FLOAT,"
                 " finished_at FLOAT NOT NULL, PRIMARY KEY (study, trial))")
    conn.execute("INSERT INTO autoresearch_tried VALUES ('s', 1, 'a', 'discard', 'producer.md', 'old', 0.1,"
                 " 'v0', 3.0, 3.0, 1.0)")
    conn.commit()
    conn.close()
    ledger = Ledger(url, "s")
    ledger.record_trial("b", _trial_row(2, "pruned", "v1", 5.0), models="Q4_1")
    assert [(r["number"], r["incumbent_before"], r["models"]) for r in ledger.tried()] == [(1, None, None),
                                                                                          (2, 5.0, "Q4_1")]
    ledger.close()
    Ledger(url, "s").close()  # opened again: the column is there, nothing to add


def test_an_older_ledger_gains_the_evidence_column_and_reads_its_keeps_without_evidence(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    conn = sqlite3.connect(tmp_path / "old.db")  # autoresearch_keeps before evidence_json
    conn.execute("CREATE TABLE autoresearch_keeps (study VARCHAR(512) NOT NULL, version INTEGER NOT NULL,"
                 " trial INTEGER NOT NULL, worker VARCHAR(256) NOT NULL, file VARCHAR(512), composite FLOAT NOT NULL,"
                 " objective FLOAT NOT NULL, holdout_composite FLOAT, instructions_json TEXT NOT NULL,"
                 " knobs_json TEXT NOT NULL, feedback_json TEXT NOT NULL, message_json TEXT NOT NULL,"
                 " commit_sha VARCHAR(64), created_at FLOAT NOT NULL, PRIMARY KEY (study, version))")
    feedback = '{"critiques": [], "weakest_dimensions": [], "failing_criteria": []}'
    conn.execute(f"""INSERT INTO autoresearch_keeps VALUES ('s', 0, 0, 'a', NULL, 3.0, 3.0, NULL, '{{}}', '{{}}',"""
                 f""" '{feedback}', '["", {{}}]', 'abc', 1.0)""")
    conn.commit()
    conn.close()
    ledger = Ledger(url, "s")
    (old,) = ledger.keeps()
    assert old.evidence is None
    with ledger.claim(KeepRecord(1, 4, "b", 4.0, 4.0, None, {"p.md": "x"}, {}, old.feedback, file="p.md",
                                 evidence={"keep": True})):
        pass
    assert [k.evidence for k in ledger.keeps()] == [None, {"keep": True}]
    ledger.close()


def test_a_shared_keep_is_pushed_without_the_repositorys_pre_push_hook(loop_workspace, tmp_path):
    # A pre-push hook (a test suite, a linter) ran on every push of a keep, and one that failed lost it.
    remote, (root,) = shared_setup(loop_workspace, tmp_path, 1)
    hook = root / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\necho 'running the test suite…' >&2\nexit 1\n")
    hook.chmod(0o755)
    summary = study(root, ScriptedPipeline(variants=["Answer!\n"]), f"sqlite:///{tmp_path / 'shared.db'}").optimize(
        n_trials=1)
    assert [o.status for o in summary.outcomes] == ["keep"]
    assert [text for _, text in remote_keeps(remote)] == ["Answer!\n"]


def test_status_counts_finished_trials_as_log_does_and_running_ones_from_optuna(tmp_path):
    from autoresearch.search.shared.status import _trial_counts

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    tried = ["failed", "baseline", "discard", "pruned", "discard", "keep"]
    assert _trial_counts(url, "none", Counter(tried)) == {"baseline": 1, "keep": 1, "discard": 2, "pruned": 1,
                                                          "failed": 1}
    optuna.create_study(study_name="night", storage=url).ask()  # a trial running now
    counts = _trial_counts(url, "night", Counter(tried[:2]))
    assert list(counts.items()) == [("baseline", 1), ("failed", 1), ("running", 1)]
