"""autoresearch.toml (workspace/config.py): the defaults, and every malformed setting a ConfigError naming the
file and the field."""

from __future__ import annotations

import pytest
from workspace_files import expect_error, make_workspace, write

from autoresearch.workspace.config import Settings, load_settings
from autoresearch.workspace.workspace import load_workspace


def test_minimal_workspace_loads_with_defaults(tmp_path):
    workspace = load_workspace(make_workspace(tmp_path))
    assert workspace.settings == Settings()
    assert [d.name for d in workspace.rubric.dimensions] == ["clarity", "accuracy"]
    assert [t.id for t in workspace.suite.split("search")] == ["runbook"]
    assert [t.id for t in workspace.suite.split("holdout")] == ["memo"]
    assert workspace.instructions == {"planner.md": "Plan the work.\n", "producer.md": "Write the output.\n"}
    assert workspace.evaluator_instructions == "Score the output.\n"


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
        # a pruner as sure as 1.0 never stops anything; one at 0.5 or under stops what is likelier to win than not
        ("[search]\nprune_confidence = 1.0\n", "search.prune_confidence", "less than 1"),
        ("[search]\nprune_confidence = 0.5\n", "search.prune_confidence", "greater than 0.5"),
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


def test_workspace_reports_bad_settings_in_its_config(tmp_path):
    root = make_workspace(tmp_path, "[portfolios.default.planner]\ncolour = 'red'\n")
    expect_error(lambda _: load_workspace(root), root / "autoresearch.toml", "portfolios.default.planner.colour")


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
