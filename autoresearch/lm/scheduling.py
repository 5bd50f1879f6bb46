"""Model-swap-aware scheduling for Ollama: how long each model stays loaded, and which models are loaded.

The call order itself (stage by stage over a suite, so consecutive calls use the same model) lives in
Harness.run_tasks_staged; this module holds the keep-alive policy the engines of one server share.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

MIN_KEEP_ALIVE_S = 30.0  # never 0: a model unloaded between two calls of one stage would reload each time
MAX_KEEP_ALIVE_S = 1800.0  # never forever: an idle model gives its memory back within half an hour
DEFAULT_KEEP_ALIVE = "5m"  # Ollama's own default, until a gap has been observed
EMA_WEIGHT = 0.3  # weight of the newest gap in the moving average
MARGIN_SHARE = 0.25  # keep a model a quarter longer than the expected gap …
MARGIN_MIN_S = 10.0  # … and at least this much longer


class KeepAlivePolicy:
    """Sets keep_alive to the expected idle gap before a model's next use, learnt from the gaps seen so far.

    A gap is the time from the end of one call of a model to the start of the next call of the same model.
    Gaps shorter than the floor (back-to-back calls within a stage) are not averaged in: any allowed
    keep_alive covers them, and averaging them would shrink the estimate of the gaps that decide whether
    a model survives (those between stages, or between trials).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._last_end: dict[str, float] = {}
        self._average: dict[str, float] = {}
        self._lock = threading.Lock()

    def started(self, model: str) -> None:
        """A call of model starts now: observe the gap since its previous call ended."""
        with self._lock:
            last = self._last_end.get(model)
            if last is None:
                return
            gap = self.clock() - last
            if gap < MIN_KEEP_ALIVE_S:
                return
            previous = self._average.get(model)
            self._average[model] = gap if previous is None else EMA_WEIGHT * gap + (1 - EMA_WEIGHT) * previous

    def finished(self, model: str) -> None:
        """A call of model ended now."""
        with self._lock:
            self._last_end[model] = self.clock()

    def expected_gap_s(self, model: str) -> float | None:
        with self._lock:
            return self._average.get(model)

    def seconds(self, model: str) -> float | None:
        """The keep-alive for model in seconds, within [30 s, 30 min]; None before any gap was observed."""
        gap = self.expected_gap_s(model)
        if gap is None:
            return None
        wanted = gap + max(MARGIN_MIN_S, MARGIN_SHARE * gap)
        return min(MAX_KEEP_ALIVE_S, max(MIN_KEEP_ALIVE_S, wanted))

    def keep_alive(self, model: str) -> str:
        """The keep_alive to send with a request for model, as a Go duration ("95s"); "5m" until observed."""
        seconds = self.seconds(model)
        return DEFAULT_KEEP_ALIVE if seconds is None else f"{math.ceil(seconds)}s"


# One policy per Ollama server, shared by every engine (and so every Harness, trial after trial) that
# talks to it: the gaps that matter most span trials (the planner's next use is the next trial's plan).
_POLICIES: dict[str, KeepAlivePolicy] = {}
_POLICIES_LOCK = threading.Lock()


def policy_for(url: str) -> KeepAlivePolicy:
    """The keep-alive policy of the Ollama server at url, created on first use."""
    key = url.rstrip("/")
    with _POLICIES_LOCK:
        if key not in _POLICIES:
            _POLICIES[key] = KeepAlivePolicy()
        return _POLICIES[key]


def same_model(a: str, b: str) -> bool:
    """Whether two Ollama model names are the same model ("llama3" is "llama3:latest")."""
    def norm(name: str) -> str:
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
    return norm(a) == norm(b)
