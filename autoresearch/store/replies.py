"""Replies the store's earlier runs got, found again by request: a run reuses them as it reuses its own.

`eval` and then `run` send the baseline's requests twice; a resumed study sends again the planner requests its
incumbent's evaluation sent; tomorrow's run on yesterday's kept instructions sends its baseline's. Each identical
request (lm/replies.request_key: the messages, the sampling settings and the seed, to the same backend and model)
gets the reply recorded the first time, so long as the models that made it are the ones answering now
(Store.models: the GGUF's hashes and the llama.cpp build, an Ollama digest): the rule by which a run reuses
stored scores, applied to replies. Stricter than that rule in one way: it lends nothing unless every pipeline
role's model can tell which it is. A server that lists a name only (llama-cpp-python's) may serve another model
under that name tomorrow; a study notices no swap there either, but a reply lent across processes would carry one
model's answer into another's evaluation without a trace.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from ..lm.backends.base import Completion
from ..lm.calls import CallRecord
from ..lm.replies import Answered
from ..workspace.config import PIPELINE_ROLES

if TYPE_CHECKING:
    from .store import Store

# The first answer to the request that reached a backend (not a reuse of one), by an evaluation of these models.
_FIRST_MADE = ("SELECT c.* FROM calls c JOIN evaluations e ON c.evaluation_id = e.id WHERE c.request_key = ? AND "
               "c.status = 'ok' AND c.reused = 0 AND c.response IS NOT NULL AND e.models = ? ORDER BY c.id LIMIT 1")


class StoredReplies:
    """Finds a request's reply among the store's calls (a ReplyCache's lookup on a miss, from any thread)."""

    def __init__(self, store: Store):
        self.store = store

    def __call__(self, key: str) -> Answered | None:
        models = self.store.models  # read now: a run's models may change between trials (search/model_watch.py)
        if models is None or not identified(models):
            return None
        try:
            # A connection of its own for each lookup: a suite's tasks look up from their lanes' threads, and a
            # connection belongs to the thread that opened it; opening one costs well under a millisecond, a call
            # it saves seconds.
            conn = sqlite3.connect(self.store.path, timeout=30)
            try:
                conn.row_factory = sqlite3.Row
                row = conn.execute(_FIRST_MADE, (key, models)).fetchone()
            finally:
                conn.close()
        except sqlite3.Error:  # a store that cannot answer costs the call, never the run
            return None
        return None if row is None else answered(row)


def identified(models: str) -> bool:
    """Whether a run's identity (Store.models) names the model of every pipeline role: not one that could not tell
    (left out) or could not be asked ("unknown (…)": lm/model_identity.run_models)."""
    try:
        roles = json.loads(models)
    except ValueError:
        return False
    return isinstance(roles, dict) and all(
        isinstance(roles.get(role), str) and not roles[role].startswith("unknown") for role in PIPELINE_ROLES)


def answered(row: sqlite3.Row) -> Answered:
    """A stored call as the reply it gave and the record a reuse copies its figures from."""
    call = CallRecord(
        role=row["role"], backend=row["backend"], model=row["model"], prompt_hash=row["prompt_hash"],
        prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"], latency_s=row["latency_s"],
        load_s=row["load_s"], joules=row["joules"], energy_source=row["energy_source"], status=row["status"],
        response=row["response"], task_id=row["task_id"], load_joules=row["load_joules"],
        attribution=row["attribution"], seed=row["seed"], dialect=row["dialect"], request_key=row["request_key"],
        finish_reason=row["finish_reason"])
    completion = Completion(text=row["response"], prompt_tokens=row["prompt_tokens"],
                            completion_tokens=row["completion_tokens"], latency_s=row["latency_s"],
                            load_s=row["load_s"], finish_reason=row["finish_reason"] or "stop",
                            dialect=row["dialect"])
    return Answered(completion, call)
