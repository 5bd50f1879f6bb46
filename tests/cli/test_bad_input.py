"""Bad input, table-driven, through the CLI: every malformed file or option gives exit code 2, exactly one
line on stderr naming the file and the field (or the URL, path or option), and leaves the workspace and
runs/ byte for byte as they were."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from autoresearch.cli.main import main
from autoresearch.lm import preflight as preflight_module
from autoresearch.lm.backends import FakeBackend, create_backend
from autoresearch.pipeline import harness as harness_module

STARTER_MODEL = "smollm2-135m"


def edit(rel: str, old: str, new: str, count: int = 1) -> Callable[[Path, Path], None]:
    def apply(root: Path, tmp: Path) -> None:
        path = root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, count))
    return apply


def append(rel: str, extra: str) -> Callable[[Path, Path], None]:
    def apply(root: Path, tmp: Path) -> None:
        with (root / rel).open("a") as f:
            f.write(extra)
    return apply


def write(rel: str, content: str | bytes) -> Callable[[Path, Path], None]:
    def apply(root: Path, tmp: Path) -> None:
        path = root / rel
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return apply


def delete(rel: str) -> Callable[[Path, Path], None]:
    return lambda root, tmp: (root / rel).unlink()


def both(*steps: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def apply(root: Path, tmp: Path) -> None:
        for step in steps:
            step(root, tmp)
    return apply


def producer_model(value: Callable[[Path], str]) -> Callable[[Path, Path], None]:
    """Point the producer at a model given by a path made under tmp (outside the workspace)."""
    def apply(root: Path, tmp: Path) -> None:
        text = (root / "autoresearch.toml").read_text()
        head, tail = text.split("[portfolios.default.producer]", 1)
        tail = tail.replace('model = "smollm2-135m"', f'model = "{value(tmp)}"', 1)
        (root / "autoresearch.toml").write_text(head + "[portfolios.default.producer]" + tail)
    return apply


def not_gguf(tmp: Path) -> str:
    path = tmp / "weights.gguf"
    path.write_text("these are not weights\n")
    return str(path)


def gguf_dir(tmp: Path) -> str:
    (tmp / "models").mkdir(exist_ok=True)
    return str(tmp / "models")


TASKS = "rubrics/tasks.toml"
CONFIG = "autoresearch.toml"
RUBRIC = "rubrics/rubric.toml"
FIRST_CRITERIA = 'criteria = [\n  { kind = "min_numbered", value = 5 },'


def gpus(value: str):
    """autoresearch.toml with [energy] gpus = value."""
    return edit(CONFIG, "server_watts = 60.0", f"server_watts = 60.0\ngpus = {value}")


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Callable[[Path, Path], None]
    file: str  # the file the line must name (a path fragment), or "" when an option is at fault
    field: str  # the field, URL, path or option it must name
    commands: tuple[str, ...] = ("eval", "run")
    args: tuple[str, ...] = ()


CASES = [
    # autoresearch.toml: syntax, unknown keys, wrong types, values out of range
    Case("toml-syntax", append(CONFIG, "\n[workspace\n"), CONFIG, "line"),
    Case("unknown-section", append(CONFIG, "\n[extras]\nfoo = 1\n"), CONFIG, "extras: unknown key"),
    Case("unknown-role-key", edit(CONFIG, "temperature = 0.3", "temprature = 0.3"), CONFIG,
         "portfolios.default.producer.temprature: unknown key"),
    Case("wrong-type", edit(CONFIG, "max_tokens = 280", 'max_tokens = "many"'), CONFIG,
         "portfolios.default.producer.max_tokens"),
    Case("temperature-negative", edit(CONFIG, "temperature = 0.3", "temperature = -1"), CONFIG,
         "portfolios.default.producer.temperature"),
    Case("weight-negative", edit(CONFIG, "judge_weight = 0.7", "judge_weight = -0.7"), CONFIG, "scoring.judge_weight"),
    Case("weights-not-summing-to-one", edit(CONFIG, "criteria_weight = 0.3", "criteria_weight = 0.5"), CONFIG,
         "scoring: judge_weight + criteria_weight must equal 1.0"),
    Case("threshold-negative", edit(CONFIG, "keep_threshold = 0.1", "keep_threshold = -0.1"), CONFIG,
         "scoring.keep_threshold"),
    Case("unknown-backend", edit(CONFIG, 'backend = "embedded"', 'backend = "gpt4all"'), CONFIG,
         "portfolios.default.planner.backend"),
    Case("workspace-name-with-a-space", edit(CONFIG, 'name = "starter"', 'name = "my agent"'), CONFIG,
         "workspace.name: 'my agent' cannot name a git branch"),
    Case("workspace-name-too-long", edit(CONFIG, 'name = "starter"', f'name = "{"a" * 300}"'), CONFIG,
         "workspace.name: 'aaaaaaaaaaaaaaaaaaaaaaaa'… is 300 bytes long: at most 100"),
    Case("portfolio-name-with-a-space", both(edit(CONFIG, "[portfolios.default.", '[portfolios."big one".', count=4),
                                             edit(CONFIG, 'portfolio = "default"', 'portfolio = "big one"')),
         CONFIG, "portfolios.big one: 'big one' cannot name a git branch"),
    Case("unknown-default-portfolio", edit(CONFIG, 'portfolio = "default"', 'portfolio = "big"'), CONFIG,
         "workspace.portfolio 'big'"),
    Case("unknown-portfolio-option", lambda root, tmp: None, CONFIG, "portfolios.nope", args=("--portfolio", "nope")),
    Case("unknown-instruction-file", edit(CONFIG, '"producer.md", "planner.md"]', '"producer.md", "judge.md"]'),
         CONFIG, "workspace.optimizable"),
    Case("nothing-optimizable", edit(CONFIG, '["producer.md", "planner.md"]', "[]"), CONFIG, "workspace.optimizable"),
    Case("failed-share-above-one", append(CONFIG, "\n[search]\nmax_failed_share = 1.5\n"), CONFIG,
         "search.max_failed_share"),
    Case("consecutive-failed-zero", append(CONFIG, "\n[search]\nmax_consecutive_failed = 0\n"), CONFIG,
         "search.max_consecutive_failed"),
    Case("unknown-operator", append(CONFIG, '\n[search]\noperators = ["shout"]\n'), CONFIG, "search.operators",
         commands=("run",)),
    Case("temperatures-wrong-type", append(CONFIG, '\n[search]\nproposer_temperatures = "hot"\n'), CONFIG,
         "search.proposer_temperatures"),
    # [energy] gpus: NVML indices, each once
    Case("energy-gpus-empty", gpus("[]"), CONFIG, "energy.gpus"),
    Case("energy-gpus-repeated", gpus("[1, 1]"), CONFIG, "energy.gpus"),
    Case("energy-gpus-negative", gpus("[-1]"), CONFIG, "energy.gpus[0]"),
    # [search] choices: each list is a categorical of the search space, refused before the baseline's calls
    Case("proposer-temperatures-empty", append(CONFIG, "\n[search]\nproposer_temperatures = []\n"), CONFIG,
         "search.proposer_temperatures"),
    Case("proposer-temperature-too-hot", append(CONFIG, "\n[search]\nproposer_temperatures = [0.7, 5.0]\n"), CONFIG,
         "search.proposer_temperatures[1]"),
    Case("producer-temperature-negative", append(CONFIG, "\n[search]\nproducer_temperatures = [-1.0]\n"), CONFIG,
         "search.producer_temperatures[0]"),
    Case("revision-rounds-out-of-range", append(CONFIG, "\n[search]\nrevision_rounds = [0, 9]\n"), CONFIG,
         "search.revision_rounds[1]"),
    Case("operators-empty", append(CONFIG, "\n[search]\noperators = []\n"), CONFIG, "search.operators"),
    Case("operator-twice", append(CONFIG, '\n[search]\noperators = ["rephrase", "rephrase"]\n'), CONFIG,
         "search.operators: rephrase listed more than once"),
    Case("optimizable-twice", edit(CONFIG, '["producer.md", "planner.md"]', '["producer.md", "producer.md"]'),
         CONFIG, "workspace.optimizable"),
    Case("timeout-zero", edit(CONFIG, "timeout_s = 300", "timeout_s = 0"), CONFIG, "backends.timeout_s"),
    # TOML's inf: an OverflowError traceback from the HTTP client's first call
    Case("timeout-infinite", both(
        edit(CONFIG, "timeout_s = 300", "timeout_s = inf"),
        edit(CONFIG, 'openai_base_url = "http://127.0.0.1:8080/v1"', 'openai_base_url = "http://127.0.0.1:9/v1"'),
        edit(CONFIG, 'backend = "embedded"\nmodel = "smollm2-135m"\nseed = 7  # a fixed seed makes runs'
                     ' repeatable; `eval --repeats 3` shows what another seed does\ntemperature = 0.3',
             'backend = "openai"\nmodel = "m"\nseed = 7\ntemperature = 0.3')),
         CONFIG, "backends.timeout_s: Input should be a finite number"),
    Case("config-not-utf8", write(CONFIG, b"\xff\xfe[workspace]\n"), CONFIG, "cannot read"),
    Case("config-missing", delete(CONFIG), CONFIG, "not found"),
    # models and servers
    Case("unknown-model", producer_model(lambda tmp: "smollm2-1b"), CONFIG, "portfolios.default.producer.model"),
    Case("gguf-missing", producer_model(lambda tmp: str(tmp / "absent.gguf")), CONFIG,
         "portfolios.default.producer.model"),
    Case("gguf-not-a-gguf", producer_model(not_gguf), CONFIG, "not a GGUF file"),
    Case("gguf-a-directory", producer_model(gguf_dir), CONFIG, "portfolios.default.producer.model"),
    Case("ollama-unreachable", both(
        edit(CONFIG, 'ollama_url = "http://127.0.0.1:11434"', 'ollama_url = "http://127.0.0.1:9"'),
        edit(CONFIG, 'backend = "embedded"\nmodel = "smollm2-135m"\nseed = 7  # a fixed seed makes runs'
                     ' repeatable; `eval --repeats 3` shows what another seed does\ntemperature = 0.3',
             'backend = "ollama"\nmodel = "qwen2.5:3b"\nseed = 7\ntemperature = 0.3')),
         CONFIG, "http://127.0.0.1:9"),
    Case("openai-bad-url", both(
        edit(CONFIG, 'openai_base_url = "http://127.0.0.1:8080/v1"', 'openai_base_url = "not-a-url"'),
        edit(CONFIG, 'backend = "embedded"\nmodel = "smollm2-135m"\nseed = 7  # a fixed seed makes runs'
                     ' repeatable; `eval --repeats 3` shows what another seed does\ntemperature = 0.3',
             'backend = "openai"\nmodel = "m"\nseed = 7\ntemperature = 0.3')),
         CONFIG, "backends.openai_base_url: 'not-a-url' is not an http:// or https:// URL"),
    # a URL the HTTP client cannot parse: httpx.InvalidURL, a traceback
    Case("openai-url-bad-ipv6", both(
        edit(CONFIG, 'openai_base_url = "http://127.0.0.1:8080/v1"', 'openai_base_url = "http://[::1:8080/v1"'),
        edit(CONFIG, 'backend = "embedded"\nmodel = "smollm2-135m"\nseed = 7  # a fixed seed makes runs'
                     ' repeatable; `eval --repeats 3` shows what another seed does\ntemperature = 0.3',
             'backend = "openai"\nmodel = "m"\nseed = 7\ntemperature = 0.3')),
         CONFIG, "backends.openai_base_url: 'http://[::1:8080/v1' is not a valid URL"),
    Case("role-url-bad-port", edit(CONFIG, "temperature = 0.3", 'temperature = 0.3\nbase_url = "http://127.0.0.1:80a/v1"'),
         CONFIG, "portfolios.default.producer.base_url", commands=("eval", "run", "doctor")),
    # the rubric
    Case("rubric-weight-negative", edit(RUBRIC, "weight = 3", "weight = -3"), RUBRIC, "dimensions[0].weight"),
    Case("rubric-no-dimensions", write(RUBRIC, "dimensions = []\n"), RUBRIC, "dimensions"),
    Case("rubric-duplicate-dimension", edit(RUBRIC, 'name = "completeness"', 'name = "relevance"'), RUBRIC,
         "dimensions: dimension names must be unique"),
    # a dimension named as one of the judge's own fields: a traceback after runs/ was written
    Case("rubric-dimension-named-critique", edit(RUBRIC, 'name = "depth"', 'name = "critique"'), RUBRIC,
         "dimensions[2].name: 'critique' is reserved by the judge"),
    Case("rubric-missing", edit(CONFIG, "[workspace]\n", '[workspace]\nrubric = "rubrics/none.toml"\n'),
         "rubrics/none.toml", "file not found"),
    Case("rubric-path-empty", edit(CONFIG, "[workspace]\n", '[workspace]\nrubric = ""\n'), CONFIG,
         "workspace.rubric: the path is empty"),
    Case("rubric-yaml-syntax", both(
        edit(CONFIG, "[workspace]\n", '[workspace]\nrubric = "rubrics/rubric.yaml"\n'),
        write("rubrics/rubric.yaml", "dimensions:\n  - name: relevance\n   description: [unclosed\n")),
         "rubrics/rubric.yaml", "syntax error"),
    Case("rubric-yaml-not-a-mapping", both(
        edit(CONFIG, "[workspace]\n", '[workspace]\nrubric = "rubrics/rubric.yaml"\n'),
        write("rubrics/rubric.yaml", "- relevance\n- depth\n")),
         "rubrics/rubric.yaml", "top level must be a table/mapping"),
    # the task suite
    Case("invalid-regex", edit(TASKS, FIRST_CRITERIA, 'criteria = [\n  { kind = "regex", value = "([" },'), TASKS,
         "tasks[0].criteria[0]"),
    Case("unknown-criterion", edit(TASKS, FIRST_CRITERIA, 'criteria = [\n  { kind = "sparkles" },'), TASKS,
         "tasks[0].criteria[0]"),
    Case("count-criterion-string", edit(TASKS, '{ kind = "min_numbered", value = 5 }',
                                        '{ kind = "min_numbered", value = "five" }'), TASKS, "tasks[0].criteria[0]"),
    Case("empty-task-suite", write(TASKS, "tasks = []\n"), TASKS, "tasks"),
    Case("empty-tasks-file", write(TASKS, ""), TASKS, "tasks"),
    Case("task-without-criteria", write(TASKS, '[[tasks]]\nid = "a"\nprompt = "Say hi."\ncriteria = []\n'), TASKS,
         "tasks[0].criteria"),
    Case("duplicate-task-ids", edit(TASKS, 'id = "backup-failure"', 'id = "onboarding-checklist"'), TASKS,
         "tasks: task ids must be unique"),
    Case("no-search-task", write(TASKS, '[[tasks]]\nid = "a"\nsplit = "holdout"\nprompt = "Hi."\n'
                                       'criteria = [{ kind = "max_words", value = 9 }]\n'), TASKS, "tasks"),
    Case("unknown-task-key", edit(TASKS, 'id = "backup-failure"', 'id = "backup-failure"\npriority = 1'), TASKS,
         "tasks[1].priority: unknown key"),
    Case("tasks-yaml-wrong-type", both(
        edit(CONFIG, "[workspace]\n", '[workspace]\ntasks = "rubrics/tasks.yaml"\n'),
        write("rubrics/tasks.yaml", "tasks:\n  - id: a\n    prompt: 5\n    criteria: [{kind: no_placeholders}]\n")),
         "rubrics/tasks.yaml", "tasks[0].prompt"),
    # a key twice in YAML: PyYAML kept the last, so the first criteria list was dropped without a word
    Case("tasks-yaml-key-twice", both(
        edit(CONFIG, "[workspace]\n", '[workspace]\ntasks = "rubrics/tasks.yaml"\n'),
        write("rubrics/tasks.yaml", "tasks:\n  - id: a\n    prompt: Hi.\n    criteria: [{kind: max_words, value: 9}]\n"
                                    "    criteria: [{kind: no_placeholders}]\n")),
         "rubrics/tasks.yaml", "found duplicate key 'criteria'"),
    Case("unknown-task-option", lambda root, tmp: None, TASKS, "no task with id nosuch", commands=("eval",),
         args=("--task", "nosuch")),
    # instruction files
    Case("producer-missing", delete("instructions/producer.md"), "instructions/producer.md", "not found"),
    Case("producer-empty", write("instructions/producer.md", "  \n"), "instructions/producer.md", "empty"),
    Case("evaluator-missing", delete("rubrics/evaluator.md"), "rubrics/evaluator.md", "not found"),
    # options
    Case("bad-timeout", lambda root, tmp: None, "", "--timeout", commands=("run",), args=("--timeout", "soon")),
    # `--timeout 8` for a night would stop after 8 seconds: the unit is asked for, not guessed
    Case("duration-without-unit", lambda root, tmp: None, "", "--timeout 8: give the unit, 8h, 8m or 8s",
         commands=("run",), args=("--timeout", "8")),
    Case("no-stop-condition", lambda root, tmp: None, "", "--trials", commands=("run",), args=("--no-trials",)),
]


def tree_digest(root: Path) -> str:
    """Every file of the workspace (runs/ included, .git excluded) plus git's HEAD, branches and status."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if ".git" not in p.relative_to(root).parts):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    for args in (["rev-parse", "HEAD"], ["branch", "-a"], ["status", "--porcelain", "--untracked-files=all"]):
        h.update(subprocess.run(["git", *args], cwd=root, capture_output=True).stdout)
    return h.hexdigest()


