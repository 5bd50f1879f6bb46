"""Reading the workspace's TOML and YAML files into strict pydantic models: the first error becomes one
ConfigError naming the file and the field."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError
from ..text import one_line


class Strict(BaseModel):
    """The base of every config model: unknown keys and values of the wrong type are refused, nothing is changed."""

    # strict: a quoted number or a 1 for true is refused, not converted (max_tokens = "280" is a typo to show)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def refused(value: Any, problem: str | None) -> Any:
    """The value, or the validator's ValueError where a *_problem function found one (pydantic names the field)."""
    if problem:
        raise ValueError(problem)
    return value


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, refusing a key given twice in one mapping: PyYAML keeps the last silently, so a
    task's second `criteria:` would drop its first list unseen (TOML refuses the same as a syntax error)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden, as YAML says
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: the base class refuses it with its own error
                continue
            if repeated:
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        f"found duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_text(path: Path, missing: str = "file not found") -> str:
    """A workspace file's UTF-8 text; a folder, a missing file (`missing` says which) or an unreadable one is a
    ConfigError naming it."""
    if not path.is_file():
        raise ConfigError(str(path), None, "a folder, not a file" if path.is_dir() else missing)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc}") from None


def read_mapping(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML file into a dict; syntax errors become ConfigError."""
    text = read_text(path)
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.load(text, Loader=_UniqueKeyLoader) or {}  # noqa: S506 - a SafeLoader
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), None, "syntax error: " + " ".join(str(exc).split())) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), None, "top level must be a table/mapping")
    return data


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_FOUND = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "a table"}


def _shown(value: Any) -> str:
    """A value as the config file spells it, cut to a line's worth."""
    return one_line(json.dumps(value, ensure_ascii=False) if isinstance(value, (str, bool)) else repr(value), 40)


def parse_model(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    """Validate data against a model; the first error becomes a ConfigError naming its field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"].endswith("_type") and type(err["input"]) in _FOUND:
            msg = f"{msg}, not {_FOUND[type(err['input'])]} ({_shown(err['input'])})"
        raise ConfigError(str(path), _loc(loc) or None, msg) from None
