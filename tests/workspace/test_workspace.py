"""`init` and the workspace loader: starter files, git state, hashes of the fixed evaluation."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import autoresearch
from autoresearch.errors import ConfigError, WorkspaceError
from autoresearch.workspace.workspace import (
    CONFIG_NAME,
    ROLE_FILES,
    RUNS_DIR,
    STARTER,
    init_workspace,
    load_workspace,
)

REPO_ROOT = Path(autoresearch.__file__).resolve().parent.parent


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def test_init_creates_the_starter_files(workspace_dir):
    for rel in (CONFIG_NAME, "instructions/planner.md", "instructions/producer.md", "rubrics/rubric.toml",
                "rubrics/tasks.toml", "rubrics/evaluator.md", ".gitignore"):
        assert (workspace_dir / rel).is_file(), rel
    assert (workspace_dir / "runs").is_dir()
    ws = load_workspace(workspace_dir)
    assert set(ws.instructions) == set(ROLE_FILES)
    assert all(text.strip() for text in ws.instructions.values())
    assert ws.suite.split("search") and ws.suite.split("holdout")
    assert ws.runs_dir == workspace_dir / "runs"


def test_init_makes_a_git_repo_with_one_commit_and_clean_status(tmp_path):
    workspace_dir = init_workspace(tmp_path / "fresh")
    assert git(workspace_dir, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(workspace_dir, "status", "--porcelain") == ""
    tracked = set(git(workspace_dir, "ls-files").split())
    assert {CONFIG_NAME, "instructions/planner.md", "instructions/producer.md", "rubrics/rubric.toml"} <= tracked
    assert not any(p.startswith("runs/") and p != "runs/.gitkeep" for p in tracked)


def test_runs_dir_is_ignored_by_git(workspace_dir):
    (workspace_dir / "runs" / "autoresearch.db").write_bytes(b"sqlite")
    (workspace_dir / "runs" / "autoresearch.db-wal").write_bytes(b"wal")
    git(workspace_dir, "check-ignore", "-q", "runs/autoresearch.db")  # exit 0: ignored
    assert git(workspace_dir, "status", "--porcelain") == ""


def test_init_into_a_non_empty_directory_is_refused(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceError, match="not empty"):
        init_workspace(target)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]  # nothing was copied


def test_init_into_an_existing_empty_directory_works(tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    assert init_workspace(target) == target.resolve()
    assert (target / CONFIG_NAME).is_file()


def test_repository_root_is_a_valid_workspace_and_the_starter_as_shipped():
    ws = load_workspace(REPO_ROOT)
    assert ws.root == REPO_ROOT
    assert ws.suite.tasks and ws.rubric.dimensions and set(ws.instructions) == set(ROLE_FILES)
    # The README offers the root as a workspace: it must score as `init` would, not as the starter once did. Every
    # file `init` copies but the project's own .gitignore and runs/.
    files = [path.relative_to(STARTER) for path in STARTER.rglob("*") if path.is_file()]
    files = [f for f in files if f.parts[0] not in (".gitignore", RUNS_DIR, "__pycache__")]
    assert CONFIG_NAME in map(str, files) and len(files) >= 6  # the config, 2 instructions, 3 rubric files
    assert [f for f in files if (REPO_ROOT / f).read_bytes() != (STARTER / f).read_bytes()] == []


def test_missing_config_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError, match="autoresearch init"):
        load_workspace(tmp_path)


def test_missing_instruction_file_names_its_path(workspace_dir):
    (workspace_dir / "instructions" / "planner.md").unlink()
    with pytest.raises(ConfigError) as info:
        load_workspace(workspace_dir)
    assert info.value.path == str(workspace_dir / "instructions" / "planner.md")


def test_empty_instruction_file_is_refused(workspace_dir):
    (workspace_dir / "instructions" / "producer.md").write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        load_workspace(workspace_dir)


def test_evaluation_hash_changes_with_the_rubric_not_the_instructions(workspace_dir):
    before = load_workspace(workspace_dir)

    producer = workspace_dir / "instructions" / "producer.md"
    producer.write_text(producer.read_text() + "\nBe concise.\n")
    reinstructed = load_workspace(workspace_dir)
    assert reinstructed.evaluation_hash() == before.evaluation_hash()
    assert reinstructed.instructions_hash() != before.instructions_hash()

    rubric = workspace_dir / "rubrics" / "rubric.toml"
    rubric.write_text(rubric.read_text().replace("weight = 3", "weight = 4", 1))
    rescored = load_workspace(workspace_dir)
    assert rescored.evaluation_hash() != before.evaluation_hash()
    assert rescored.instructions_hash() == reinstructed.instructions_hash()


def test_evaluation_hash_covers_tasks_and_evaluator_instructions(workspace_dir):
    before = load_workspace(workspace_dir).evaluation_hash()
    evaluator = workspace_dir / "rubrics" / "evaluator.md"
    evaluator.write_text(evaluator.read_text() + "\nBe harsh.\n")
    after_evaluator = load_workspace(workspace_dir).evaluation_hash()
    assert after_evaluator != before
    tasks = workspace_dir / "rubrics" / "tasks.toml"
    tasks.write_text(tasks.read_text().replace('value = 220', 'value = 230', 1))
    assert load_workspace(workspace_dir).evaluation_hash() != after_evaluator


def test_evaluation_hash_covers_the_degenerate_guard_and_its_rule(workspace_dir, monkeypatch):
    from autoresearch.workspace import config

    before = load_workspace(workspace_dir).evaluation_hash()
    # A retuned rule changes the scores it touches, as a setting does: new baselines.
    monkeypatch.setitem(config.DEGENERATE_RULE, "max_repeated_share", 0.4)
    retuned = load_workspace(workspace_dir).evaluation_hash()
    assert retuned != before
    toml = workspace_dir / "autoresearch.toml"
    toml.write_text(toml.read_text().replace("degenerate_guard = true", "degenerate_guard = false"))
    off = load_workspace(workspace_dir).evaluation_hash()
    assert off not in (before, retuned)
    monkeypatch.setitem(config.DEGENERATE_RULE, "max_repeated_share", 0.5)
    assert load_workspace(workspace_dir).evaluation_hash() == off  # with the guard off, its rule is no part of it


def test_instructions_hash_of_candidate_instructions(workspace):
    candidate = {**workspace.instructions, "producer.md": "Something else."}
    assert workspace.instructions_hash(candidate) != workspace.instructions_hash()
    assert workspace.instructions_hash(dict(workspace.instructions)) == workspace.instructions_hash()


def test_unknown_portfolio_names_the_field(workspace):
    with pytest.raises(ConfigError) as info:
        workspace.portfolio("nope")
    assert info.value.field == "portfolios.nope" and "default" in str(info.value)


def test_init_works_when_the_user_signs_commits_globally(tmp_path, monkeypatch):
    config = tmp_path / "gitconfig"
    config.write_text("[commit]\n\tgpgsign = true\n[gpg]\n\tprogram = false\n")  # signing would fail
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    root = init_workspace(tmp_path / "signed")
    assert git(root, "rev-list", "--count", "HEAD").strip() == "1"


def test_the_keep_rules_settings_are_no_part_of_the_evaluation_hash(workspace_dir):
    # They decide which scores are kept, not what the scores are: a study goes on with its baseline.
    before = load_workspace(workspace_dir).evaluation_hash()
    toml = workspace_dir / "autoresearch.toml"
    toml.write_text(toml.read_text().replace("across_tasks = false", "across_tasks = true")
               .replace("early_keep = true", "early_keep = false"))
    changed = load_workspace(workspace_dir)
    assert (changed.settings.scoring.across_tasks, changed.settings.scoring.early_keep) == (True, False)
    assert changed.evaluation_hash() == before
