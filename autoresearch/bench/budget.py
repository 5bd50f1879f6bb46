"""A budget of model calls, enforced where every call passes: the backend.

Why the backend and not a CallRecorder: the recorder that sees a call is the innermost `recording(...)`
context, and a Study's trial recorder does not forward to an outer one, so a recorder wrapped around a
whole Study never sees its calls. Every attempt the engine makes (BackendEngine._attempt) calls
`backend.complete` exactly once and becomes exactly one CallRecord, so counting there counts what the
store counts. The budget is checked *before* the call: a method is refused its (budget + 1)-th call,
so every method makes exactly `limit` calls when it runs out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..lm.backends import create_backend
from ..lm.backends.base import Completion, CompletionRequest

BackendFactory = Callable[[Any, Any], Any]


class BudgetExhausted(BaseException):
    """The method has spent its budget of model calls.

    A BaseException, like KeyboardInterrupt, on purpose: DSPy's Evaluate, GEPA and our own harness
    catch `Exception` to score a failed example or task and carry on; the budget must stop the
    whole method instead, from wherever the refused call was made.
    """

    def __init__(self, limit: int):
        super().__init__(f"budget of {limit} model calls spent")
        self.limit = limit


@dataclass
class Budget:
    """Counts model calls (and the seconds spent inside them); refuses calls past `limit` (None: no limit)."""

    limit: int | None = None
    used: int = 0
    model_s: float = 0.0  # wall seconds inside backend.complete, summed
    spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end) perf_counter of each call
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spend(self) -> None:
        with self._lock:
            if self.limit is not None and self.used >= self.limit:
                raise BudgetExhausted(self.limit)
            self.used += 1

    def spent(self, start: float, end: float) -> None:
        with self._lock:
            self.model_s += end - start
            self.spans.append((start, end))

    def busy_s(self, since: float, until: float) -> float:
        """Wall seconds between since and until during which at least one model call ran: calls that overlap
        (tasks run side by side) count once, where model_s adds them up."""
        with self._lock:
            clipped = sorted((max(a, since), min(b, until)) for a, b in self.spans if b > since and a < until)
        busy, reach = 0.0, since
        for start, end in clipped:
            if end > reach:
                busy += end - max(start, reach)
                reach = end
        return busy

    # DSPy optimizers deep-copy programs, and with them each predictor's LM, engine and backend: every
    # copy must keep counting against the same budget.
    def __deepcopy__(self, memo: dict) -> "Budget":
        return self

    def __copy__(self) -> "Budget":
        return self


class BudgetedBackend:
    """Wraps a backend: each complete() first spends one call of the budget, then delegates."""

    def __init__(self, inner: Any, budget: Budget):
        self.inner = inner
        self.budget = budget
        self.name = inner.name
        self.in_process = inner.in_process

    def complete(self, request: CompletionRequest) -> Completion:
        self.budget.spend()
        start = time.perf_counter()
        try:
            return self.inner.complete(request)
        finally:
            self.budget.spent(start, time.perf_counter())

    def __getattr__(self, name: str) -> Any:  # url, preload, loaded_models, list_models, …
        if name == "inner":  # not set yet (copy protocols probe attributes before __init__ ran)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __deepcopy__(self, memo: dict) -> "BudgetedBackend":
        return self

    def __copy__(self) -> "BudgetedBackend":
        return self


def budgeted_factory(budget: Budget, inner: BackendFactory | None = None) -> BackendFactory:
    """A backend_factory (as Harness and Study take) whose every backend spends from `budget`."""
    make = inner or create_backend

    def factory(role_config, backends_config):
        return BudgetedBackend(make(role_config, backends_config), budget)

    return factory
