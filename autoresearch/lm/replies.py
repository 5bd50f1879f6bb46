"""Replies to requests a run's pipeline already sent, reused instead of asked again.

A trial that changes producer.md sends its planner exactly the requests the incumbent's evaluation sent: the same
planner.md, task, seed and settings (in a 120-trial run on the starter, about 350 of 442 planner calls). The
embedded model answers an identical request identically, whatever it computed before (its prefix states and
side-by-side contexts change no reply: scripts/bench_inference.py; but for a prompt of k × n_batch + 1 tokens
met first in a fresh context, lm/backends/prefix_cache.replay_two_rows), so reusing the reply changes no score,
only what the run spends. A server that may answer an identical request otherwise (batched decoding on Ollama, vLLM)
gives the reply it gave before, so the variant and the incumbent it is paired with share that step's reply.

A reused reply is recorded as a call with `reused` set and the figures it had when it was made (tokens, seconds,
joules less the share of a model load): a task's cost stays that of its instructions, so its energy compares with the
incumbent's, while what the run spent (its summary, `log`, the forecast, a benchmark's budget) counts only the
calls made (lm/calls.made). `[backends] reuse_replies = false` turns it off.

A reply not met in this run may have been in an earlier one: the cache then asks its lookup, the store's calls made
by the models answering now (store/replies.py), so `eval` and then `run`, or a resumed study, do not ask again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

from ..workspace.config import BackendsConfig
from .backends.base import Completion, CompletionRequest
from .calls import CallRecord

# Replies kept, the least recently used dropped first: an evaluation's requests (tasks × roles × rounds) many
# times over, at a few KB each.
CAPACITY = 4096


@dataclass(frozen=True)
class Answered:
    """A reply, and the call that made it (whose figures a reuse records)."""

    completion: Completion
    call: CallRecord


def request_key(backend: str, server: str | None, request: CompletionRequest) -> str | None:
    """What makes two requests the same request to the same model: everything that can change the reply (not the
    timeout, nor Ollama's keep_alive). None for a request without a seed, whose reply the sender did not fix."""
    if request.seed is None:
        return None
    blob = json.dumps([backend, server, request.model, [(m.role, m.content) for m in request.messages],
                       request.json_schema, request.temperature, request.max_tokens, request.top_p,
                       request.repeat_penalty, request.seed, list(request.stop)], sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    """The replies of a run's pipeline calls, by request (thread-safe: a suite's tasks may call at once)."""

    def __init__(self, capacity: int = CAPACITY, lookup: Callable[[str], Answered | None] | None = None):
        self.capacity = capacity
        self.lookup = lookup  # where a reply not met in this run may be found: the store's earlier runs'
        self._replies: OrderedDict[str, Answered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Answered | None:
        with self._lock:
            found = self._replies.get(key)
            if found is not None:
                self._replies.move_to_end(key)
                return found
        found = self.lookup(key) if self.lookup is not None else None  # outside the lock: lanes look up at once
        if found is not None:
            self.put(key, found)
        return found

    def put(self, key: str, answered: Answered) -> None:
        with self._lock:
            self._replies[key] = answered
            self._replies.move_to_end(key)
            while len(self._replies) > self.capacity:
                self._replies.popitem(last=False)

    def clear(self) -> None:
        """Forget every reply: the models answering changed (search/model_watch.py)."""
        with self._lock:
            self._replies.clear()

    def __len__(self) -> int:
        return len(self._replies)


def replies_for(backends: BackendsConfig,
                lookup: Callable[[str], Answered | None] | None = None) -> ReplyCache | None:
    """A run's cache of replies, where `[backends] reuse_replies` asks for one (the default), that also looks a
    request up in lookup (store/replies.StoredReplies); else None."""
    return ReplyCache(lookup=lookup) if backends.reuse_replies else None


def reused_call(made: CallRecord, role: str, task_id: str | None) -> CallRecord:
    """The record of a reply reused for role's call in task_id: the call that made it, marked reused, without the
    model load that call happened to carry (a load is the first call's, not the reply's). Its seconds stay as made
    (an Ollama reply's include a load; an embedded one's do not)."""
    return replace(made, role=role, task_id=task_id, reused=True, load_s=0.0, load_joules=0.0,
                   joules=made.joules - made.load_joules)
