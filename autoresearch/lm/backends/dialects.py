"""The ways OpenAI-compatible servers accept a JSON schema, and the one each server speaks, found once.

Tried in this order; the first a server does not reject is remembered for that server:

    json_schema         {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}: OpenAI's own;
                        vLLM, LM Studio (which rejects json_object), llama-server, Ollama's /v1 endpoint
    json_object_schema  {"type": "json_object", "schema": ...}: llama-cpp-python's server (HTTP 500 "Input
                        should be 'text' or 'json_object'" for json_schema); llama-server accepts it too
    json_object         {"type": "json_object"}: JSON without a schema; the keys are only asked for by
                        the prompt (GrammarAdapter.format names them)
    none                no response_format: the prompt alone, and the reply is repaired or refused on parsing
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ...errors import StructuredOutputUnsupported

T = TypeVar("T")

DIALECTS = ("json_schema", "json_object_schema", "json_object", "none")
AUTO = "auto"

# What servers answer when the response_format itself is what they refuse:
#   llama-cpp-python  500 "... ('body', 'response_format', 'type') ... Input should be 'text' or 'json_object'"
#   llama-server/ik   500 'response_format type must be one of "text" or "json_object", but got: json_schema'
#   LM Studio         400 "'response_format.type' must be 'json_schema' or 'text'"
#   vLLM (pydantic)   400 "response_format.type: Input should be ..."
#   Ollama            400/500 'invalid format: expected "json" or a JSON schema', "invalid JSON schema in format"
# A bare "Input should be" is not enough: pydantic says it about any field (max_tokens, messages).
_FORMAT_REJECTION = re.compile(
    r"response_format|json_schema|json_object|invalid (json schema in )?format|\bgrammar\b", re.IGNORECASE,
)
_REJECTION_STATUSES = (400, 422, 500)


def response_format(dialect: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The response_format a request carries in this dialect (None: the request carries none)."""
    if dialect == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}
    if dialect == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if dialect == "json_object":
        return {"type": "json_object"}
    if dialect == "none":
        return None
    raise ValueError(f"unknown structured-output dialect {dialect!r}; one of {', '.join(DIALECTS)}")


def rejects_format(status: int, detail: str) -> bool:
    """Whether an HTTP error answer refuses the response_format itself (not the model, the key, the context)."""
    return status in _REJECTION_STATUSES and bool(_FORMAT_REJECTION.search(detail))


class DialectNegotiator:
    """The dialect one server speaks: each in turn until one is accepted, then only that one.

    The first structured call negotiates holding a lock, so calls made meanwhile wait for its answer
    instead of negotiating too; once settled, calls read the dialect without the lock. A refusal that is
    not about the format (a timeout, a context overflow) settles nothing: the next call starts where this
    one stopped.
    """

    def __init__(self, server: str, preferred: str = AUTO):
        if preferred != AUTO and preferred not in DIALECTS:
            raise ValueError(f"unknown structured-output dialect {preferred!r}; auto or one of {', '.join(DIALECTS)}")
        self.server = server
        self.preferred = preferred
        self.settled: str | None = None
        self._refused: dict[str, str] = {}  # dialect -> what the server answered, in the order tried
        self._lock = threading.Lock()

    def run(self, attempt: Callable[[str], T], *, backend: str = "", model: str = "") -> tuple[T, str]:
        """attempt(dialect)'s result and the dialect it used; attempt raises StructuredOutputUnsupported
        when the server refuses that dialect's response_format."""
        while True:
            settled = self.settled
            if settled is not None:
                return attempt(settled), settled
            with self._lock:
                if self.settled is None:  # else another call settled it while this one waited
                    return self._negotiate(attempt, backend, model)

    def _negotiate(self, attempt: Callable[[str], T], backend: str, model: str) -> tuple[T, str]:
        order = DIALECTS if self.preferred == AUTO else (self.preferred,)
        for dialect in (d for d in order if d not in self._refused):
            try:
                result = attempt(dialect)
            except StructuredOutputUnsupported as exc:
                self._refused[dialect] = str(exc)[:300]
                continue
            self.settled = dialect
            return result, dialect
        tried = "; ".join(f"{d}: {answer}" for d, answer in self._refused.items())
        hint = ' (openai_structured = "auto" in [backends] tries the others)' if self.preferred != AUTO else ""
        raise StructuredOutputUnsupported(
            f"{self.server} refused every structured-output format tried{hint}: {tried}", backend=backend, model=model,
        )
