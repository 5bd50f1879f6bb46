"""Config loading: every malformed file becomes a ConfigError naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch.errors import ConfigError, UsageError
from autoresearch.workspace.config import Settings, load_settings
from autoresearch.workspace.suite import load_rubric, load_tasks
from autoresearch.workspace.workspace import load_workspace

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


# loading that works


def test_minimal_workspace_loads_with_defaults(tmp_path):
    workspace = load_workspace(make_workspace(tmp_path))
    assert workspace.settings == Settings()
    assert [d.name for d in workspace.rubric.dimensions] == ["clarity", "accuracy"]
    assert [t.id for t in workspace.suite.split("search")] == ["runbook"]
    assert [t.id for t in workspace.suite.split("holdout")] == ["memo"]
    assert workspace.instructions == {"planner.md": "Plan the work.\n", "producer.md": "Write the output.\n"}
    assert workspace.evaluator_instructions == "Score the output.\n"


def test_yaml_task_suite_loads(tmp_path):
    path = write(tmp_path / "tasks.yaml", "tasks:\n  - id: a\n    prompt: Write.\n    criteria:\n"
                                         "      - {kind: max_words, value: 100}\n")
    suite = load_tasks(path)
    assert suite.tasks[0].criteria[0].describe() == "max_words 100"


# syntax errors


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


# autoresearch.toml


@pytest.mark.parametrize(
    ("config", "field", "message_part"),
    [
        ("colour = 'blue'\n", "colour", "unknown key"),
        ("[portfolios.default.planner]\ncolour = 'blue'\n", "portfolios.default.planner.colour", "unknown key"),
        ("[portfolios.default.planner]\ntemperature = 'hot'\n", "portfolios.default.planner.temperature",
         "valid number"),
        ("[portfolios.default.producer]\ntemperature = 3.5\n", "portfolios.default.producer.temperature",
         "less than or equal to 2"),
        ("[portfolios.default.evaluator]\nbackend = 'vllm'\n", "portfolios.default.evaluator.backend",
         "'embedded', 'ollama', 'openai' or 'fake'"),
        ("[scoring]\njudge_weight = 0.6\n", "scoring", "judge_weight + criteria_weight must equal 1.0"),
        ("[scoring]\njudge_weight = 0.5\ncriteria_weight = 0.6\n", "scoring", "must equal 1.0"),
        ("[workspace]\noptimizable = ['evaluator.md']\n", "workspace.optimizable", "'evaluator.md'"),
        ("[search]\nparents = 0\n", "search.parents", "greater than or equal to 1"),
        # more seed sets upfront than the comparison uses was capped without a word
        ("[search]\nnoise_repeats = 3\nnoise_repeats_upfront = 4\n", "search",
         "noise_repeats_upfront (4) is more seed sets than noise_repeats (3)"),
        ("[backends]\nopenai_structured = 'xml'\n", "backends.openai_structured",
         "'auto', 'json_schema', 'json_object_schema', 'json_object' or 'none'"),
        # server URLs the HTTP clients cannot parse: httpx raised InvalidURL, a traceback from eval, run and doctor
        ("[portfolios.default.planner]\nbackend = 'openai'\nbase_url = 'http://[::1/v1'\n",
         "portfolios.default.planner.base_url", "'http://[::1/v1' is not a valid URL"),
        ("[portfolios.default.planner]\nbackend = 'openai'\nbase_url = 'http://h:abc/v1'\n",
         "portfolios.default.planner.base_url", "not a valid URL"),
        ("[portfolios.default.planner]\nbackend = 'ollama'\nbase_url = 'http://127.0.0.1:99999'\n",
         "portfolios.default.planner.base_url", "Port out of range"),
        ("[portfolios.default.planner]\nbackend = 'openai'\nbase_url = ''\n", "portfolios.default.planner.base_url",
         "not an http:// or https:// URL"),
        ("[backends]\nopenai_base_url = 'localhost:8080/v1'\n", "backends.openai_base_url",
         "not an http:// or https:// URL"),
        ("[backends]\nollama_url = 'http://[zz]:11434'\n", "backends.ollama_url", "not a valid URL"),
        ("[backends]\ntimeout_s = inf\n", "backends.timeout_s", "finite number"),
        # empty, a path was the workspace folder: "<workspace>: file not found", naming neither file nor field
        ("[workspace]\nrubric = ''\n", "workspace.rubric", "the path is empty"),
        ("[workspace]\ntasks = ' '\n", "workspace.tasks", "the path is empty"),
        ("[workspace]\nevaluator_instructions = ''\n", "workspace.evaluator_instructions", "the path is empty"),
        # a study's branch is a file under .git: git refused a 300-byte name, a traceback after runs/ was written
        (f"[workspace]\nname = '{'a' * 101}'\n", "workspace.name", "101 bytes long: at most 100"),
        # a quoted number, a 1 for true, a fraction for a count: converted without a word before
        ("[portfolios.default.producer]\nmax_tokens = '280'\n", "portfolios.default.producer.max_tokens",
         'Input should be a valid integer, not a string ("280")'),
        ("[scoring]\nholdout_gate = 1\n", "scoring.holdout_gate", "valid boolean, not an integer (1)"),
        ("[search]\nnoise_repeats = 3.0\n", "search.noise_repeats", "valid integer, not a number (3.0)"),
        ("[scoring]\nkeep_threshold = '0.2'\n", "scoring.keep_threshold", 'valid number, not a string ("0.2")'),
    ],
)
def test_settings_errors_name_the_field(tmp_path, config, field, message_part):
    path = write(tmp_path / "autoresearch.toml", config)
    error = expect_error(load_settings, path, field)
    assert message_part in error.message


def test_a_whole_number_is_taken_where_a_fraction_may_stand(tmp_path):
    settings = load_settings(write(tmp_path / "autoresearch.toml", "[scoring]\nkeep_threshold = 1\n"))
    assert settings.scoring.keep_threshold == 1.0


def test_noise_repeats_alone_may_be_below_the_upfront_default(tmp_path):
    # noise_repeats = 1 with the default noise_repeats_upfront (2): the baseline measures 1 seed set, as before.
    settings = load_settings(write(tmp_path / "autoresearch.toml", "[search]\nnoise_repeats = 1\n"))
    assert (settings.search.noise_repeats, settings.search.noise_repeats_upfront) == (1, 2)
    equal = load_settings(write(tmp_path / "equal.toml", "[search]\nnoise_repeats = 3\nnoise_repeats_upfront = 3\n"))
    assert equal.search.noise_repeats_upfront == 3


def test_a_portfolio_name_too_long_for_a_branch_is_refused_naming_it(tmp_path):
    name = "é" * 51  # 102 bytes in UTF-8
    path = write(tmp_path / "autoresearch.toml", f'[workspace]\nportfolio = "{name}"\n[portfolios."{name}".planner]\n')
    error = expect_error(load_settings, path, None)
    assert f"portfolios.{name}: " in error.message and "102 bytes long: at most 100" in error.message


def test_ollama_urls_may_be_a_bare_host_and_port_as_its_client_takes_them(tmp_path):
    path = write(tmp_path / "autoresearch.toml", "[backends]\nollama_url = 'localhost:11434'\n"
                 "[portfolios.default.planner]\nbackend = 'ollama'\nbase_url = '10.0.0.5:11434'\n")
    settings = load_settings(path)
    assert settings.backends.ollama_url == "localhost:11434"
    assert settings.portfolios["default"].planner.base_url == "10.0.0.5:11434"


def test_portfolio_named_in_workspace_must_exist(tmp_path):
    path = write(tmp_path / "autoresearch.toml", "[workspace]\nportfolio = 'fast'\n")
    # A model-level check: the field path is in the message, not in error.field.
    error = expect_error(load_settings, path, None)
    assert error.message == "workspace.portfolio 'fast' is not a [portfolios.*] section"


def test_named_portfolio_that_exists_is_accepted(tmp_path):
    path = write(tmp_path / "autoresearch.toml",
                 "[workspace]\nportfolio = 'fast'\n[portfolios.fast.producer]\nbackend = 'ollama'\n")
    settings = load_settings(path)
    assert settings.portfolios["fast"].producer.backend == "ollama"
    assert settings.portfolios["fast"].planner.backend == "embedded"


def test_missing_config_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    assert expect_error(load_settings, path, None).message == "file not found"


def test_workspace_without_config_file_says_how_to_make_one(tmp_path):
    error = expect_error(lambda _: load_workspace(tmp_path), tmp_path / "autoresearch.toml", None)
    assert "autoresearch init" in error.message
    assert isinstance(error, UsageError)


def test_workspace_reports_bad_settings_in_its_config(tmp_path):
    root = make_workspace(tmp_path, "[portfolios.default.planner]\ncolour = 'red'\n")
    expect_error(lambda _: load_workspace(root), root / "autoresearch.toml", "portfolios.default.planner.colour")


# rubric


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


# task suite


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


# instruction files


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


def test_task_concurrency_is_the_smallest_role_limit_and_the_embedded_batch_or_contexts_for_an_embedded_role(tmp_path):
    from autoresearch.workspace.config import (
        BackendsConfig,
        Portfolio,
        RoleConfig,
        task_concurrency,
    )

    served = RoleConfig(backend="openai", model="m")
    backends = BackendsConfig(concurrency=4)
    assert task_concurrency(Portfolio(planner=served, producer=served, evaluator=served), backends) == 4
    assert task_concurrency(Portfolio(planner=served, producer=served, evaluator=served), BackendsConfig()) == 1
    capped = served.model_copy(update={"concurrency": 2})
    assert task_concurrency(Portfolio(planner=served, producer=served, evaluator=capped), backends) == 2
    # An embedded role runs its side-by-side contexts' worth of tasks at once, not a server's limit: auto is 2
    # where the role has 2 threads or more, 1 on one thread.
    def embedded(backends: BackendsConfig, **role) -> int:
        role = RoleConfig(backend="embedded", **role)
        return task_concurrency(Portfolio(planner=served, producer=served, evaluator=role), backends)

    assert embedded(backends, n_threads=8) == 2
    assert embedded(backends, n_threads=1) == 1
    assert embedded(BackendsConfig(concurrency=4, embedded_parallel=3), n_threads=8) == 3
    assert embedded(BackendsConfig(concurrency=4, embedded_parallel=1), n_threads=8) == 1
    # Auto gives a model of 1 GiB or more one context (each context loads the model again); a missing file too.
    small, large = tmp_path / "small.gguf", tmp_path / "large.gguf"
    small.write_bytes(b"GGUF")
    with large.open("wb") as handle:
        handle.truncate(1 << 30)  # sparse: its size, not its disk
    assert embedded(backends, n_threads=8, model=str(small)) == 2
    assert embedded(backends, n_threads=8, model=str(large)) == 1
    assert embedded(backends, n_threads=8, model=str(tmp_path / "missing.gguf")) == 1
    assert embedded(BackendsConfig(concurrency=4, embedded_parallel=2), n_threads=8, model=str(large)) == 2
    # Batches or drafts take over from side-by-side contexts; a role's own concurrency is its batch.
    assert embedded(BackendsConfig(concurrency=4, embedded_batch=3), n_threads=8) == 3
    assert embedded(BackendsConfig(concurrency=4, embedded_draft=8), n_threads=8) == 1
    assert embedded(BackendsConfig(concurrency=4, embedded_batch=3), n_threads=8, concurrency=2) == 2


def test_side_by_side_contexts_with_batches_or_drafts_are_refused_naming_the_field(tmp_path):
    root = make_workspace(tmp_path, "[backends]\nembedded_parallel = 2\nembedded_draft = 8\n")
    error = expect_error(lambda _: load_workspace(root), root / "autoresearch.toml", "backends")
    assert "embedded_parallel" in error.message and "embedded_draft" in error.message
