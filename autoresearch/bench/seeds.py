"""bench_search's results, one file per seed (seed-N.json): each seed runs on its own, as one command that adds
its file to the folder, and the report is rebuilt from every seed file there. A benchmark of five seeds then
fits in separate runs of under an hour and a half each, and a crash loses only the seed under way. A command that
runs some methods of a seed whose file exists keeps the other methods' runs from it (kept_runs): one method is run
again after a change to it, not the whole seed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

# Options that must match between seed files for their figures to add up (methods may differ: a row per method
# counts the seeds it ran in).
SAME_OPTIONS = ("budget", "workspace", "portfolio", "n_ctx", "mipro_candidates", "backend", "holdout_repeats", "draws")
# What a seed file written before an option existed ran with.
DEFAULTS = {"draws": False}
FIELDS = ("seed", "options", "machine", "baseline", "runs")
_NAME = re.compile(r"seed-(\d+)\.json$")


def seed_path(out: Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}.json"


def write_seed(out: Path, record: dict[str, Any]) -> Path:
    """Write one seed's record whole or not at all (a stopped run leaves no half-written file)."""
    path = seed_path(out, record["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def load_seeds(out: Path) -> list[dict[str, Any]]:
    """Every seed file in `out`, by seed; a file that is not a seed record, or whose options differ from the
    first one's, is a ValueError naming the file and the field."""
    found: list[tuple[Path, dict[str, Any]]] = []
    paths = [p for p in Path(out).glob("seed-*.json") if _NAME.search(p.name)]
    for path in sorted(paths, key=lambda p: int(_NAME.search(p.name).group(1))):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a bench_search seed file ({exc})") from None
        missing = [f for f in FIELDS if not isinstance(record, dict) or f not in record]
        if missing:
            raise ValueError(f"{path}: not a bench_search seed file (no field {missing[0]!r})")
        if record["seed"] != int(_NAME.search(path.name).group(1)):
            raise ValueError(f"{path}: field 'seed' is {record['seed']!r}, but the file is named for another seed")
        found.append((path, record))
    if found:
        first_path, first = found[0]
        for path, record in found[1:]:
            _check_adds_up(path, record, first_path, first)
    return [record for _, record in found]


def check_joins(out: Path, seed: int, head: dict[str, Any]) -> None:
    """Before a seed runs: a ValueError naming its file and the field when its record (`head`, without runs) would
    not add up with the other seed files in `out`, which load_seeds would refuse only after the run."""
    others = sorted((p for p in Path(out).glob("seed-*.json") if _NAME.search(p.name)
                     and int(_NAME.search(p.name).group(1)) != seed),
                    key=lambda p: int(_NAME.search(p.name).group(1)))
    if not others:
        return
    try:
        first = json.loads(others[0].read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{others[0]}: not a bench_search seed file ({exc})") from None
    if isinstance(first, dict):
        _check_adds_up(seed_path(out, seed), head, others[0], first)


def _check_adds_up(path: Path, record: dict[str, Any], first_path: Path, first: dict[str, Any]) -> None:
    for name in SAME_OPTIONS:
        mine, theirs = option(record, name), option(first, name)
        if mine != theirs:
            raise ValueError(f"{path}: field 'options.{name}' is {mine!r}, but {first_path.name} has "
                             f"{theirs!r}; results of other settings do not add up (use another --out)")
    for name in ("evaluation", "instructions"):  # files written before the suite was recorded lack it
        mine, theirs = record.get("suite", {}).get(name), first.get("suite", {}).get(name)
        if mine and theirs and mine != theirs:
            raise ValueError(f"{path}: field 'suite.{name}' differs from {first_path.name}'s: the suite's "
                             f"{'tasks, rubric or scoring' if name == 'evaluation' else 'starting instructions'}"
                             " changed between the runs (use another --out)")


def kept_runs(out: Path, seed: int, methods: Sequence[str], head: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of methods other than `methods` in this seed's existing file, to keep beside a new run of `methods`
    ([] where there is none). `head` is the new record without its runs: a ValueError names the file and field when
    the earlier runs were measured under other options, on another suite or from another start (its scores on
    this machine and build), whose figures would not compare."""
    path = seed_path(out, seed)
    if not path.exists():
        return []
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        runs = [run for run in earlier["runs"] if run["method"] not in methods]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a bench_search seed file ({type(exc).__name__}: {exc})") from None
    if not runs:
        return []
    for name in SAME_OPTIONS:
        mine, theirs = option(head, name), option(earlier, name)
        if mine != theirs:
            raise ValueError(f"{path}: field 'options.{name}' is {theirs!r} there and {mine!r} now; its runs of other "
                             "methods would not compare with this one's (use another --out)")
    for part, name in (("suite", "evaluation"), ("suite", "instructions"), ("baseline", "search"),
                       ("baseline", "holdout")):
        mine, theirs = head.get(part, {}).get(name), earlier.get(part, {}).get(name)
        if mine != theirs:
            raise ValueError(f"{path}: field '{part}.{name}' is {theirs!r} there and {mine!r} now: the start was "
                             "measured otherwise (another suite, machine or build), so its runs of other methods "
                             "would not compare with this one's (use another --out)")
    return runs


def option(record: dict[str, Any], name: str) -> Any:
    """A seed record's option, or what files written before the option existed ran with."""
    return record.get("options", {}).get(name, DEFAULTS.get(name))


def kept_notes(out: Path, seed: int, labels: Sequence[str]) -> list[str]:
    """What this seed's existing file noted about the runs of the methods labelled `labels` (how each stopped,
    its calls, what failed), to keep beside those runs; read after kept_runs has checked the file."""
    path = seed_path(out, seed)
    if not path.exists() or not labels:
        return []
    notes = json.loads(path.read_text(encoding="utf-8")).get("notes", [])
    return [note for note in notes if note.startswith(tuple(f"{label}, seed {seed}: " for label in labels))]
