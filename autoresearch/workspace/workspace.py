"""A workspace on disk: settings, the mutable instructions and the fixed evaluation."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, WorkspaceError
from .config import DEGENERATE_RULE, Portfolio, Settings, load_settings
from .reading import read_text
from .suite import Rubric, TaskSuite, load_rubric, load_tasks

CONFIG_NAME = "autoresearch.toml"
INSTRUCTIONS_DIR = "instructions"
RUNS_DIR = "runs"
ROLE_FILES = ("planner.md", "producer.md")  # the mutable artifact: one file per role the loop may change
# The searched knob values ([search] producer_temperatures, revision_rounds) of the instructions beside them:
# committed with each keep of a study that searches knobs, read back by a study that starts from the branch.
KNOBS_FILE = "knobs.json"


def knobs_text(knobs: dict) -> str:
    """The knobs file's text for these knob values (sorted, one per line: a readable diff)."""
    return json.dumps(knobs, sort_keys=True, indent=1) + "\n"
STARTER = Path(__file__).parent.parent / "starter"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Workspace:
    """Everything one `eval` or `run` needs, validated; the library never reads files after this."""

    root: Path
    settings: Settings
    rubric: Rubric
    suite: TaskSuite
    instructions: dict[str, str]  # file name under instructions/ → text
    evaluator_instructions: str

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    @property
    def instructions_dir(self) -> Path:
        return self.root / INSTRUCTIONS_DIR

    def portfolio(self, name: str | None = None) -> Portfolio:
        name = name or self.settings.workspace.portfolio
        if name not in self.settings.portfolios:
            known = ", ".join(sorted(self.settings.portfolios))
            raise ConfigError(str(self.root / CONFIG_NAME), f"portfolios.{name}", f"no such portfolio (known: {known})")
        return self.settings.portfolios[name]

    def evaluation_hash(self) -> str:
        """Hash of the fixed evaluation: rubric, task suite, evaluator instructions, scoring."""
        # The keep rule's settings decide which scores are kept, not what they are: not part of the evaluation.
        scoring = self.settings.scoring.model_dump(exclude={"confidence", "holdout_gate", "across_tasks", "early_keep"})
        if not scoring["energy_weight"]:
            # Left out at its default, so studies made before the setting existed keep their names.
            del scoring["energy_weight"]
        if scoring["degenerate_guard"]:  # the guard's rule is part of what the scores mean
            scoring["degenerate_rule"] = DEGENERATE_RULE
        blob = json.dumps(
            [self.rubric.model_dump(), self.suite.model_dump(), self.evaluator_instructions, scoring],
            sort_keys=True,
        )
        return text_hash(blob)

    def instructions_hash(self, instructions: dict[str, str] | None = None) -> str:
        return text_hash(json.dumps(instructions or self.instructions, sort_keys=True))


def find_workspace(start: str | Path) -> Path:
    """The nearest folder from start upward that holds autoresearch.toml, as git finds a repository from any of
    its folders; start itself where none does (the error of what reads it then names start)."""
    start = Path(start).resolve()
    return next((folder for folder in (start, *start.parents) if (folder / CONFIG_NAME).is_file()), start)


def load_workspace(path: str | Path = ".") -> Workspace:
    """Read and validate a workspace; every problem is a ConfigError naming file and field."""
    root = Path(path).resolve()
    config_path = root / CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(str(config_path), None, "not found: run `autoresearch init DIR` to create a workspace")
    settings = load_settings(config_path)
    ws = settings.workspace
    rubric = load_rubric(root / ws.rubric)
    suite = load_tasks(root / ws.tasks)
    instructions = {name: _read_instruction(root / INSTRUCTIONS_DIR / name) for name in ROLE_FILES}
    evaluator = _read_instruction(root / ws.evaluator_instructions)
    return Workspace(root, settings, rubric, suite, instructions, evaluator)


def _read_instruction(path: Path) -> str:
    text = read_text(path, "instruction file not found")
    if not text.strip():
        raise ConfigError(str(path), None, "instruction file is empty")
    return text


def init_workspace(target: str | Path) -> Path:
    """Copy the starter workspace into target and make it a git repository with one commit."""
    root = Path(target).resolve()
    if root.exists() and any(root.iterdir()):
        raise WorkspaceError(f"{root}: directory exists and is not empty")
    shutil.copytree(STARTER, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    (root / RUNS_DIR).mkdir(exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    # Signing is off for this one commit: a global commit.gpgsign would otherwise prompt or fail here.
    _git(root, "-c", "user.name=autoresearch", "-c", "user.email=autoresearch@localhost",
         "-c", "commit.gpgsign=false", "commit", "-q", "-m", "autoresearch: starter workspace")
    return root


def _git(cwd: Path, *args: str) -> None:
    try:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise WorkspaceError("git is not installed; it is needed to version instructions") from None
    except subprocess.CalledProcessError as exc:
        raise WorkspaceError(f"git {args[0]} failed in {cwd}: {exc.stderr.strip()}") from None
