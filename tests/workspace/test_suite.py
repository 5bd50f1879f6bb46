"""The rubric and the task suite (workspace/suite.py): what loads, and every malformed field a ConfigError naming it."""

from __future__ import annotations

import pytest
from workspace_files import RUBRIC, expect_error, one_task, tasks_file, write

from autoresearch.workspace.suite import load_rubric, load_tasks


def test_yaml_task_suite_loads(tmp_path):
    path = write(tmp_path / "tasks.yaml", "tasks:\n  - id: a\n    prompt: Write.\n    criteria:\n"
                                         "      - {kind: max_words, value: 100}\n")
    suite = load_tasks(path)
    assert suite.tasks[0].criteria[0].describe() == "max_words 100"


def test_negative_rubric_weight_names_the_dimension(tmp_path):
    path = write(tmp_path / "rubric.toml", RUBRIC.replace("weight = 1", "weight = -1"))
    error = expect_error(load_rubric, path, "dimensions[1].weight")
    assert "greater than 0" in error.message


@pytest.mark.parametrize(
    ("body", "field", "message_part"),
    [
        ("", "dimensions", "Field required"),
        ("dimensions = []\n", "dimensions", "at least 1 item"),
        (RUBRIC.replace('"accuracy"', '"clarity"'), "dimensions", "dimension names must be unique"),
        (RUBRIC.replace('"accuracy"', '"Accuracy!"'), "dimensions[1].name", "pattern"),
        (RUBRIC + "scale = 10\n", "dimensions[1].scale", "unknown key"),
        (RUBRIC.replace('"Correct."', '"   "'), "dimensions[1].description", "is only whitespace"),
        # the judge's own fields, and names DSPy's signature or prediction already has: a traceback or a judge
        # that no longer reads the task, after runs/ was written
        (RUBRIC.replace('"accuracy"', '"critique"'), "dimensions[1].name", "'critique' is reserved by the judge"),
        (RUBRIC.replace('"accuracy"', '"task"'), "dimensions[1].name", "'task' is reserved by the judge"),
        (RUBRIC.replace('"accuracy"', '"keys"'), "dimensions[1].name", "'keys' is reserved by the judge"),
        (RUBRIC.replace('"accuracy"', '"instructions"'), "dimensions[1].name", "reserved"),
    ],
)
def test_rubric_errors_name_the_field(tmp_path, body, field, message_part):
    path = write(tmp_path / "rubric.toml", body)
    assert message_part in expect_error(load_rubric, path, field).message


@pytest.mark.parametrize(
    ("criteria", "field", "message_start"),
    [
        ('[{ kind = "min_words", value = 10 }, { kind = "regex", value = "(unclosed" }]', "tasks[0].criteria[1]",
         "invalid regex '(unclosed': "),  # the rest is Python's own wording
        ('[{ kind = "min_vibes", value = 3 }]', "tasks[0].criteria[0]", "unknown criterion kind 'min_vibes'; one of min_words, "),
        ('[{ kind = "min_words", value = "many" }]', "tasks[0].criteria[0]",
         "min_words needs a non-negative integer value"),
        ('[{ kind = "exact_sections", value = "4" }]', "tasks[0].criteria[0]",
         "exact_sections needs a non-negative integer value"),
        ('[{ kind = "max_words", value = -5 }]', "tasks[0].criteria[0]", "max_words needs a non-negative integer value"),
        ('[{ kind = "min_words" }]', "tasks[0].criteria[0]", "min_words needs a non-negative integer value"),
        ('[{ kind = "min_words", value = true }]', "tasks[0].criteria[0].value", "must be an integer or a string"),
        ('[{ kind = "min_words", value = 2.5 }]', "tasks[0].criteria[0].value", "must be an integer or a string"),
        ('[{ kind = "contains", value = "" }]', "tasks[0].criteria[0]", "contains needs a non-empty string value"),
        ('[{ kind = "contains", value = 7 }]', "tasks[0].criteria[0]", "contains needs a non-empty string value"),
        ('[{ kind = "no_placeholders", value = 1 }]', "tasks[0].criteria[0]", "no_placeholders takes no value"),
        ('[{ kind = "contains", value = "x", weight = 2 }]', "tasks[0].criteria[0].weight", "unknown key"),
        ("[]", "tasks[0].criteria", "List should have at least 1 item after validation, not 0"),
    ],
)
def test_criterion_errors_name_task_and_criterion(tmp_path, criteria, field, message_start):
    path = tasks_file(tmp_path, one_task(criteria))
    assert expect_error(load_tasks, path, field).message.startswith(message_start)


def test_second_task_is_named_by_index(tmp_path):
    body = one_task('[{ kind = "no_placeholders" }]') + one_task('[{ kind = "regex", value = "[" }]', "t2")
    error = expect_error(load_tasks, tasks_file(tmp_path, body), "tasks[1].criteria[0]")
    assert error.message.startswith("invalid regex '['")


def test_task_without_criteria(tmp_path):
    path = tasks_file(tmp_path, '[[tasks]]\nid = "t1"\nprompt = "Do it."\n')
    assert expect_error(load_tasks, path, "tasks[0].criteria").message == "Field required"


def test_count_criterion_with_string_value_in_yaml(tmp_path):
    path = write(tmp_path / "tasks.yaml",
                 "tasks:\n  - id: a\n    prompt: Write.\n    criteria:\n      - {kind: min_words, value: lots}\n")
    assert "min_words needs a non-negative integer value" in expect_error(load_tasks, path, "tasks[0].criteria[0]").message


@pytest.mark.parametrize("body", ["", "tasks = []\n"])
def test_empty_task_suite(tmp_path, body):
    error = expect_error(load_tasks, tasks_file(tmp_path, body), "tasks")
    assert error.message in ("Field required", "List should have at least 1 item after validation, not 0")


def test_empty_yaml_task_suite(tmp_path):
    path = write(tmp_path / "tasks.yaml", "# nothing yet\n")
    assert expect_error(load_tasks, path, "tasks").message == "Field required"


def test_duplicate_task_ids_are_named(tmp_path):
    body = (one_task('[{ kind = "no_placeholders" }]', "a") + one_task('[{ kind = "no_placeholders" }]', "b")
            + one_task('[{ kind = "no_placeholders" }]', "a"))
    error = expect_error(load_tasks, tasks_file(tmp_path, body), "tasks")
    assert error.message == "task ids must be unique; repeated: a"


def test_suite_needs_a_search_task(tmp_path):
    body = one_task('[{ kind = "no_placeholders" }]', split="holdout")
    error = expect_error(load_tasks, tasks_file(tmp_path, body), "tasks")
    assert error.message == "at least one task must have split = 'search'"


@pytest.mark.parametrize(
    ("extra", "field", "message_part"),
    [
        ('split = "train"\n', "tasks[0].split", "'search' or 'holdout'"),
        ('id = "has space"\n', "tasks[0].id", "pattern"),
        ('prompt = " \\n\\t "\n', "tasks[0].prompt", "is only whitespace"),  # the model would get no task
    ],
)
def test_task_field_errors(tmp_path, extra, field, message_part):
    body = '[[tasks]]\ncriteria = [{ kind = "no_placeholders" }]\n' + extra
    if "prompt =" not in extra:
        body += 'prompt = "Do it."\n'
    if "id =" not in extra:
        body += 'id = "t1"\n'
    assert message_part in expect_error(load_tasks, tasks_file(tmp_path, body), field).message
