"""The workspace tests' files: a small valid workspace, and the check that a ConfigError names its file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch.errors import ConfigError

RUBRIC = """\
[[dimensions]]
name = "clarity"
description = "Easy to follow."
weight = 2

[[dimensions]]
name = "accuracy"
description = "Correct."
weight = 1
"""


TASKS = """\
[[tasks]]
id = "runbook"
prompt = "Write a runbook."
criteria = [{ kind = "min_words", value = 50 }, { kind = "regex", value = "^## " }]

[[tasks]]
id = "memo"
split = "holdout"
prompt = "Write a memo."
criteria = [{ kind = "no_placeholders" }]
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_workspace(root: Path, config: str = "") -> Path:
    """The smallest valid workspace: an all-defaults config plus the files it points at."""
    write(root / "autoresearch.toml", config)
    write(root / "rubrics" / "rubric.toml", RUBRIC)
    write(root / "rubrics" / "tasks.toml", TASKS)
    write(root / "rubrics" / "evaluator.md", "Score the output.\n")
    write(root / "instructions" / "planner.md", "Plan the work.\n")
    write(root / "instructions" / "producer.md", "Write the output.\n")
    return root


def expect_error(load, path: Path, field: str | None) -> ConfigError:
    """Call load(path); the ConfigError must name path and field, in its attributes and its message."""
    with pytest.raises(ConfigError) as caught:
        load(path)
    error = caught.value
    assert error.path == str(path)
    assert error.field == field
    expected_start = f"{path}: {field}: " if field else f"{path}: "
    assert str(error).startswith(expected_start)
    assert error.message and "\n" not in str(error)
    return error


def tasks_file(tmp_path: Path, body: str) -> Path:
    return write(tmp_path / "tasks.toml", body)


def one_task(criteria: str, task_id: str = "t1", split: str = "search") -> str:
    return f'[[tasks]]\nid = "{task_id}"\nsplit = "{split}"\nprompt = "Do it."\ncriteria = {criteria}\n'
