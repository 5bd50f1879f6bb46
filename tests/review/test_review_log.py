"""`autoresearch log`: the committed improvements of a study, newest first, equal to what the store holds."""

from __future__ import annotations

import json

from click.testing import CliRunner
from overnight import STATUSES, build_overnight, git

from autoresearch.cli.main import main
from autoresearch.store import Store


def kept_rows(overnight):
    store = Store.for_workspace(overnight.root / "runs")
    rows = [r for r in store.trials(overnight.study) if r["status"] == "keep"]
    store.close()
    return rows


def test_the_study_ran_as_scripted(overnight):
    store = Store.for_workspace(overnight.root / "runs")
    assert [r["status"] for r in store.trials(overnight.study)] == STATUSES


def test_log_json_lists_keeps_newest_first_with_the_stores_figures(overnight):
    result = CliRunner().invoke(main, ["log", "-w", str(overnight.root), "--json"])
    assert result.exit_code == 0, result.output
    log = json.loads(result.output)
    assert log["study"] == overnight.study and log["branch"] == overnight.branch
    assert log["counts"] == {"baseline": 1, "keep": 2, "discard": 2, "pruned": 1, "failed": 1}
    expected = list(reversed(kept_rows(overnight)))
    assert [e["trial"] for e in log["entries"]] == [r["number"] for r in expected] == [2, 1]
    for entry, row in zip(log["entries"], expected):
        assert entry["commit"] == row["commit_sha"]
        assert entry["delta"] == row["delta"] and entry["composite"] == row["composite"]
        assert entry["holdout_composite"] == row["holdout_composite"]
        assert entry["operator"] == "rephrase" and entry["file"] == "producer.md"
        assert entry["description"] == row["idea"]
        assert entry["joules_per_task"] > 0
        assert entry["evidence"] == json.loads(row["evidence_json"])  # how the keep rule decided
        assert entry["evidence"]["keep"] and entry["evidence"]["search"]["lower_bound"] > 0
    # The commits are the ones on the study's branch, newest first as `git log` lists them.
    branch_log = git(overnight.root, "log", "--format=%H", "-2", overnight.branch).split()
    assert [e["commit"] for e in log["entries"]] == branch_log


def test_log_table_shows_each_keep_with_its_numbers(overnight):
    result = CliRunner().invoke(main, ["log", "-w", str(overnight.root)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"Study {overnight.study} on branch {overnight.branch}" in out
    assert "baseline composite 2.571 (holdout 3.000)" in out
    assert "trials: baseline 1  keep 2  discard 2  pruned 1  failed 1" in out
    newest, oldest = reversed(kept_rows(overnight))
    lines = [line for line in out.splitlines() if newest["commit_sha"][:10] in line or oldest["commit_sha"][:10] in line]
    assert len(lines) == 2 and newest["commit_sha"][:10] in lines[0]  # newest first
    for line, row in zip(lines, (newest, oldest)):
        assert f"{row['delta']:+.3f}" in line and f"{row['composite']:.3f}" in line
        assert f"{row['holdout_composite']:.3f}" in line
        assert "producer.md" in line and "rephrase" in line and row["idea"] in line
        evidence = json.loads(row["evidence_json"])["search"]
        assert f"{evidence['lower_bound']:+.3f}" in line and f"{evidence['tasks']}×{evidence['repeats']}" in line
    assert "energy: estimated" in out


def test_log_of_a_study_without_keeps_says_so(tmp_path):
    quiet = build_overnight(tmp_path, variants=["Answer.\nBe short.\n"])  # as good as the baseline: discarded
    result = CliRunner().invoke(main, ["log", "-w", str(quiet.root)])
    assert result.exit_code == 0, result.output
    assert "trials: baseline 1  discard 1" in result.output
    assert "no kept commits yet" in result.output
    assert json.loads(CliRunner().invoke(main, ["log", "-w", str(quiet.root), "--json"]).output)["entries"] == []


def test_log_refuses_a_workspace_without_a_store_or_an_unknown_study(tmp_path, overnight):
    result = CliRunner().invoke(main, ["log", "-w", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'runs' / 'autoresearch.db'}: no store yet; run `autoresearch run` first"
    assert not (tmp_path / "runs").exists()  # reading never creates a store
    result = CliRunner().invoke(main, ["log", "-w", str(overnight.root), "--study", "nope"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "--study nope: no such study" in result.output and overnight.study in result.output
