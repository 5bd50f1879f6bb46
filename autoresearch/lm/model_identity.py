"""What answers a role's calls beyond its model's name: the scores of a study compare only under the same.

An `ollama pull` that updates a tag, another quantization of a GGUF under the same path or server alias, or a
new llama.cpp build all keep the model's name and move its scores (one build against another moved the
starter's composite by more than the keep threshold: docs/BENCHMARKS.md). A study reuses stored scores (an
identical variant's, the incumbent's, its noise), so each evaluation records the identity of the models that
made it (evaluations.models) and a run reuses only those made by the models now answering.

Each backend says what it can (`model_identity()`, optional): the embedded one a GGUF's size and hashes of its
head and tail and of blocks spread over its middle, with the llama.cpp build; Ollama the model's digest; an
OpenAI-compatible server the model entry's details beyond its name (llama-server's size and parameter count,
vLLM's root and context). A backend that can tell nothing (llama-cpp-python's server lists a name only; the
fakes) is left out.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import BackendError
from ..text import one_line
from ..workspace.config import PIPELINE_ROLES, BackendsConfig, Portfolio

# The key of a study's identity that is not a role's: how the harness renders each stage's prompt
# (pipeline/program.prompt_format), which a new autoresearch or DSPy may change as a new model would.
PROMPT_FORMAT = "prompt format"
GGUF_SAMPLE_BYTES = 1 << 20  # the head (metadata and the first tensors) and the tail hashed: ms, not a whole file's s
# And blocks spread over the middle: a LoRA merged into the same base at the same quantization rewrites only
# tensors there (the attention weights of each layer), with the size, the header and the last tensors unchanged.
# 32 blocks of 64 KiB: a tensor group a tenth of the file long holds three of them.
GGUF_MIDDLE_BLOCKS, GGUF_MIDDLE_BLOCK_BYTES = 32, 1 << 16
# Entry fields of an OpenAI-compatible /models list that change with the request or the server's settings, not
# with the model (llama-server's meta.n_ctx is its -c: a prompt that does not fit is refused, never cut).
_VOLATILE = {"created", "object", "permission", "permissions"}
_VOLATILE_META = {"n_ctx"}


def gguf_identity(path: Path) -> str:
    """A GGUF file's size, the sha256 of its first and last MiB (another file, quantization or conversion differs
    in its header's metadata or its size) and that of blocks spread over the rest (a merged LoRA)."""
    ends, middle = hashlib.sha256(), hashlib.sha256()
    size = path.stat().st_size
    span = size - 2 * GGUF_SAMPLE_BYTES  # between the two ends: none in a file they cover whole
    with path.open("rb") as f:
        ends.update(f.read(GGUF_SAMPLE_BYTES))
        for block in range(GGUF_MIDDLE_BLOCKS if span > 0 else 0):
            f.seek(GGUF_SAMPLE_BYTES + span * block // GGUF_MIDDLE_BLOCKS)
            middle.update(f.read(min(GGUF_MIDDLE_BLOCK_BYTES, span)))
        if size > GGUF_SAMPLE_BYTES:
            f.seek(max(size - GGUF_SAMPLE_BYTES, GGUF_SAMPLE_BYTES))
            ends.update(f.read())
    sampled = f" middle {middle.hexdigest()[:16]}" if span > 0 else ""
    return f"gguf {size} bytes sha256 {ends.hexdigest()[:16]}{sampled}"


def without_middle(identity: str | None) -> str | None:
    """A run identity as autoresearch stamped it before it hashed a GGUF's middle (to 2026-12): a study of then
    goes on with its scores rather than taking its own file for another model."""
    return None if identity is None else re.sub(r" middle [0-9a-f]{16}", "", identity)


def entry_identity(entry: dict[str, Any]) -> str | None:
    """An OpenAI-compatible model entry's details beyond its id and owner, as compact JSON; None when it has
    none (the name is all the server says), or when they come and go: a llama-server router (`--models-dir`)
    lists a model's meta only while it is loaded (its entry's "status"), so a model evicted and loaded again
    would read as another."""
    if "status" in entry:
        return None
    details = {k: v for k, v in entry.items() if k not in _VOLATILE}
    if isinstance(details.get("meta"), dict):
        details["meta"] = {k: v for k, v in details["meta"].items() if k not in _VOLATILE_META}
    if set(details) <= {"id", "owned_by"}:
        return None
    return json.dumps(details, sort_keys=True, separators=(",", ":"))


def run_models(portfolio: Portfolio, backends: BackendsConfig, factory: Callable, roles=PIPELINE_ROLES,
               note: Callable[[str], None] = lambda text: None, waits_s: tuple[float, ...] = (1.0, 2.0),
               raise_errors: bool = False) -> dict[str, str]:
    """The identity of the models a run's scores come from (its pipeline roles'), role → identity; only the roles
    whose backend can tell. Asked once per backend and model; a server that fails to answer is
    asked again after each of waits_s (it answered the preflight a moment before), then taken as unknown, or
    with raise_errors its BackendError raised."""
    found: dict[str, str] = {}
    asked: dict[tuple[Any, ...], str | None] = {}
    for role in roles:
        config = portfolio.role(role)
        key = (config.backend, config.base_url, config.model)
        if key not in asked:
            try:
                asked[key] = _ask(factory(config, backends), waits_s)
            except ValueError:  # a backend create_backend does not make ("fake" without a test's factory)
                asked[key] = None
            except BackendError as exc:  # unknown this once: no stored score or reply matches, so none is reused
                if raise_errors:
                    raise
                note(f"could not ask {config.backend} which {config.model} it serves ({one_line(str(exc), 120)}); "
                     "nothing stored (scores, replies) is reused for it this time")
                asked[key] = f"unknown ({type(exc).__name__})"
        if asked[key] is not None:
            found[role] = asked[key]
    return found


def run_identity(roles: dict[str, str], prompt_format: str) -> str:
    """A run's identity as the store records it (Store.models), as JSON: each pipeline role's model that can tell
    (run_models), and how the harness renders its prompts (pipeline/program.prompt_format)."""
    return json.dumps({**roles, PROMPT_FORMAT: prompt_format}, sort_keys=True)


def _ask(backend: Any, waits_s: tuple[float, ...]) -> str | None:
    ask = getattr(backend, "model_identity", None)
    if ask is None:
        return None
    for wait in waits_s:
        try:
            return ask()
        except BackendError:
            time.sleep(wait)
    return ask()


def changes(before: str | None, now: str | None) -> list[str]:
    """What differs between two run_models identities, a phrase per change with the roles it struck, in pipeline
    order ("planner, producer: digest 1 → digest 2"); of a "part; part" identity only the parts that differ."""
    old, new = json.loads(before or "{}"), json.loads(now or "{}")
    roles = [r for r in PIPELINE_ROLES if r in old or r in new] + sorted((set(old) | set(new)) - set(PIPELINE_ROLES))
    struck: dict[tuple[str, str], list[str]] = {}
    for role in roles:
        if old.get(role) != new.get(role):
            struck.setdefault(_differing(old.get(role), new.get(role)), []).append(role)
    return [f"{', '.join(names)}: {was} → {is_now}" for (was, is_now), names in struck.items()]


def what_changed(before: str | None, now: str | None) -> str:
    """"the models changed (planner: A → B)", "the prompt format changed (…)", or both, for a note."""
    old, new = json.loads(before or "{}"), json.loads(now or "{}")
    subjects = []
    if any(old.get(key) != new.get(key) for key in set(old) | set(new) if key != PROMPT_FORMAT):
        subjects.append("the models")
    if old.get(PROMPT_FORMAT) != new.get(PROMPT_FORMAT):
        subjects.append("the prompt format (a new autoresearch or DSPy)")
    return f"{' and '.join(subjects) or 'nothing'} changed ({'; '.join(changes(before, now))})"


def _differing(was: str | None, is_now: str | None) -> tuple[str, str]:
    """The parts of two identities that differ: of a server's entry (JSON), its fields; of "part; part", parts."""
    old, new = _fields(was), _fields(is_now)
    if old is not None and new is not None:
        keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        was, is_now = (" ".join(f"{k} {d.get(k, '-')}" for k in keys) for d in (old, new))
    elif was and is_now and len(parts := was.split("; ")) == len(others := is_now.split("; ")):
        differ = [(a, b) for a, b in zip(parts, others) if a != b]
        was, is_now = "; ".join(a for a, _ in differ), "; ".join(b for _, b in differ)
    return one_line(was or "not known", 80), one_line(is_now or "not known", 80)


def _fields(identity: str | None) -> dict[str, Any] | None:
    """A server entry's identity (entry_identity's JSON) as flat fields ("meta.size"); None for any other."""
    try:
        entry = json.loads(identity) if identity and identity.startswith("{") else None
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    flat: dict[str, Any] = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat
