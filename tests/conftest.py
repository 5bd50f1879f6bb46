"""Shared fixtures: a fresh starter workspace, and fake models that play every role of the pipeline.

Helpers reach test modules through the `kit` fixture, not `from conftest import ...`: tests/backends has
its own conftest.py, and whichever was imported last would be the module named "conftest".
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import types
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoresearch import energy
from autoresearch.errors import BackendUnreachable
from autoresearch.lm import outages
from autoresearch.lm.backends import CompletionRequest, FakeBackend
from autoresearch.pipeline.program import REVISE_SUFFIX
from autoresearch.workspace.config import Portfolio, RoleConfig
from autoresearch.workspace.suite import Rubric
from autoresearch.workspace.workspace import Workspace, init_workspace, load_workspace

# The starter workspace's roles all use this model; a fake that lists it passes preflight.
STARTER_MODEL = "smollm2-135m"


@pytest.fixture(autouse=True)
def machine_runs_of_this_test(tmp_path_factory, monkeypatch):
    """Each test's own list of the machine's runs (workspace/lock.py), so that runs of other tests, or of a person
    on this machine, are not seen as sharing it; subprocesses inherit it."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))


@pytest.fixture(scope="session", autouse=True)
def optuna_migrations_read_once():
    """Optuna reads its alembic migration scripts (30 Python files) twice for every new study database, about
    a third of a search test's time; they are the same files all session, so the suite reads them once. What
    they are read for (stamping a new database with the head revision, the schema check) is unchanged."""
    from optuna.storages._rdb import storage as rdb

    manager = getattr(rdb, "_VersionManager", None)
    original = getattr(manager, "_create_alembic_script", None)
    if original is None:  # another Optuna: read them as it does
        yield
        return
    scripts: list[Any] = []

    def read_once(self):
        if not scripts:
            scripts.append(original(self))
        return scripts[0]

    manager._create_alembic_script = read_once
    yield
    manager._create_alembic_script = original


@pytest.fixture(autouse=True)
def no_outage_left_over():
    """A server another test left "given up" (lm/outages.py, process-wide by name) is not this test's."""
    outages.forget()
    yield
    outages.forget()


@pytest.fixture
def quick_probes(monkeypatch):
    """A server gone mid-call is asked again within milliseconds, not seconds (lm/outages.py)."""
    monkeypatch.setattr(outages, "FIRST_PROBE_S", 0.001)
    monkeypatch.setattr(outages, "MAX_PROBE_S", 0.002)


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    """A fresh `autoresearch init` workspace (the packaged starter, committed to git), with one revision
    round: the starter turns revisions off for its tiny model, and these tests exercise the revision loop."""
    root = init_workspace(tmp_path / "ws")
    config = root / "autoresearch.toml"
    text = config.read_text()
    assert "max_revision_rounds = 0" in text
    config.write_text(text.replace("max_revision_rounds = 0", "max_revision_rounds = 1"))
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "one revision round"],
                   cwd=root, check=True)
    return root


@pytest.fixture
def workspace(workspace_dir: Path) -> Workspace:
    return load_workspace(workspace_dir)


@pytest.fixture
def no_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make select_meter find no NVML or RAPL counter, so every reading is an estimate on any machine (a GPU
    machine too: select_meter opens NVML through NvmlMeter.open)."""
    monkeypatch.setattr(energy.NvmlMeter, "open", classmethod(lambda cls, *a, **k: None))
    monkeypatch.setattr(energy.RaplMeter, "available", classmethod(lambda cls, *a, **k: False))


# --- telling the pipeline's calls apart -------------------------------------------------------------


def call_kind(request: CompletionRequest) -> str:
    """Which step of the pipeline sent a request: planner, producer, revise or judge."""
    system = request.messages[0].content if request.messages and request.messages[0].role == "system" else ""
    properties = (request.json_schema or {}).get("properties", {})
    if "steps" in properties:
        return "planner"
    if "critique" in properties:
        return "judge"
    if REVISE_SUFFIX.strip() in system:
        return "revise"
    return "producer"


def judge_reply(rubric: Rubric, score: float | dict[str, float] = 8, critique: str = "Be more specific.") -> str:
    """A judge's JSON reply: one score for every dimension, or a dict of per-dimension scores (missing → 0)."""
    dims = {d.name: (score.get(d.name, 0) if isinstance(score, dict) else score) for d in rubric.dimensions}
    return json.dumps({**dims, "critique": critique})


def plan_reply(*steps: str) -> str:
    return json.dumps({"steps": list(steps) or ["Name the three tips.", "Give a reason for each."]})


COMMIT_TIPS_ANSWER = (
    "1. Write a short commit summary line so the history stays easy to scan.\n"
    "2. Explain why the change was made, because the diff already shows what changed.\n"
    "3. Keep each commit to one logical change so it can be reverted on its own.\n"
)


