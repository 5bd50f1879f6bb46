"""The embedded model's own decode loop: several calls in one llama.cpp batch, and drafted tokens.

llama-cpp-python decodes one sequence, one token a step. This loop is llama-server's, in process:
- `lanes` calls decoded together (embedded_batch): the next token of each in one llama_decode, which
  reads the weights once for all where decoding waits on memory. On a 2-core EPYC with SmolLM2-135M it
  does not (10.1 ms a token alone, 8.0 ms in a batch of 6), and a suite ran slower (docs/BENCHMARKS.md).
- Drafts (embedded_draft, prompt_lookup.py): tokens guessed from the call's prompt and reply, verified
  in one batch of rows, kept as far as the sampler agrees: 0.81-0.90 of the time of one-token steps on
  the starter, but rows computed together (by llamafile's tinyBLAS in llama.cpp's default build) differ
  from a row computed alone (by up to 0.9 in the logits), and the starter's scores came out lower.

How it works:
- One llama.cpp context holds one sequence per running call (`lanes` of them) and up to `prefix_slots`
  more that keep prompt prefixes (each role's fixed instructions), each in a KV stream of its own.
- A call's prompt starts from the longest prefix any kept sequence or computed prompt shares with it
  (llama_memory_seq_cp copies the stream, about 23 KB a cell for SmolLM2-135M), and only the rest is
  computed. Two new calls with the same system message do not both compute it: the second waits one step
  and copies the first's.
- Each step puts the next token of every generating call and the prompt chunks of new calls in one
  batch, decodes it, and samples each call's token with its own sampler chain (the same chain, grammar
  and seed llama-cpp-python would build: chat_plan.py).
- Steps are taken by whichever waiting caller finds the decoder ready, only when every live lane of the
  callers' lm.lanes groups is waiting (lm/lanes.py), so which calls share a batch, and so the replies,
  depend on the tasks and seeds, not on thread timing.

What it changes: one call at a time without drafts, the replies are llama-cpp-python's token for token
(tested). With several rows per step they are tinyBLAS's: the same for the same seeds, batch and drafts
run after run, not the same as one row at a time (built with GGML_LLAMAFILE=OFF they were identical,
and no faster); a study with either on is another study (search/identity.py).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ...errors import BackendError
from .. import lanes
from .chat_plan import ChatPlan
from .prefix_cache import LAST_ROWS
from .prompt_lookup import PromptLookup

N_BATCH = 2048  # tokens per llama_decode: a new call's prompt in one or two steps
N_UBATCH = 512


@dataclass(frozen=True)
class Decoded:
    """One finished call: its text, why it ended, and what it computed."""

    text: str
    completion_tokens: int
    finish_reason: str
    prompt_eval_tokens: int  # prompt tokens computed (the rest were copied from a kept prefix)
    peak_batch: int  # the most calls decoded together while it ran
    drafted: int = 0  # tokens proposed by prompt lookup
    accepted: int = 0  # of which the samples agreed with


@dataclass
class _Job:
    plan: ChatPlan
    group: lanes.Lanes | None
    seq: int = -1
    computed: int = 0  # prompt tokens in the KV cache
    prompt_eval_tokens: int = 0
    next_token: int | None = None  # sampled, to be decoded in the next step
    completion: list[int] = field(default_factory=list)
    multibyte_fix: int = 0
    lookup: PromptLookup | None = None  # its drafter, when drafts are on
    drafted: int = 0
    accepted: int = 0
    sampler: Any = None
    peak_batch: int = 1
    result: Decoded | None = None
    error: BaseException | None = None
    done: bool = False

    @property
    def order(self) -> tuple:
        return (self.plan.prompt, self.plan.seed)

    @property
    def in_prompt(self) -> bool:
        return self.computed < len(self.plan.prompt)


@dataclass
class _Kept:
    seq: int
    tokens: tuple[int, ...]


def common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class BatchDecoder:
    """A llama.cpp context of its own on a loaded Llama's model, decoding up to `lanes` calls at once."""

    def __init__(self, llama: Any, model_lock: Any, *, n_ctx: int, lanes_max: int, prefix_slots: int,
                 n_threads: int, lazy_grammar: bool, draft_max: int = 0):
        import llama_cpp
        from llama_cpp._utils import suppress_stdout_stderr

        self._llama = llama
        self._model_lock = model_lock  # guards the Llama's sampler settings while a chain is built
        self._c = llama_cpp
        self.n_ctx = n_ctx  # per call and per sequence, as the one-at-a-time path allows
        self.lanes_max = lanes_max
        self.prefix_slots = prefix_slots
        self.lazy_grammar = lazy_grammar
        self.draft_max = draft_max  # tokens a call may draft by prompt lookup per step (0: none)
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)  # the Llama's own settings
        # One KV stream of n_ctx cells per sequence (lanes, then kept prefixes): attention then spans a
        # sequence's own cells, where a unified cache would make every token attend over all of them.
        params.n_seq_max = lanes_max + prefix_slots
        params.n_ctx = n_ctx * params.n_seq_max
        params.n_batch, params.n_ubatch = N_BATCH, N_UBATCH
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = n_threads
        with suppress_stdout_stderr(disable=False):  # llama.cpp logs the context's set-up to stderr
            self._ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
        if not self._ctx:
            raise BackendError(f"llama.cpp could not create a batch context of {params.n_ctx} tokens "
                               f"({params.n_seq_max} sequences × n_ctx {n_ctx}): lower embedded_batch or n_ctx",
                               backend="embedded")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(N_BATCH, 0, 1)
        self._vocab = llama._model.vocab
        self._free_seqs = list(range(lanes_max))
        self._free_kept = list(range(lanes_max, lanes_max + prefix_slots))
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._queue: list[_Job] = []  # submitted, under lanes.CONDITION
        self._waiting: list[_Job] = []  # taken from the queue by a step, not yet admitted (the stepper's own)
        self._active: list[_Job] = []
        self._stepping = False

    def close(self) -> None:
        if self._ctx:
            self._c.llama_batch_free(self._batch)
            self._c.llama_free(self._ctx)
            self._ctx = None

    def complete(self, plan: ChatPlan) -> Decoded:
        """Decode plan with whatever else is waiting; blocks until it is done. Raises what decoding raised."""
        job = _Job(plan, lanes.current(), lookup=PromptLookup(self.draft_max) if self.draft_max else None)
        cond = lanes.CONDITION
        with cond:
            self._queue.append(job)
            if job.group is not None:
                job.group.blocked += 1
            cond.notify_all()
            while not job.done:
                if not self._stepping and self._ready():
                    self._stepping = True
                    incoming, self._queue = self._queue, []
                    cond.release()
                    try:
                        finished = self._step(incoming)
                    finally:
                        cond.acquire()
                        self._stepping = False
                    for done in finished:
                        done.done = True
                        if done.group is not None:
                            done.group.blocked -= 1
                    cond.notify_all()
                else:
                    cond.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _ready(self) -> bool:
        """Work is waiting and every lane of its groups waits too (or has left)."""
        jobs = self._queue + self._waiting + self._active
        return bool(jobs) and all(job.group is None or job.group.all_blocked for job in jobs)

    def _step(self, incoming: list[_Job]) -> list[_Job]:
        """Admit what fits, decode one batch, sample; the jobs that finished (successfully or not). Runs
        outside the lock: it touches only the stepper's own lists, never the queue."""
        self._waiting += incoming
        try:
            self._admit()
            return self._decode_once()
        except BaseException as exc:  # a native refusal or a bug: every running call fails with it
            failed = self._active + self._waiting
            for job in failed:
                job.error = exc
                self._release(job)
            self._active, self._waiting = [], []
            return failed

    def _admit(self) -> None:
        """Move waiting jobs, in content order, into free sequences, each starting from its longest kept prefix."""
        self._waiting.sort(key=lambda job: job.order)
        computing = {job.plan.prefix_key for job in self._active if job.in_prompt}
        waiting: list[_Job] = []
        for job in self._waiting:
            key = job.plan.prefix_key
            if not self._free_seqs or (key is not None and key in computing and key not in self._kept):
                waiting.append(job)  # next step: by then the other job's prompt is there to copy
                continue
            job.seq = self._free_seqs.pop(0)
            self._start_from_prefix(job)
            job.sampler = self._sampler(job.plan)
            self._active.append(job)
            computing.add(key)
        self._waiting = waiting
        self._active.sort(key=lambda job: job.order)

    def _start_from_prefix(self, job: _Job) -> None:
        prompt = job.plan.prompt
        sources = [(kept.seq, kept.tokens) for kept in self._kept.values()]
        sources += [(other.seq, other.plan.prompt[:other.computed]) for other in self._active]
        best_seq, best = -1, 0
        for seq, tokens in sources:
            shared = common_prefix(tokens, prompt)
            if shared > best:
                best_seq, best = seq, shared
        # At least the last two prompt tokens are decoded: the last for its logits, and never as a row alone,
        # whose arithmetic differs (prefix_cache.replay_two_rows), so a reply does not depend on what was kept.
        best = max(0, min(best, len(prompt) - LAST_ROWS))
        self._c.llama_memory_seq_rm(self._memory, job.seq, -1, -1)
        if best > 0:  # across streams llama.cpp copies a whole stream (at the next decode): then cut it
            self._c.llama_memory_seq_cp(self._memory, best_seq, job.seq, -1, -1)
            self._c.llama_memory_seq_rm(self._memory, job.seq, best, -1)
        job.computed = best

    def _sampler(self, plan: ChatPlan) -> Any:
        """The sampler chain llama-cpp-python builds for this plan (with the lazy grammar where enabled)."""
        with self._model_lock:
            self._llama._seed = plan.seed
            self._llama.lazy_grammar = self.lazy_grammar
            return self._llama._init_sampler(temp=plan.temperature, grammar=plan.grammar, **plan.sampler_args)

    def _decode_once(self) -> list[_Job]:
        batch, c = self._batch, self._c
        batch.n_tokens = 0
        work: list[tuple[_Job, list[int], list[int]]] = []  # a job, its draft, the batch rows to sample from
        budget = N_BATCH
        for job in self._active:  # the generating calls first: their next token and its draft
            if not job.in_prompt and job.next_token is not None:
                draft = [] if job.lookup is None else job.lookup.propose(
                    job.plan.prompt + tuple(job.completion),
                    min(budget - 1, self.n_ctx - job.computed - 2, job.plan.max_tokens - len(job.completion) - 1))
                rows = [self._add(token, job.computed + i, job.seq, True)
                        for i, token in enumerate([job.next_token, *draft])]
                job.drafted += len(draft)
                work.append((job, draft, rows))
                budget -= len(rows)
        for job in self._active:
            if job.in_prompt and budget > 0:
                chunk = job.plan.prompt[job.computed:job.computed + budget]
                rows = []
                for offset, token in enumerate(chunk):
                    last = job.computed + offset == len(job.plan.prompt) - 1
                    index = self._add(token, job.computed + offset, job.seq, last)
                    if last:
                        rows.append(index)
                job.computed += len(chunk)
                job.prompt_eval_tokens += len(chunk)
                budget -= len(chunk)
                if rows:
                    work.append((job, [], rows))
        status = c.llama_decode(self._ctx, batch)
        if status != 0:
            raise BackendError(f"llama.cpp could not decode a batch of {batch.n_tokens} tokens (status {status})",
                               backend="embedded")
        for job in self._active:
            job.peak_batch = max(job.peak_batch, len(work))
        finished = [job for job, draft, rows in work if self._verify(job, draft, rows)]
        for job in finished:
            self._active.remove(job)
            self._release(job)
        return finished

    def _verify(self, job: _Job, draft: list[int], rows: list[int]) -> bool:
        """Sample job's token at each row, keeping the draft while the samples agree with it; True once done.

        Row i holds the logits after the job's next token and draft[:i]: its sample is the token
        one-at-a-time decoding would draw there (the same chain, the same random draws in the same order),
        so a draft token the sample agrees with was computed for nothing lost, and the first disagreement
        ends the step, its sample the next token to decode. The draft's KV cells past it are removed.
        """
        generating = bool(job.completion)
        if not generating:
            self._keep_prefix(job)  # the prompt was just computed: keep it before the reply goes on
        for i, row in enumerate(rows):
            token = self._c.llama_sampler_sample(job.sampler.sampler, self._ctx, row)
            if self._accept(job, token):
                return True
            if i < len(draft) and token == draft[i]:
                job.accepted += 1
                continue
            if generating:  # the next token and draft[:i] are in the cache; the rest of the draft goes
                job.computed += 1 + i
                if i < len(draft):
                    self._c.llama_memory_seq_rm(self._memory, job.seq, job.computed, -1)
                if job.lookup is not None:
                    job.lookup.learn(accepted=i, drafted=len(draft))
            return False
        return False

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        batch = self._batch
        i = batch.n_tokens
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
        batch.n_tokens = i + 1
        return i

    def _accept(self, job: _Job, token: int) -> bool:
        """Take a sampled token as llama-cpp-python's _create_completion does; True once the call is done."""
        # Detokenized without the prompt as prev_tokens: llama-cpp-python's own tokenizer ignores them, and
        # copying the prompt at every token would be work on the hottest path.
        plan, llama = job.plan, self._llama
        if self._c.llama_vocab_is_eog(self._vocab, token):
            return self._finish(job, llama.detokenize(job.completion), "stop")
        job.completion.append(token)
        job.next_token = token
        text = llama.detokenize(job.completion)
        for k, char in enumerate(text[-3:]):  # an unfinished UTF-8 character: wait for its other bytes
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    job.multibyte_fix = num - k
        if job.multibyte_fix > 0:
            job.multibyte_fix -= 1
            return False
        stops = [stop for stop in plan.stop if stop in text]
        if stops:
            return self._finish(job, text[: text.index(stops[0])], "stop")
        if len(job.completion) >= plan.max_tokens:
            return self._finish(job, text, "length")
        return False

    @staticmethod
    def _finish(job: _Job, text: bytes, reason: str) -> bool:
        job.result = Decoded(text.decode("utf-8", errors="ignore"), len(job.completion), reason,
                             job.prompt_eval_tokens, job.peak_batch, job.drafted, job.accepted)
        return True

    def _keep_prefix(self, job: _Job) -> None:
        """A prompt just computed: keep it, or cut the kept prefix of its system message to what they share."""
        key = job.plan.prefix_key
        if key is None or self.prefix_slots <= 0:
            return
        prompt = job.plan.prompt
        kept = self._kept.get(key)
        if kept is not None:
            shared = common_prefix(kept.tokens, prompt)
            if shared < len(kept.tokens):
                self._c.llama_memory_seq_rm(self._memory, kept.seq, shared, -1)
                kept.tokens = kept.tokens[:shared]
            self._kept.move_to_end(key)
            return
        if not self._free_kept:  # the least recently used prefix makes room
            _, evicted = self._kept.popitem(last=False)
            self._c.llama_memory_seq_rm(self._memory, evicted.seq, -1, -1)
            self._free_kept.append(evicted.seq)
        seq = self._free_kept.pop(0)
        self._c.llama_memory_seq_cp(self._memory, job.seq, seq, -1, -1)  # the stream holds just the prompt now
        self._kept[key] = _Kept(seq, prompt)

    def _release(self, job: _Job) -> None:
        if job.seq >= 0:
            self._c.llama_memory_seq_rm(self._memory, job.seq, -1, -1)
            self._free_seqs.append(job.seq)
            self._free_seqs.sort()
            job.seq = -1
        if job.sampler is not None:
            job.sampler.close()
            job.sampler = None

