"""One model call as the store keeps it, the recorder that collects a block's calls, and their totals."""

from __future__ import annotations

import contextvars
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence


@dataclass(frozen=True)
class CallRecord:
    """One model call as the store keeps it."""

    role: str
    backend: str
    model: str
    prompt_hash: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    load_s: float
    joules: float
    energy_source: str
    status: str  # "ok" or "failed"
    failure_mode: str | None = None
    error: str | None = None
    response: str | None = None
    task_id: str | None = None
    load_joules: float = 0.0  # the part of joules spent loading the model (see BackendEngine._attempt)
    attribution: str = "exclusive"  # "shared:N": it overlapped other calls on its energy counter (SharedMeter)
    seed: int | None = None  # the sampling seed sent: the role's, or one drawn for this call (see engine)
    dialect: str | None = None  # how its JSON schema was sent (lm/backends/dialects.py); None: no schema sent
    # A reply reused from an identical request earlier in the run (lm/replies.py), with the figures it had when it
    # was made: part of its task's cost, not of what the run spent (made()).
    reused: bool = False
    # What made the request the same as another (lm/replies.request_key), where its reply may be reused: a later run
    # finds it in the store by this (store/replies.py). None where the engine reuses no reply.
    request_key: str | None = None
    finish_reason: str | None = None  # "stop", or "length": the reply ran out of tokens; None for a failed call

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def swapped(self) -> bool:
        """The server had to load the model for this call (a model swap, or the first load)."""
        return self.load_s > 0


class CallRecorder:
    """Collects the calls made while active and hands each to an optional sink (the store)."""

    def __init__(self, sink: Callable[[CallRecord], None] | None = None, forward_to: "CallRecorder | None" = None):
        self.sink = sink
        self.forward_to = forward_to  # an outer recorder (a whole trial) that also sees these calls
        self.task_id: str | None = None
        self.calls: list[CallRecord] = []

    def add(self, record: CallRecord) -> None:
        self.calls.append(record)
        if self.sink is not None:
            self.sink(record)
        if self.forward_to is not None:
            self.forward_to.add(record)


_active_recorder: contextvars.ContextVar[CallRecorder | None] = contextvars.ContextVar("recorder", default=None)


@contextmanager
def recording(recorder: CallRecorder) -> Iterator[CallRecorder]:
    """Send the model calls made inside this block (in this context) to the recorder."""
    token = _active_recorder.set(recorder)
    try:
        yield recorder
    finally:
        _active_recorder.reset(token)


def active_recorder() -> CallRecorder | None:
    """The recorder of the innermost `recording` block, if any."""
    return _active_recorder.get()


def made(calls: Sequence[CallRecord]) -> list[CallRecord]:
    """The calls that reached a backend: what a run spent, without the replies it reused (lm/replies.py)."""
    return [c for c in calls if not c.reused]


def spent_and_reused(calls: Sequence[CallRecord]) -> tuple[list[CallRecord], int]:
    """The calls made (made()), and how many replies were reused instead of a call."""
    spent = made(calls)
    return spent, len(calls) - len(spent)


class CallTotals:
    """Totals over the model calls of whatever holds them in its `calls` field (a task, a benchmark run)."""

    calls: Sequence[CallRecord]

    @property
    def tokens(self) -> int:
        return sum(c.prompt_tokens + c.completion_tokens for c in self.calls)

    @property
    def joules(self) -> float:
        return sum(c.joules for c in self.calls)

    @property
    def energy_source(self) -> str:
        return energy_source_of(self.calls)


# Failed calls that say nothing of the model: its server was away (refused the connection, or restarted under the
# call: lm/backends/in_flight.py), or the suite stopped the call. A completion rate leaves them out, so that a server
# restart during one candidate's profile does not make that model look unreliable.
NOT_THE_MODELS = ("unreachable", "cancelled")


def reached_the_model(call: CallRecord, counting_reused: bool) -> bool:
    """Whether a call got to the model: it answered, or failed for a reason of its own (see NOT_THE_MODELS). A reply
    reused (lm/replies.py) did not get there again; with counting_reused it counts as the call that made it did."""
    return (counting_reused or not call.reused) and (call.ok or call.failure_mode not in NOT_THE_MODELS)


def completion_rate(calls: Sequence[CallRecord], counting_reused: bool = False) -> float:
    """Of the calls that reached the model, the share that returned usable output; 0.0 when none did. What a run
    spent leaves reused replies out; a model's rate in a role (profile) counts each as the completed call it was
    (only answers are reused): counting_reused."""
    reached = [c for c in calls if reached_the_model(c, counting_reused)]
    return sum(c.ok for c in reached) / len(reached) if reached else 0.0


def energy_source_of(calls) -> str:
    """The meters behind some calls' joules, e.g. "estimate" or "nvml+estimate"; "none" without calls."""
    return "+".join(sorted({c.energy_source for c in calls})) or "none"


def role_rows(calls: tuple[CallRecord, ...]) -> list[dict[str, Any]]:
    """Per role and model: calls (every attempt), completion rate (completion_rate), tokens, joules (total, and
    apart: loading the model and generating), J per 1k output tokens, latency, and model loads (swaps: calls that
    had to load it)."""
    groups: dict[tuple[str, str], list[CallRecord]] = defaultdict(list)
    for call in calls:
        groups[(call.role, call.model)].append(call)
    rows = []
    for (role, model), group in groups.items():
        out_tokens = sum(c.completion_tokens for c in group)
        joules = sum(c.joules for c in group)
        load_joules = sum(c.load_joules for c in group)
        rows.append({
            "role": role, "model": model, "calls": len(group),
            "completion_rate": completion_rate(group),
            "prompt_tokens": sum(c.prompt_tokens for c in group), "completion_tokens": out_tokens,
            "joules": joules, "load_joules": load_joules, "generation_joules": joules - load_joules,
            "joules_per_1k_output_tokens": joules / out_tokens * 1000 if out_tokens else None,
            "latency_s": sum(c.latency_s for c in group), "load_s": sum(c.load_s for c in group),
            "swaps": sum(c.swapped for c in group),
            "energy_source": "+".join(sorted({c.energy_source for c in group})),
        })
    return rows