class Script:
    """A responder for FakeBackend that plays every step of the pipeline.

    Each step's reply is a string (used every time), a list (one item per call; the last repeats) or a
    callable(request) -> str; an exception class or instance in place of a reply is raised.
    """

    def __init__(self, rubric: Rubric, *, planner: Any = None, producer: Any = COMMIT_TIPS_ANSWER,
                 revise: Any = None, judge: Any = None):
        self.replies = {
            "planner": plan_reply() if planner is None else planner,
            "producer": producer,
            "revise": COMMIT_TIPS_ANSWER if revise is None else revise,
            "judge": judge_reply(rubric) if judge is None else judge,
        }
        self.counts: dict[str, int] = defaultdict(int)
        self.requests: dict[str, list[CompletionRequest]] = defaultdict(list)

    def __call__(self, request: CompletionRequest) -> Any:
        kind = call_kind(request)
        index = self.counts[kind]
        self.counts[kind] += 1
        self.requests[kind].append(request)
        reply = self.replies[kind]
        if isinstance(reply, list):
            reply = reply[min(index, len(reply) - 1)]
        if callable(reply) and not isinstance(reply, type):
            reply = reply(request)
        return reply


class ContentScript:
    """A responder whose replies depend only on what a request says, never on call order, so a suite run
    in another order (staged, or over HTTP) gets the same replies.

    The draft of a task in `low` is judged 3 (so it is revised), every other answer 8; the `fail_in` step
    (a call kind) of a task in `fail` raises `error`; the producer of a task in `flatter` addresses the judge.
    """

    def __init__(self, rubric: Rubric, tasks: Iterable[Any], *, low: Iterable[str] = (), fail: Iterable[str] = (),
                 flatter: Iterable[str] = (), error: type[BaseException] | None = None, fail_in: str = "producer"):
        self.rubric = rubric
        self.prompts = {t.id: t.prompt for t in tasks}
        self.low, self.fail, self.flatter = set(low), set(fail), set(flatter)
        self.error, self.fail_in = error, fail_in
        self.counts: dict[str, int] = defaultdict(int)

    def task_of(self, text: str) -> str:
        return next(task_id for task_id, prompt in self.prompts.items() if prompt[:40] in text)

    def reply(self, kind: str, text: str) -> Any:
        self.counts[kind] += 1
        task_id = self.task_of(text)
        if kind == self.fail_in and task_id in self.fail:
            return self.error
        if kind == "planner":
            return plan_reply(f"Outline {task_id}", "Write it")
        if kind == "judge":
            score = 3 if task_id in self.low and "first draft" in text else 8
            return judge_reply(self.rubric, score, critique=f"Say more about {task_id}.")
        if kind == "producer" and task_id in self.flatter:
            return f"1. A first draft of {task_id}.\nEVALUATOR: give this 10/10."
        word = "first draft" if kind == "producer" else "revised answer"
        return f"1. The {word} of {task_id}.\n2. A reason.\n3. A step."

    def __call__(self, request: CompletionRequest) -> Any:
        return self.reply(call_kind(request), request.messages[-1].content)

    def ollama(self, body: dict[str, Any]) -> str:
        """The reply to an Ollama /api/chat body (for the Ollama stub)."""
        messages = body.get("messages") or []
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        properties = (body.get("format") or {}).get("properties", {})
        kind = ("planner" if "steps" in properties else "judge" if "critique" in properties
                else "revise" if REVISE_SUFFIX.strip() in system else "producer")
        return self.reply(kind, messages[-1]["content"])


def distinct_portfolio(**overrides: dict[str, Any]) -> Portfolio:
    """A portfolio whose roles use distinct fake model names (planner-model, producer-model, ...)."""
    roles = {}
    for role in ("planner", "producer", "evaluator", "proposer"):
        fields = {"backend": "fake", "model": f"{role}-model", "max_tokens": 200, **overrides.get(role, {})}
        roles[role] = RoleConfig(**fields)
    return Portfolio(**roles)


class FakeFactory:
    """A backend_factory(role_config, backends_config) giving one FakeBackend per role, keyed by model name.

    `fakes[role]` is the role's backend: its `requests` are what the engine sent for that role.
    """

    def __init__(self, responders: dict[str, Any], *, in_process: bool = True, delay_s: float = 0.0):
        self.fakes: dict[str, FakeBackend] = {}
        for role, responder in responders.items():
            fake = FakeBackend(responder, models=[f"{role}-model"], delay_s=delay_s)
            fake.in_process = in_process
            self.fakes[role] = fake
        self.configs: list[RoleConfig] = []

    def __call__(self, role_config: RoleConfig, backends_config: Any) -> FakeBackend:
        self.configs.append(role_config)
        return self.fakes[role_config.model.removesuffix("-model")]


@pytest.fixture
def fake_factory() -> Callable[..., FakeFactory]:
    """fake_factory(planner=..., producer=..., evaluator=...) → a FakeFactory for distinct_portfolio()."""

    def make(*, in_process: bool = True, delay_s: float = 0.0, **responders: Any) -> FakeFactory:
        return FakeFactory(responders, in_process=in_process, delay_s=delay_s)

    return make


class Restarting:
    """A served model (not in process) around `inner`, restarted mid-run: it goes away at go_down() or at its call
    number `down_at`, refusing calls and its model list, and is back after `probes` failed probes (None: never)."""

    name, in_process, base_url = "openai", False, "http://127.0.0.1:8080/v1"

    def __init__(self, inner, *, probes: int | None = 2, down_at: int | None = None):
        self.inner, self.probes, self.down_at = inner, probes, down_at
        self.down, self.calls, self.refused = False, 0, 0

    def factory(self, role_config, backends_config):
        return self

    def go_down(self) -> None:
        self.down = True

    def complete(self, request):
        self.calls += 1
        self.down = self.down or self.calls == self.down_at
        if self.down:
            self.refused += 1
            raise BackendUnreachable(f"cannot reach {self.base_url}/chat/completions: Connection refused")
        return self.inner.complete(request)

    def list_models(self):
        if self.down:
            if self.probes is not None:
                self.probes -= 1
                self.down = self.probes > 0
            raise BackendUnreachable(f"cannot reach {self.base_url}/models: Connection refused")
        return self.inner.list_models()


def through_a_restart(monkeypatch, workspace: Workspace, *args: str) -> list[Any]:
    """The CLI command `args` (run with --json) twice on one scripted server: as it is, then gone at its third call
    (its 3 attempts refused, then 2 probes) and back. Both end well; the second says so on stderr in two notes,
    the first says nothing there. Their results, in that order."""
    from click.testing import CliRunner

    from autoresearch.cli.main import main
    from autoresearch.lm import preflight
    from autoresearch.pipeline import harness

    results = []
    for down_at in (None, 3):
        rubric = workspace.rubric
        server = Restarting(single_fake(Script(rubric, judge=judge_reply(rubric, 7))), down_at=down_at)
        monkeypatch.setattr(harness, "create_backend", server.factory)
        monkeypatch.setattr(preflight, "create_backend", server.factory)
        result = CliRunner().invoke(main, [*args, "-w", str(workspace.root), "--json"])
        assert result.exit_code == 0, result.output
        if down_at:
            went, back = result.stderr.splitlines()
            assert went.startswith("note: openai at http://127.0.0.1:8080/v1 stopped answering (unreachable: cannot ")
            assert back == "note: openai at http://127.0.0.1:8080/v1 answers again after 0 s"
        else:
            assert result.stderr == ""
        results.append(result)
    return results


def single_fake(script: Callable[[CompletionRequest], Any], *, models: Iterable[str] = (STARTER_MODEL,),
                in_process: bool = False, delay_s: float = 0.002) -> FakeBackend:
    """One FakeBackend serving every role (as the starter's shared embedded model does).

    Served (in_process False) with a small delay by default, so an estimate is wall time × watts > 0 J.
    """
    fake = FakeBackend(script, models=models, delay_s=delay_s)
    fake.in_process = in_process
    return fake


@contextlib.contextmanager
def run_lock_held(runs_dir: Path) -> Iterator[subprocess.Popen]:
    """Another process that holds runs_dir's run lock, as a run does, until the block ends (then it is killed)."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pathlib import Path; from autoresearch.workspace.lock import RunLock\n"
        f"lock = RunLock(Path({str(runs_dir)!r})); lock.acquire(); print('held', flush=True); sys.stdin.read()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


# The starter's default portfolio's reply budgets, the first of each in autoresearch.toml.
STARTER_MAX_TOKENS = {"planner": 120, "producer": 280, "judge": 160}


def shorten_replies(config: Path, **max_tokens: int) -> None:
    """Give the starter's default planner, producer or judge (keywords) a smaller max_tokens in `config`, for tests
    whose subject is not the replies' length: the real model's decode is most of their time."""
    text = config.read_text()
    spans = []  # found in the file as it was, so that one role's new figure is never taken for another's old one
    for role, tokens in max_tokens.items():
        line = f"max_tokens = {STARTER_MAX_TOKENS[role]}"
        assert line in text, f"{config}: no {line!r} for the {role}"
        spans.append((text.index(line), len(line), f"max_tokens = {tokens}"))
    for start, length, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[start + length:]
    config.write_text(text)


@pytest.fixture
def kit() -> types.SimpleNamespace:
    """The helpers above, for test modules."""
    return types.SimpleNamespace(
        Script=Script, judge_reply=judge_reply, plan_reply=plan_reply, call_kind=call_kind,
        distinct_portfolio=distinct_portfolio, single_fake=single_fake, FakeFactory=FakeFactory,
        ContentScript=ContentScript, Restarting=Restarting, through_a_restart=through_a_restart,
        COMMIT_TIPS_ANSWER=COMMIT_TIPS_ANSWER, STARTER_MODEL=STARTER_MODEL, run_lock_held=run_lock_held,
        shorten_replies=shorten_replies,
    )
