"""The loop on a backend that fails: faults are recorded by mode, failed trials are never kept, and a
backend that stays down stops the run with one line saying which backend and why; the run resumes later."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from rich.console import Console
from scripted import ONLY_PRODUCER, ScriptedPipeline, git, producer_only

from autoresearch.cli.live import print_summary
from autoresearch.lm.backends import FaultyBackend
from autoresearch.lm.backends.base import ChatMessage, CompletionRequest
from autoresearch.lm.backends.faults import MODES
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.store.queries import role_usage_rows
from autoresearch.workspace.workspace import load_workspace


class Faulty:
    """A ScriptedPipeline behind a FaultyBackend, as a backend_factory."""

    def __init__(self, variants, share, modes=MODES, seed=0):
        self.pipeline = ScriptedPipeline(variants=variants)
        self.backend = FaultyBackend(self.pipeline.backend, share=share, modes=modes, seed=seed)

    def factory(self, role_config, backends_config):
        return self.backend


def study(root, faulty, **kw):
    return Study(load_workspace(root), backend_factory=faulty.factory, seed=1, backoff_s=0, **kw)


def failure_modes(store, name):
    rows = store.conn.execute("SELECT failure_mode, COUNT(*) FROM calls WHERE study=? AND status='failed'"
                              " GROUP BY failure_mode", (name,)).fetchall()
    return {r[0]: r[1] for r in rows}


def test_a_study_on_a_flaky_backend_completes_and_records_every_failure_mode(loop_workspace):
    # Every call made: the faults fall on calls, and reused replies would leave fewer of them to fall on.
    root = producer_only(loop_workspace(search_tasks=3, extra=ONLY_PRODUCER, reuse_replies=False))
    variants = [f"Answer{'!' * (i % 4)} v{i}\n" for i in range(12)]
    faulty = Faulty(variants, share=0.12, seed=2)
    summary = study(root, faulty).optimize(n_trials=12)

    # Completes: all 12 trials ran (12 % faults never fail 3 trials in a row, so the backend is never "down").
    assert summary.stop_reason == "trials" and len(summary.outcomes) == 12
    store = Store.for_workspace(root / "runs")
    modes = failure_modes(store, summary.study)
    assert set(faulty.backend.injected) == set(MODES)
    # Every injected fault is a failed call with its mode (retries included). An empty reply is recorded
    # as "unparseable", and a garbled one fails only where JSON was asked for.
    for mode in ("timeout", "unreachable", "server_error", "malformed_response", "context_length"):
        assert modes.get(mode) == faulty.backend.injected[mode], mode
    injected = faulty.backend.injected
    assert injected["empty"] < modes["unparseable"] <= injected["empty"] + injected["unparseable"]
    assert summary.counts.get("failed", 0) >= 1 and summary.counts.get("keep", 0) >= 1
    # A trial with too many failed tasks is failed, never kept; keeps are the trials that failed little.
    for row in store.trials(summary.study):
        if row["evaluation_id"] is None or row["status"] == "pruned":
            continue
        tasks = store.task_results(row["evaluation_id"])
        share = sum(t["failed"] for t in tasks) / len(tasks)
        if share > 0.5:
            assert row["status"] == "failed", (row["number"], share)
        if row["status"] == "keep":
            assert share <= 0.5
    # The run summary has the completion rate of each role and model.
    rates = {(r["role"], r["model"]): r["completion_rate"] for r in summary.roles}
    assert set(r for r, _ in rates) == {"planner", "producer", "evaluator", "proposer"}
    assert all(0 < rate <= 1 for rate in rates.values()) and min(rates.values()) < 1
    # Of the calls that reached the model: a refused connection (an injected "unreachable") is not its failure.
    calls = store.conn.execute("SELECT role, status, failure_mode FROM calls WHERE study=?",
                               (summary.study,)).fetchall()
    report = {r["role"]: r["completed"] for r in role_usage_rows(store, summary.study)}
    assert any(c["failure_mode"] == "unreachable" and c["role"] != "proposer" for c in calls)  # the rule is tested
    for role in ("planner", "producer", "evaluator"):
        reached = [c for c in calls if c["role"] == role and c["failure_mode"] != "unreachable"]
        rate = sum(c["status"] == "ok" for c in reached) / len(reached)
        assert rates[(role, "smollm2-135m")] == pytest.approx(rate) and report[role] == pytest.approx(rate), role


def test_retryable_faults_are_retried_and_others_are_not(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    faulty = Faulty(["Answer!\n"], share=1.0, modes=("server_error",))
    summary = study(root, faulty, retries=2).optimize(n_trials=1)
    calls = Store.for_workspace(root / "runs").conn.execute(
        "SELECT task_id, role, failure_mode FROM calls WHERE study=?", (summary.study,)).fetchall()
    # Each logical call: 1 + 2 retries, all recorded; the planner never gets through, so each task is one call.
    per_task = Counter(c["task_id"] for c in calls)
    assert set(per_task.values()) == {3}
    assert {c["failure_mode"] for c in calls} == {"server_error"}


def test_context_length_is_not_retried(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    faulty = Faulty(["Answer!\n"], share=1.0, modes=("context_length",))
    summary = study(root, faulty, retries=2).optimize(n_trials=1)
    calls = Store.for_workspace(root / "runs").conn.execute(
        "SELECT task_id FROM calls WHERE study=?", (summary.study,)).fetchall()
    assert set(Counter(c["task_id"] for c in calls).values()) == {1}


def test_a_backend_down_from_the_start_stops_the_run_with_one_line(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    faulty = Faulty(["Answer!\n"], share=1.0, modes=("unreachable", "timeout"))
    summary = study(root, faulty).optimize(n_trials=5)
    assert summary.stop_reason == "backend_down"
    assert summary.outcomes == [] and summary.baseline_composite is None
    assert "\n" not in summary.stop_message
    assert summary.stop_message.startswith("the baseline failed: fake smollm2-135m")
    assert "unreachable" in summary.stop_message and "timeout" in summary.stop_message
    store = Store.for_workspace(root / "runs")
    assert [r["status"] for r in store.trials(summary.study)] == ["failed"]
    console = Console(record=True, width=200)
    print_summary(console, summary, load_workspace(root))
    text = console.export_text()
    assert "backend_down: the baseline failed: fake smollm2-135m" in text and "no baseline yet" in text
    assert re.search(r"planner\s+smollm2-135m\s+6\s+0%", text)  # calls and completion rate per role and model

    # The backend comes back: the same command resumes, with a new baseline.
    faulty.backend.share = 0.0
    resumed = study(root, faulty).optimize(n_trials=1)
    assert [r["status"] for r in store.trials(summary.study)] == ["failed", "baseline", "keep"]
    assert resumed.baseline_composite is not None


def failing_after_trial_1(root, mode: str, variants: int):
    """A study on a backend whose every call fails in `mode` once trial 1 has finished, and that backend."""
    faulty = Faulty([f"Answer{'!' * i}\n" for i in range(1, variants + 1)], share=0.0, modes=(mode,))
    s = study(root, faulty)

    def observer(kind, data):
        if kind == "trial_finished" and data["outcome"].number == 1:
            faulty.backend.share = 1.0

    s.observer = observer
    return s, faulty


def test_replies_that_cannot_be_parsed_never_count_as_the_backend_being_down(loop_workspace):
    # SmolLM2 now and then answers the proposer or the judge with text the engine rejects; the backend is up.
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER), "max_consecutive_failed = 2\n")
    s, _ = failing_after_trial_1(root, "unparseable", 19)  # every reply after trial 1 is cut off mid-JSON
    summary = s.optimize(n_trials=20)
    statuses = [o.status for o in summary.outcomes]
    assert statuses == ["keep"] + ["failed"] * 10  # the longer streak (2 × 5), not the backend-down one (2)
    assert summary.stop_reason == "failed_trials"
    assert summary.stop_message.startswith("10 trials in a row got no usable variant: fake smollm2-135m")
    assert "unparseable ×" in summary.stop_message and "the model answered" in summary.stop_message
    assert "resume once it is back" not in summary.stop_message


@pytest.mark.parametrize("mode, last_error", [("server_error", "HTTP 503"),
                                               ("malformed_response", "the server sent a non-JSON body")])
def test_consecutive_failed_trials_stop_the_run_naming_the_backend_and_modes(loop_workspace, mode, last_error):
    # A server that errors, or keeps sending bodies that break its API, is down: the model never got to answer.
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER), "max_consecutive_failed = 2\n")
    s, faulty = failing_after_trial_1(root, mode, 8)  # the server goes bad after trial 1
    summary = s.optimize(n_trials=10)
    assert summary.stop_reason == "backend_down"
    assert [o.status for o in summary.outcomes] == ["keep", "failed", "failed"]
    assert summary.stop_message.startswith("2 trials in a row failed: fake smollm2-135m")
    assert f"{mode} ×" in summary.stop_message and f"(last error: injected fault: {last_error}" in summary.stop_message
    assert "resume" in summary.stop_message and "\n" not in summary.stop_message
    faulty.backend.share = 0.0
    resumed = study(root, faulty).optimize(n_trials=1)
    assert resumed.stop_reason == "trials" and resumed.outcomes[0].number == 4


def test_the_fault_share_is_honoured_and_seeded():
    inner = ScriptedPipeline().backend
    request = CompletionRequest(model="m", messages=(ChatMessage("system", "x"), ChatMessage("user", "y")))
    runs = []
    for _ in range(2):
        faulty = FaultyBackend(inner, share=0.25, seed=7)
        outcome = []
        for _ in range(400):
            try:
                outcome.append(faulty.complete(request).text or "empty")
            except Exception as exc:  # noqa: BLE001 - every mode is a typed BackendError
                outcome.append(type(exc).__name__)
        runs.append(outcome)
    assert runs[0] == runs[1]
    assert 60 < sum(faulty.injected.values()) < 140
    with pytest.raises(ValueError, match="unknown fault mode"):
        FaultyBackend(inner, modes=("gremlins",))


def test_a_variant_whose_score_lost_a_task_to_a_fault_is_evaluated_again(loop_workspace):
    from autoresearch.errors import ContextLengthExceeded

    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    judged = {"n": 0}

    def score(answer, task):
        judged["n"] += 1
        if judged["n"] == 4:  # trial 1's first search task (the baseline judged 2 search + 1 holdout)
            raise ContextLengthExceeded("scripted fault", backend="fake", model="smollm2-135m")
        return answer.count("!")

    pipeline = ScriptedPipeline(variants=["Answer!\n", "Answer!\n"], score=score)
    summary = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=2)
    first, second = summary.outcomes
    assert first.status == "discard"  # one of two tasks failed: scored low, not failed, not kept
    assert "identical" not in second.description and second.status == "keep"


class TaskOneDown(ScriptedPipeline):
    """Every call about task t1 fails (connection refused) while `down` is set."""

    down = True

    def respond(self, request):
        if self.down and any("Task number 1." in m.content for m in request.messages):
            from autoresearch.errors import BackendUnreachable

            raise BackendUnreachable("task t1's backend is down", backend="fake", model=request.model)
        return super().respond(request)


def test_a_fault_is_not_evidence_the_incumbents_failed_task_is_evaluated_again(loop_workspace):
    root = producer_only(loop_workspace(search_tasks=3, extra=ONLY_PRODUCER))
    pipeline = TaskOneDown(variants=["Answer!\n"])

    def observe(kind, data):
        if kind == "trial_finished" and data["outcome"].status == "baseline":
            pipeline.down = False  # the backend comes back after the baseline lost t1

    summary = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0,
                    observer=observe).optimize(n_trials=1)
    (trial,) = summary.outcomes
    assert trial.status == "keep"
    # The baseline's t1 failed: it counted 0 in the baseline's composite, but the rule compared t1 only after
    # evaluating the incumbent on it again, under trial 1.
    store = Store.for_workspace(root / "runs")
    baseline_tasks = store.task_results(store.trial(summary.study, 0)["evaluation_id"])
    assert [t["task_id"] for t in baseline_tasks if t["failed"]] == ["t1"]
    again = [e for e in store.trial_evaluations(summary.study, 1) if e["kind"] == "incumbent"]
    assert len(again) == 1 and [t["task_id"] for t in store.task_results(again[0]["id"])] == ["t1"]
    assert trial.evidence.comparison.tasks == 3 and trial.evidence.comparison.dropped == 0
    assert round(trial.delta, 9) == 0.7  # one mark more on each of the 3 tasks, not the fault's 0 → score


def restarting_after_trial_1(root, kit, probes):
    server = kit.Restarting(ScriptedPipeline(variants=[f"Answer{'!' * i}\n" for i in range(1, 6)]).backend,
                            probes=probes)
    s = Study(load_workspace(root), backend_factory=server.factory, seed=1, backoff_s=0)

    def observer(kind, data):
        if kind == "trial_finished" and data["outcome"].number == 1:
            server.go_down()

    s.observer = observer
    return s, server


def test_a_server_restarted_mid_run_is_waited_for_and_no_trial_fails(loop_workspace, kit, quick_probes):
    # Overnight the server restarts (an update, systemd bringing it back): the run waits, and goes on.
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    s, server = restarting_after_trial_1(root, kit, probes=5)
    summary = s.optimize(n_trials=3)
    assert server.refused >= 3 and server.probes == 0  # it was down, and came back
    assert summary.stop_reason == "trials"
    assert [o.status for o in summary.outcomes] == ["keep", "keep", "keep"]
    [went, back] = [n for n in summary.notes if "openai at http://127.0.0.1:8080/v1" in n]
    assert went.startswith("openai at http://127.0.0.1:8080/v1 stopped answering (unreachable: cannot reach")
    assert back.startswith("openai at http://127.0.0.1:8080/v1 answers again after ")
    store = Store.for_workspace(root / "runs")
    assert failure_modes(store, summary.study) == {"unreachable": server.refused}  # each refused attempt, recorded


def test_a_server_that_does_not_come_back_within_the_wait_stops_the_run_as_before(loop_workspace, kit,
                                                                                 quick_probes):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER), "max_consecutive_failed = 2\n")
    config = root / "autoresearch.toml"
    config.write_text(config.read_text().replace("outage_wait_s = 600", "outage_wait_s = 0.05"))
    git(root, "commit", "-qam", "a short wait")
    s, server = restarting_after_trial_1(root, kit, probes=None)
    summary = s.optimize(n_trials=10)
    assert summary.stop_reason == "backend_down"
    assert [o.status for o in summary.outcomes] == ["keep", "failed", "failed"]
    assert "openai at http://127.0.0.1:8080/v1 did not come back within 0.05 s (`[backends] outage_wait_s`)" in \
        summary.notes
    assert summary.stop_message.startswith("2 trials in a row failed: openai smollm2-135m")
