"""KV-state reuse across the roles sharing one embedded llama.cpp context.

A llama_cpp.Llama holds one KV cache, and already skips the part of a prompt that matches the tokens it
holds. But the pipeline's roles take turns (planner, producer, evaluator, task after task), so each call
overwrote the previous role's cache and recomputed its own fixed instructions: the evaluator's 250-token
instructions and rubric, identical for every task of every trial, were computed 6 times per evaluation.

This cache keeps, per system message (each role's fixed prefix), the KV state the context held after its
last call with that system message. Switching roles saves the outgoing state and restores the incoming
one (llama.cpp's per-sequence state copy: the KV cells of the tokens held, about 23 KB a token for
SmolLM2-135M, a few MB a role), after which llama-cpp-python's own prefix match reuses the restored
tokens and computes only the rest of the prompt. At most `slots` states are kept, least recently used
out first; memory is bounded by slots × n_ctx × the model's KV bytes per token.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class _State:
    tokens: tuple[int, ...]
    kv: Any  # a ctypes uint8 array: llama.cpp's state of sequence 0


def prefix_key(messages: Sequence[Any]) -> str | None:
    """The cache key of a chat: its system message (the role's fixed part), or None without one."""
    if not messages or messages[0].role != "system":
        return None
    return hashlib.sha256(messages[0].content.encode("utf-8")).hexdigest()[:16]


class PrefixCache:
    """Saved KV states of one llama_cpp.Llama, keyed by prefix_key; not thread-safe (callers hold the
    model's lock, which a call holds anyway)."""

    def __init__(self) -> None:
        self.live: str | None = None  # whose tokens the context holds now
        self.saved: OrderedDict[str, _State] = OrderedDict()

    @property
    def saved_bytes(self) -> int:
        return sum(len(state.kv) for state in self.saved.values())

    def switch_to(self, llama: Any, key: str | None, slots: int) -> None:
        """Before a call whose prompt starts with key's prefix: keep the context's state under the key it
        belongs to, and bring back key's state if it was kept. slots=0 keeps nothing."""
        if slots <= 0:
            self.live = None  # the context's tokens belong to no key once this call runs
            return
        if key is not None and key == self.live:
            return
        if self.live is not None:
            self._save(llama, self.live, slots)
            self.live = None
        if key is None:
            return
        state = self.saved.get(key)
        if state is not None and self._restore(llama, state):
            self.saved.move_to_end(key)
        self.live = key

    def clear(self) -> None:
        self.saved.clear()
        self.live = None

    def _save(self, llama: Any, key: str, slots: int) -> None:
        import llama_cpp

        n_tokens = int(llama.n_tokens)
        if n_tokens == 0:
            return
        ctx = llama._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        kv = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, kv, size, 0)
        if written == 0:
            return  # llama.cpp could not copy it: this key's next call computes its prefix again
        self.saved[key] = _State(tuple(int(t) for t in llama.input_ids[:n_tokens]), kv)
        self.saved.move_to_end(key)
        while len(self.saved) > slots:
            self.saved.popitem(last=False)

    @staticmethod
    def _restore(llama: Any, state: _State) -> bool:
        """Load state into the context; llama-cpp-python then sees its tokens as cached. False if refused."""
        import llama_cpp

        if llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, state.kv, len(state.kv), 0) == 0:
            llama.reset()  # a partial load would leave the cache inconsistent with input_ids
            return False
        llama.input_ids[: len(state.tokens)] = state.tokens
        llama.n_tokens = len(state.tokens)
        llama._requires_eval = True  # the logits are not the restored state's: decode at least one token
        return True


# A prompt's last token is computed among at least this many rows, never alone (replay_two_rows).
LAST_ROWS = 2


def replay_two_rows(llama: Any) -> None:
    """Make a llama_cpp.Llama never compute the last token of a prompt as a row alone.

    llama-cpp-python reuses the tokens its context holds and computes the rest of the prompt in chunks of
    n_batch; when it holds the whole prompt (the same prompt again) it replays the last token alone. And
    llama.cpp computes a lone row with other arithmetic than a row among several (llamafile's tinyBLAS:
    logits differ by up to 0.9, docs/BENCHMARKS.md). A reply would then depend on what the context served
    before: on which lane ran a task (side-by-side contexts), or on a one-task suite's repeats. So the
    reuse stops short wherever the last chunk would be one row; every prompt's last token is then computed
    among others, as a fresh context computes it (but for a fresh prompt of k × n_batch + 1 tokens).
    """
    import numpy as np

    original = llama.generate

    def generate(tokens: Any, *args: Any, **kwargs: Any) -> Any:
        tokens = list(tokens)
        n, held = len(tokens), int(llama.n_tokens)
        if n >= LAST_ROWS and held and kwargs.get("reset", True):
            common = min(held, n)
            differ = np.flatnonzero(llama.input_ids[:common] != np.asarray(tokens[:common]))
            reuse = int(differ[0]) if len(differ) else common
            reuse = min(reuse, n - 1)  # llama-cpp-python recomputes at least the last token
            keep = reuse
            while keep > 0 and (n - keep) % llama.n_batch == 1:
                keep -= 1
            if keep < reuse:
                llama.n_tokens = keep  # its prefix match now stops there
        return original(tokens, *args, **kwargs)

    llama.generate = generate
