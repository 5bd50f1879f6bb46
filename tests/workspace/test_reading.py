"""Reading a workspace's files (workspace/reading.py): syntax errors, repeated keys, missing files and folders,
each a ConfigError naming the file."""

from __future__ import annotations

import pytest
from workspace_files import expect_error, make_workspace, write

from autoresearch.errors import UsageError
from autoresearch.workspace.config import load_settings
from autoresearch.workspace.suite import load_tasks
from autoresearch.workspace.workspace import load_workspace


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path / "autoresearch.toml", "[scoring]\njudge_weight = = 0.7\n")
    error = expect_error(load_settings, path, None)
    assert error.message.startswith("syntax error:")
    assert "line 2" in error.message


def test_yaml_syntax_error_in_tasks_names_file_and_line(tmp_path):
    path = write(tmp_path / "rubrics" / "tasks.yaml", "tasks:\n  - id: a\n   prompt: [unclosed\n")
    error = expect_error(load_tasks, path, None)
    assert error.message.startswith("syntax error:")
    assert "line" in error.message


def test_a_key_given_twice_in_yaml_is_refused_naming_it_and_its_line(tmp_path):
    # PyYAML keeps the last silently: the task's first criteria would be dropped unseen
    path = write(tmp_path / "tasks.yaml", "tasks:\n  - id: a\n    prompt: Write.\n"
                                         "    criteria: [{kind: max_words, value: 100}]\n"
                                         "    criteria: [{kind: no_placeholders}]\n")
    error = expect_error(load_tasks, path, None)
    assert error.message.startswith("syntax error:")
    assert "found duplicate key 'criteria'" in error.message and "line 5" in error.message


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    path = write(tmp_path / "tasks.yaml", "tasks:\n  - id: a\n    prompt: Write.\n    criteria:\n"
                                         "      - &short {kind: max_words, value: 100}\n"
                                         "      - {<<: *short, value: 50}\n")
    assert [c.describe() for c in load_tasks(path).tasks[0].criteria] == ["max_words 100", "max_words 50"]


def test_yaml_tasks_named_in_workspace_report_their_own_path(tmp_path):
    root = make_workspace(tmp_path, '[workspace]\ntasks = "rubrics/tasks.yaml"\n')
    bad = write(root / "rubrics" / "tasks.yaml", "tasks: [\n")
    error = expect_error(lambda _: load_workspace(root), bad, None)
    assert "syntax error" in error.message


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path / "tasks.yaml", "- just\n- a list\n")
    assert expect_error(load_tasks, path, None).message == "top level must be a table/mapping"


def test_missing_config_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    assert expect_error(load_settings, path, None).message == "file not found"


def test_workspace_without_config_file_says_how_to_make_one(tmp_path):
    error = expect_error(lambda _: load_workspace(tmp_path), tmp_path / "autoresearch.toml", None)
    assert "autoresearch init" in error.message
    assert isinstance(error, UsageError)


def test_workspace_reports_missing_rubric_path(tmp_path):
    root = make_workspace(tmp_path)
    (root / "rubrics" / "rubric.toml").unlink()
    error = expect_error(lambda _: load_workspace(root), root / "rubrics" / "rubric.toml", None)
    assert error.message == "file not found"


def test_a_rubric_or_instruction_path_that_is_a_folder_says_so(tmp_path):
    root = make_workspace(tmp_path)
    (root / "rubrics" / "rubric.toml").unlink()
    (root / "rubrics" / "rubric.toml").mkdir()
    error = expect_error(lambda _: load_workspace(root), root / "rubrics" / "rubric.toml", None)
    assert error.message == "a folder, not a file"  # not "file not found": it is there, as the wrong kind
    root = make_workspace(tmp_path / "other", '[workspace]\nevaluator_instructions = "rubrics"\n')
    error = expect_error(lambda _: load_workspace(root), root / "rubrics", None)
    assert error.message == "a folder, not a file"


@pytest.mark.parametrize("relative", ["instructions/planner.md", "instructions/producer.md", "rubrics/evaluator.md"])
def test_missing_instruction_file_is_named(tmp_path, relative):
    root = make_workspace(tmp_path)
    (root / relative).unlink()
    error = expect_error(lambda _: load_workspace(root), root / relative, None)
    assert error.message == "instruction file not found"


def test_empty_instruction_file_is_named(tmp_path):
    root = make_workspace(tmp_path)
    write(root / "instructions" / "producer.md", "  \n")
    error = expect_error(lambda _: load_workspace(root), root / "instructions" / "producer.md", None)
    assert error.message == "instruction file is empty"


def test_evaluator_instructions_path_comes_from_settings(tmp_path):
    root = make_workspace(tmp_path, '[workspace]\nevaluator_instructions = "judge/how.md"\n')
    error = expect_error(lambda _: load_workspace(root), root / "judge" / "how.md", None)
    assert error.message == "instruction file not found"
    write(root / "judge" / "how.md", "Judge fairly.\n")
    assert load_workspace(root).evaluator_instructions == "Judge fairly.\n"
