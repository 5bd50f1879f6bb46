"""What llama-cpp-python would run for a chat completion, taken apart so another loop can run it.

The batch decoder (batch_decode.py) generates outside llama-cpp-python's one-sequence loop, but its prompts,
grammars, stop strings and sampler settings must be exactly those of `Llama.create_chat_completion`, or the
two paths would score differently for reasons that are not the batching. So rather than copy the chat
template, the json-schema grammar and the parameter defaults, this module runs `create_chat_completion`
itself against a stand-in for the Llama whose `create_completion` records its arguments and stops.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from .base import CompletionRequest
from .prefix_cache import prefix_key

# The sampler arguments create_completion passes on to Llama._init_sampler (the rest are the request's own).
_SAMPLER_ARGS = ("top_k", "top_p", "min_p", "typical_p", "repeat_penalty", "frequency_penalty",
                 "presence_penalty", "tfs_z", "mirostat_mode", "mirostat_tau", "mirostat_eta")


@dataclass(frozen=True)
class ChatPlan:
    """One chat completion as token-level work: the prompt, when to stop, and how to sample."""

    prompt: tuple[int, ...]
    max_tokens: int
    stop: tuple[bytes, ...]
    seed: int
    temperature: float
    sampler_args: dict[str, Any]
    grammar: Any  # a llama_cpp.LlamaGrammar, or None
    prefix_key: str | None  # the system message's key (prefix_cache.prefix_key): whose prefix it shares


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]):
        self.kwargs = kwargs


class _Recorder:
    """Stands in for a Llama inside create_chat_completion: formats and tokenizes with the real one, and
    stops at create_completion with its arguments."""

    def __init__(self, llama: Any):
        self._llama = llama
        self.chat_handler = llama.chat_handler
        self._chat_handlers = llama._chat_handlers
        self.chat_format = llama.chat_format
        self.verbose = False

    def tokenize(self, *args: Any, **kwargs: Any) -> list[int]:
        return self._llama.tokenize(*args, **kwargs)

    def create_completion(self, **kwargs: Any) -> Any:
        raise _Captured(kwargs)


def chat_kwargs(request: CompletionRequest) -> dict[str, Any]:
    """Llama.create_chat_completion's arguments for a request; a json_schema becomes llama-cpp-python's
    {"type": "json_object", "schema": ...}, which it turns into a GBNF grammar."""
    kwargs: dict[str, Any] = {
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "temperature": request.temperature, "max_tokens": request.max_tokens, "seed": request.seed,
        "stop": list(request.stop),
    }
    if request.top_p is not None:  # otherwise llama-cpp-python's own default (0.95) applies
        kwargs["top_p"] = request.top_p
    if request.repeat_penalty is not None:  # otherwise its default (1.0: no penalty)
        kwargs["repeat_penalty"] = request.repeat_penalty
    if request.json_schema is not None:
        kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
    return kwargs


def plan_chat(llama: Any, request: CompletionRequest, n_ctx: int) -> ChatPlan:
    """The plan of request on llama; ValueError("... exceed context window ...") as llama-cpp-python raises
    for a prompt that does not fit n_ctx."""
    import llama_cpp

    try:
        llama_cpp.Llama.create_chat_completion(_Recorder(llama), **chat_kwargs(request))  # type: ignore[arg-type]
    except _Captured as captured:
        args = captured.kwargs
    else:  # pragma: no cover - a llama-cpp-python whose handler never calls create_completion
        raise RuntimeError("llama-cpp-python's chat handler did not call create_completion")
    prompt = tuple(args["prompt"])
    # From here on, what Llama._create_completion does with a prompt given as tokens.
    if len(prompt) >= n_ctx:
        raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {n_ctx}")
    max_tokens = args["max_tokens"]
    if max_tokens is None or max_tokens <= 0:
        max_tokens = n_ctx - len(prompt)
    max_tokens = max_tokens if max_tokens + len(prompt) < n_ctx else n_ctx - len(prompt)
    seed = args["seed"] if args["seed"] is not None else random.Random(llama._seed).randint(0, 2**32)
    stop = args["stop"] or []
    stop = [stop] if isinstance(stop, str) else stop
    return ChatPlan(
        prompt=prompt, max_tokens=max_tokens, stop=tuple(s.encode("utf-8") for s in stop), seed=seed,
        temperature=args["temperature"], sampler_args={name: args[name] for name in _SAMPLER_ARGS},
        grammar=args["grammar"], prefix_key=prefix_key(request.messages),
    )
