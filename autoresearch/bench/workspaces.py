"""Throw-away copies of a workspace for benchmark runs: one git repository per method and seed."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterator

from ..workspace.workspace import (
    CONFIG_NAME,
    INSTRUCTIONS_DIR,
    ROLE_FILES,
    RUNS_DIR,
    init_workspace,
    load_workspace,
)

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_HOLDOUT = re.compile(r"""(\bsplit\s*[=:]\s*)["']?holdout["']?""")


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False, log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """A new folder under the temporary directory, removed with everything in it on exit unless keep (then
    `log` is told where it stays)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
        elif log is not None:
            log(f"workspace copies kept in {path}")


@contextlib.contextmanager
def given_or_starter(workspace: Path | None, prefix: str) -> Iterator[Path]:
    """The given workspace (it keeps the evaluations made in it), or a starter made for this run and removed
    with it."""
    if workspace is not None:
        yield workspace
        return
    with scratch(prefix) as folder:
        yield starter(folder / "ws")


def starter(dest: Path) -> Path:
    """A fresh starter workspace (what `autoresearch init` creates)."""
    return init_workspace(dest)


def copy_workspace(source: Path, dest: Path, *, update: dict[str, Any] | None = None,
                   all_search: bool = False) -> Path:
    """Copy a workspace's settings, instructions and fixed evaluation into dest as a new git repository.

    update is merged into autoresearch.toml (nested tables, e.g. {"search": {"pruner": "none"}});
    all_search turns every holdout task into a search task. The copy is validated before it is returned.
    """
    source = Path(source).resolve()
    ws = load_workspace(source)
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=False)
    section = ws.settings.workspace
    files = [CONFIG_NAME, *(f"{INSTRUCTIONS_DIR}/{name}" for name in ROLE_FILES),
             section.rubric, section.tasks, section.evaluator_instructions]
    for rel in dict.fromkeys(files):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target)
    if update:
        config = tomllib.loads((dest / CONFIG_NAME).read_text(encoding="utf-8"))
        (dest / CONFIG_NAME).write_text(dump_toml(merge(config, update)), encoding="utf-8")
    if all_search:
        tasks = dest / section.tasks
        tasks.write_text(_HOLDOUT.sub(r'\1"search"', tasks.read_text(encoding="utf-8")), encoding="utf-8")
    (dest / RUNS_DIR).mkdir(exist_ok=True)
    (dest / ".gitignore").write_text("runs/*\n", encoding="utf-8")
    load_workspace(dest)  # a bad override fails here, naming file and field
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.name=autoresearch-bench", "-c", "user.email=bench@localhost",
         "-c", "commit.gpgsign=false", "commit", "-q", "-m", "bench: workspace copy")
    return dest


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """base with update merged in, table by table (neither is changed)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def dump_toml(data: dict[str, Any]) -> str:
    """A TOML document for nested tables of scalars and lists (what autoresearch.toml holds)."""
    lines: list[str] = []

    def emit(table: dict[str, Any], path: list[str]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v is not None}
        tables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if path and (scalars or not tables):
            lines.append(f"[{'.'.join(_key(p) for p in path)}]")
        for key, value in scalars.items():
            lines.append(f"{_key(key)} = {_value(value)}")
        if path and (scalars or not tables):
            lines.append("")
        for key, value in tables.items():
            emit(value, [*path, key])

    emit(data, [])
    return "\n".join(lines).rstrip() + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are all valid in a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