@pytest.fixture
def starter_models(monkeypatch):
    """The starter's embedded model as a fake that lists it (and must never be asked for a completion);
    every other role config goes to the real backends, so preflight checks them for real."""
    def never(request):
        raise AssertionError("a bad input must be refused before any model call")

    fake = FakeBackend(never, models=[STARTER_MODEL])

    def factory(role, backends):
        if role.backend == "embedded" and role.model == STARTER_MODEL:
            return fake
        return create_backend(role, backends)

    monkeypatch.setattr(harness_module, "create_backend", factory)
    monkeypatch.setattr(preflight_module, "create_backend", factory)


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("command,case", [(cmd, c) for c in CASES for cmd in c.commands],
                         ids=[f"{cmd}-{c.id}" for c in CASES for cmd in c.commands])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(command, case, workspace_dir, tmp_path, starter_models):
    root = workspace_dir
    case.mutate(root, tmp_path)
    before = tree_digest(root)
    args = [command, "-w", str(root), *case.args]
    if command == "run" and "--timeout" not in case.args and "--no-trials" not in case.args:
        args += ["--trials", "1"]
    args = [a for a in args if a != "--no-trials"]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    if case.file:
        assert case.file in line, line
    assert case.field in line, line
    assert result.stdout.strip() == "", result.stdout
    assert tree_digest(root) == before
    assert not (root / "runs" / "autoresearch.db").exists()
    assert not os.path.exists(root / "runs" / "optuna.db")


@pytest.mark.parametrize("args,names", [
    (["eval", "--repeats", "0"], ["autoresearch eval", "'--repeats'", "0 is not in the range"]),
    (["run", "--trails", "5"], ["autoresearch run", "'--trails'", "Did you mean '--trials'?"]),
    (["show"], ["autoresearch show", "Missing argument 'REF'"]),
    (["--trials", "5"], ["autoresearch:", "No such option '--trials'"]),
])
def test_a_bad_option_is_one_line_naming_it_with_exit_2(args, names, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no workspace here: nothing may be read, nothing written
    result = CliRunner().invoke(main, args, prog_name="autoresearch")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # click's own usage block is three lines
    assert lines[0].startswith("error: ") and all(name in lines[0] for name in names), lines[0]
    assert result.stdout == "" and list(tmp_path.iterdir()) == []
