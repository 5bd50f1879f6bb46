"""The LM layer: a DSPy engine over a Backend that meters, retries and logs every call."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from dataclasses import replace
from typing import Any

import dspy
import json_repair
from dspy.lm15 import Message, Response, TextPart, Usage

from ..energy import EnergyReading, Meter
from ..errors import BackendError, Cancelled, UnparseableOutput
from ..workspace.config import RoleConfig
from . import lanes, outages
from .backends.base import Backend, ChatMessage, Completion, CompletionRequest
from .calls import CallRecord, CallRecorder, active_recorder, recording
from .replies import Answered, ReplyCache, request_key, reused_call
from .scheduling import KeepAlivePolicy, same_model

_SEEDS = random.SystemRandom()
# A call runs again after at most this many waits for its server (lm/outages.py): a server that lists its models
# yet fails this one request every time is the request's failure, not an outage.
MAX_OUTAGE_WAITS = 2


def fresh_seed(seeds: random.Random | None = None) -> int:
    """A seed for a call of a role that sets none, from seeds (a run's seeded RNG) or the OS. Sent
    explicitly, because llama-cpp-python's unseeded default samples the same way every time: "no seed"
    would silently mean "one fixed seed". Recorded with the call (calls.seed)."""
    return (seeds or _SEEDS).randrange(1, 2**31)


def prompt_hash(messages: tuple[ChatMessage, ...]) -> str:
    blob = json.dumps([(m.role, m.content) for m in messages])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format:
        return None
    return response_format.get("schema") or (response_format.get("json_schema") or {}).get("schema")


class BackendEngine:
    """DSPy engine contract (complete(Request) -> Response) over one role's backend."""

    def __init__(self, role: str, config: RoleConfig, backend: Backend, meter: Meter,
                 *, retries: int = 2, backoff_s: float = 1.0, timeout_s: float | None = None,
                 policy: KeepAlivePolicy | None = None, seeds: random.Random | None = None,
                 outage_wait_s: float = 0.0, server: str | None = None, replies: ReplyCache | None = None):
        self.role = role
        self.config = config
        self.backend = backend
        self.meter = meter
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.policy = policy  # sets keep_alive from observed gaps; used for the ollama backend only
        self.seeds = seeds  # where a role without a seed draws each call's: a seeded RNG, or the OS's
        self.outage_wait_s = outage_wait_s  # how long a call waits for its server to come back (lm/outages.py)
        self.server = server  # the URL the backend calls, where it has one (its name in the outage notes)
        self.replies = replies  # a run's replies to reuse for identical requests (lm/replies.py); None: every call made
        # A preload's cost (load_s, joules, wall seconds), carried by the next call, the one it ran for; kept
        # whether it loaded, found the model loaded already, or failed.
        self._pending_load: tuple[float, float, float] | None = None
        self._pending_lock = threading.Lock()  # a stage's calls may run concurrently: one of them takes it

    @property
    def scheduled(self) -> bool:
        """Whether the keep-alive policy applies: one is set and the backend is Ollama."""
        return self.policy is not None and self.backend.name == "ollama"

    def keep_alive(self) -> str | None:
        """The keep_alive for this role's requests: the role's own setting, else the policy's (Ollama only)."""
        if self.config.keep_alive is not None or not self.scheduled:
            return self.config.keep_alive
        assert self.policy is not None
        return self.policy.keep_alive(self.config.model)

    def to_completion_request(self, request: Any) -> CompletionRequest:
        messages: list[ChatMessage] = []
        if request.system:
            system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
            messages.append(ChatMessage("system", system))
        messages.extend(ChatMessage(m.role, m.text or "") for m in request.messages)
        cfg = request.config
        return CompletionRequest(
            model=self.config.model,
            messages=tuple(messages),
            temperature=self.config.temperature if cfg.temperature is None else cfg.temperature,
            max_tokens=cfg.max_tokens or self.config.max_tokens,
            json_schema=_schema_of(cfg.response_format),
            top_p=self.config.top_p,
            repeat_penalty=self.config.repeat_penalty,
            seed=self.config.seed if self.config.seed is not None else fresh_seed(self.seeds),
            stop=tuple(cfg.stop),
            timeout_s=self.timeout_s,
            keep_alive=self.keep_alive(),
        )

    def complete(self, request: Any) -> Response:
        completion = self.reply(self.to_completion_request(request))
        return Response(
            id=None, model=self.config.model, message=Message.assistant([TextPart(completion.text)]),
            finish_reason="length" if completion.finish_reason == "length" else "stop",
            usage=Usage(input_tokens=completion.prompt_tokens, output_tokens=completion.completion_tokens),
        )

    def reply(self, request: CompletionRequest) -> Completion:
        """The reply to request: the one given to an identical request before, where this engine reuses replies
        (recorded as a reused call: lm/replies.py), else a call's."""
        key = request_key(self.backend.name, self.server, request) if self.replies is not None else None
        if key is None or lanes.stopped():  # a stopped suite's task gets no reply: call() says it was cancelled
            return self.call(request)
        assert self.replies is not None
        recorder = active_recorder()
        task_id = recorder.task_id if recorder is not None else None
        found = self.replies.get(key)
        if found is not None:
            if recorder is not None:
                recorder.add(reused_call(found.call, self.role, task_id))
            return found.completion
        own = CallRecorder(forward_to=recorder)  # to see the record of the call that succeeds
        own.task_id = task_id
        with recording(own):
            completion = self.call(request, key)
        self.replies.put(key, Answered(completion, own.calls[-1]))
        return completion

    def call(self, request: CompletionRequest, key: str | None = None) -> Completion:
        """One logical call: bounded retries with backoff for errors a retry can fix; each attempt logged, with the
        request's key where its reply may be reused (reply(); a later run finds it in the store by it)."""
        scheduled = self.scheduled and same_model(request.model, self.config.model)
        if scheduled:
            assert self.policy is not None
            self.policy.started(request.model)  # observe the gap first, so this call's keep_alive knows it
            if self.config.keep_alive is None:
                request = replace(request, keep_alive=self.policy.keep_alive(request.model))
        try:
            for waits in range(MAX_OUTAGE_WAITS + 1):
                try:
                    return self._attempts(request, key)
                except BackendError as exc:
                    if waits == MAX_OUTAGE_WAITS or not self._waited_out(exc):
                        raise
            raise AssertionError("unreachable")
        finally:
            if scheduled:
                assert self.policy is not None
                self.policy.finished(request.model)

    def _attempts(self, request: CompletionRequest, key: str | None) -> Completion:
        """The call's attempts: bounded retries with backoff for errors a retry can fix."""
        for attempt in range(self.retries + 1):
            if lanes.stopped():  # a pruned variant's task still running beside the last one judged
                raise Cancelled("the suite stopped before this call", backend=self.backend.name, model=request.model)
            try:
                return self._attempt(request, key)
            except BackendError as exc:
                if not exc.retryable or attempt == self.retries:
                    raise
                time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def _waited_out(self, exc: BackendError) -> bool:
        """Whether the call should run again: it found its server gone, and the server came back in time."""
        if not self.outage_wait_s or self.backend.in_process or not outages.waits_out(exc):
            return False
        where = f"{self.backend.name} at {self.server}" if self.server else self.backend.name
        return outages.wait_for_server(where, self.backend.list_models,
                                       f"{exc.failure_mode}: {exc}", self.outage_wait_s, stopped=lanes.stopped)

    def preload(self) -> bool:
        """Ask the server to load this role's model now, unless /api/ps shows it loaded; True if it loaded.

        Only backends with preload() and loaded_models() (Ollama) can. A failure is not raised: the
        role's next call meets the same problem and reports it where it belongs, on a task.
        """
        preload = getattr(self.backend, "preload", None)
        loaded_models = getattr(self.backend, "loaded_models", None)
        if preload is None or loaded_models is None:
            return False
        model = self.config.model
        try:
            if any(same_model(name, model) for name in loaded_models()):
                return False
        except BackendError:
            return False
        token = self.meter.start()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            completion = preload(model, self.keep_alive())
        except BaseException as exc:
            # Close the meter's call all the same: a shared counter would otherwise count it as running. Its
            # joules were spent all the same: the next call carries them.
            wall = time.perf_counter() - wall0
            energy = self.meter.stop(token, wall_s=wall, cpu_s=time.process_time() - cpu0)
            self._pending_load = (0.0, energy.joules, wall)
            if isinstance(exc, BackendError):
                return False
            raise
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        energy = self.meter.stop(token, wall_s=wall, cpu_s=cpu)
        # Carried by the next call, the one it loaded for: when the reply says it had to load, the load's share
        # of its joules are load joules; when it says it did not (loaded meanwhile), they are that call's still.
        self._pending_load = (max(completion.load_s, 0.0), energy.joules, wall)
        return completion.load_s > 0

    def _attempt(self, request: CompletionRequest, key: str | None) -> Completion:
        recorder = active_recorder()
        token = self.meter.start()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        completion: Completion | None = None
        error: BackendError | None = None
        try:
            completion = self.backend.complete(request)
            if not completion.text.strip():
                raise UnparseableOutput("the model returned no text", backend=self.backend.name, model=request.model)
            if request.json_schema is not None:
                check_json_reply(completion.text, request.json_schema, self.backend.name, request.model)
        except BackendError as exc:
            error = exc
        except BaseException:
            # Not a model failure (Ctrl-C, a bug): close the meter's call, unrecorded, and let it propagate.
            self.meter.stop(token, wall_s=time.perf_counter() - wall0, cpu_s=time.process_time() - cpu0)
            raise
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if getattr(self.meter, "attributes_by_tokens", False):  # a shared counter splits energy by tokens
            energy: EnergyReading = self.meter.stop(token, wall_s=wall, cpu_s=cpu,
                                                    tokens=completion.completion_tokens if completion else 0)
        else:
            energy = self.meter.stop(token, wall_s=wall, cpu_s=cpu)
        latency_s = completion.latency_s if completion else wall
        load_s = completion.load_s if completion else 0.0
        joules = energy.joules
        # Our own wall time of the attempt also covers an embedded model's load, which its latency_s leaves out.
        load_joules = load_share(joules, load_s, max(wall, latency_s))
        with self._pending_lock:
            pending, self._pending_load = self._pending_load, None
        if pending is not None:
            # A preload for this call ran just before it: its cost is this call's, and its load's share of that
            # cost is load energy (the rest was the request's round trip).
            pre_load_s, pre_joules, pre_wall = pending
            load_s, joules, latency_s = load_s + pre_load_s, joules + pre_joules, latency_s + pre_wall
            load_joules += load_share(pre_joules, pre_load_s, pre_wall)
        if recorder is not None:
            recorder.add(CallRecord(
                role=self.role, backend=self.backend.name, model=request.model,
                prompt_hash=prompt_hash(request.messages),
                prompt_tokens=completion.prompt_tokens if completion else 0,
                completion_tokens=completion.completion_tokens if completion else 0,
                latency_s=latency_s, load_s=load_s,
                joules=joules, energy_source=energy.source,
                status="failed" if error else "ok",
                failure_mode=error.failure_mode if error else None,
                error=str(error) if error else None,
                response=completion.text if completion else None,
                task_id=recorder.task_id,
                load_joules=load_joules,
                attribution=energy.attribution,
                seed=request.seed,
                dialect=completion.dialect if completion else None,
                request_key=key,
                finish_reason=completion.finish_reason if completion else None,
            ))
        if error is not None:
            raise error
        assert completion is not None
        return completion

    def stream(self, request: Any) -> Any:
        raise NotImplementedError("autoresearch engines do not stream")

    def close(self) -> None:
        return None


def load_share(joules: float, load_s: float, elapsed_s: float) -> float:
    """The load's part of a call's (or a preload's) joules. A meter reads one figure per call, so when the call
    included a model load its joules are split by time: load_s over the time it took, capped at all of it. This
    assumes the same power while loading as while generating: an approximation (a load is mostly I/O and memory
    copies, often lower power)."""
    return joules * min(1.0, load_s / max(elapsed_s, load_s)) if load_s > 0 else 0.0


def check_json_reply(text: str, schema: dict[str, Any], backend: str, model: str) -> None:
    """Raise UnparseableOutput unless text is a JSON object with the schema's required keys."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = json_repair.loads(text)
    missing = [k for k in schema.get("required", []) if not isinstance(data, dict) or k not in data]
    if not isinstance(data, dict) or missing:
        raise UnparseableOutput(f"reply is not a JSON object with {', '.join(missing) or 'fields'}: {text[:80]!r}",
                                backend=backend, model=model)


def make_lm(engine: BackendEngine) -> dspy.LM:
    """A DSPy LM whose every call goes through our engine; DSPy's cache and retries are off (we own both)."""
    return dspy.LM(f"autoresearch/{engine.role}", engine=engine, cache=False, num_retries=0,
                   temperature=engine.config.temperature, max_tokens=engine.config.max_tokens)


def backend_error_in(exc: BaseException) -> BackendError | None:
    """The BackendError behind an exception DSPy wrapped, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BackendError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
