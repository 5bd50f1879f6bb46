"""The workspace's HEAD moving under a run (`git checkout` in the workspace, or a commit of the user's on the study
branch): no keep is committed off the study branch or over that commit; the run stops and says why."""

from __future__ import annotations

from click.testing import CliRunner
from scripted import ONLY_PRODUCER, ScriptedPipeline, git, producer_only

from autoresearch.cli.main import main
from autoresearch.lm import preflight
from autoresearch.pipeline import harness
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace

KEEPS = ["Answer!\n", "Answer!!\n", "Answer!!!\n"]  # each beats the one before: every trial is a keep


def _study(root) -> Study:
    return Study(load_workspace(root), backend_factory=ScriptedPipeline(variants=KEEPS).factory, seed=1, backoff_s=0)


def _tips(root) -> dict[str, str]:
    return dict(line.split() for line in git(root, "for-each-ref", "--format=%(refname:short) %(objectname)",
                                            "refs/heads").splitlines())


def test_a_checkout_during_a_trial_commits_no_keep_on_the_branch_checked_out(loop_workspace):
    # The keep was committed on whatever HEAD was: a user who checked out their own branch mid-run found the
    # run's keeps on it.
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    start = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    study = _study(root)

    def observer(kind, data):
        if kind == "holdout" and data["trial"] == 1:  # trial 1 passed the keep rule; its commit comes next
            git(root, "checkout", "-q", start)
            observer.tips = _tips(root)

    study.observer = observer
    summary = study.optimize(n_trials=3)
    assert summary.stop_reason == "head_moved"
    assert summary.stop_message.startswith("trial 1 passed the keep rule (")
    assert summary.stop_message.endswith(
        f"and was not committed: the workspace was switched to branch {start} during the run; keeps are committed "
        f"only on the study's branch {summary.branch}: `git checkout {summary.branch}` and run the same command to "
        "resume")
    assert _tips(root) == observer.tips  # no branch moved: nothing committed on either
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == start  # the user's checkout left as it is
    row = Store.for_workspace(root / "runs").trial(study.name, 1)
    assert row["status"] == "interrupted" and row["commit_sha"] is None
    assert row["note"] == "passed the keep rule, not committed: HEAD moved during the run"
    assert git(root, "status", "--porcelain") == ""


def test_a_checkout_between_trials_stops_the_run_before_the_next(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    start = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    study = _study(root)
    study.observer = lambda kind, data: (kind == "trial_finished" and data["outcome"].number == 1
                                         and git(root, "checkout", "-q", start))
    summary = study.optimize(n_trials=3)
    assert [(o.number, o.status) for o in summary.outcomes] == [(1, "keep")]
    assert summary.stop_reason == "head_moved" and summary.stop_message.startswith(
        f"the workspace was switched to branch {start} during the run")
    assert git(root, "log", "-1", "--format=%s", start).strip() == "only producer"  # the user's branch: untouched
    assert git(root, "log", "-1", "--format=%s", summary.branch).startswith("autoresearch: producer.md")


def test_a_detached_head_during_the_run_stops_it(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    study = _study(root)
    study.observer = lambda kind, data: (kind == "holdout" and data["trial"] == 1
                                         and git(root, "checkout", "-q", "--detach"))
    summary = study.optimize(n_trials=3)
    assert summary.stop_reason == "head_moved" and "not committed: HEAD was detached during the run" in \
        summary.stop_message


def test_a_commit_of_the_users_on_the_study_branch_during_a_trial_is_not_committed_over(loop_workspace):
    # The keep was committed on top of it: the user's producer.md replaced by the variant, and its gain claimed
    # against instructions HEAD no longer held.
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    study = _study(root)

    def observer(kind, data):
        if kind == "holdout" and data["trial"] == 1:
            (root / "instructions" / "producer.md").write_text("Answer plainly.\n")
            git(root, "commit", "-qam", "my edit at 3 a.m.")

    study.observer = observer
    summary = study.optimize(n_trials=3)
    assert summary.stop_reason == "head_moved"
    assert "instructions/producer.md at HEAD (" in summary.stop_message and '"my edit at 3 a.m.")' in \
        summary.stop_message and "changed during the run" in summary.stop_message
    assert git(root, "log", "-1", "--format=%s").strip() == "my edit at 3 a.m."  # nothing on top of it
    assert (root / "instructions" / "producer.md").read_text() == "Answer plainly.\n"
    # The next run starts from that commit, as from any edit of the user's between runs.
    resumed = _study(root).optimize(n_trials=1)
    assert any("evaluated as a new baseline" in note for note in resumed.notes)
    rows = Store.for_workspace(root / "runs").trials(study.name)
    assert [(r["number"], r["status"]) for r in rows][:3] == [(0, "baseline"), (1, "interrupted"), (2, "baseline")]


def test_the_cli_says_head_moved_and_exits_1(loop_workspace, monkeypatch):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    start = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    pipeline = ScriptedPipeline(variants=KEEPS)
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    from autoresearch.cli import live
    on_event = live.LiveView.on_event

    def checkout_after_trial_1(self, kind, data):
        on_event(self, kind, data)
        if kind == "trial_finished" and data["outcome"].number == 1:
            git(root, "checkout", "-q", start)

    monkeypatch.setattr(live.LiveView, "on_event", checkout_after_trial_1)
    result = CliRunner().invoke(main, ["run", "-w", str(root), "--trials", "3"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "— stopped: the workspace's git HEAD moved" in text
    assert f"head_moved: the workspace was switched to branch {start} during the run" in text
