"""Numbered schema migrations of the SQLite store; each runs once, in order, in one transaction."""

from __future__ import annotations

import sqlite3

M001_INITIAL = """
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,                -- eval | baseline | trial | holdout
    study TEXT,
    trial INTEGER,
    portfolio TEXT NOT NULL,
    portfolio_json TEXT NOT NULL,
    instructions_hash TEXT NOT NULL,
    evaluation_hash TEXT NOT NULL,
    split TEXT NOT NULL,               -- search | holdout | all
    status TEXT NOT NULL DEFAULT 'running',  -- running | complete | pruned | failed | interrupted
    composite REAL,
    judge_mean REAL,
    criteria_rate REAL,
    joules REAL,
    energy_source TEXT,
    seconds REAL,
    finished_at TEXT
);
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    evaluation_id INTEGER REFERENCES evaluations(id),
    task_id TEXT,
    role TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    load_s REAL NOT NULL DEFAULT 0,
    joules REAL NOT NULL DEFAULT 0,
    energy_source TEXT NOT NULL,
    status TEXT NOT NULL,              -- ok | failed
    failure_mode TEXT,
    error TEXT,
    response TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX calls_by_evaluation ON calls(evaluation_id);
CREATE TABLE task_results (
    id INTEGER PRIMARY KEY,
    evaluation_id INTEGER NOT NULL REFERENCES evaluations(id),
    task_id TEXT NOT NULL,
    split TEXT NOT NULL,
    score_r1 REAL NOT NULL,
    score_final REAL NOT NULL,
    revisions INTEGER NOT NULL,
    dimensions_json TEXT NOT NULL,     -- first-pass judge score per rubric dimension
    criteria_json TEXT NOT NULL,       -- [{criterion, passed, reason}]
    criteria_passed INTEGER NOT NULL,
    criteria_total INTEGER NOT NULL,
    critique TEXT,
    plan TEXT,
    output TEXT,
    output_r1 TEXT,
    tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    joules REAL NOT NULL,
    energy_source TEXT NOT NULL,
    failed INTEGER NOT NULL DEFAULT 0,
    failure_mode TEXT,
    flags TEXT NOT NULL DEFAULT ''
);
CREATE INDEX task_results_by_evaluation ON task_results(evaluation_id);
"""

M002_STUDIES = """
CREATE TABLE studies (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    workspace TEXT NOT NULL,
    portfolio TEXT NOT NULL,
    portfolio_json TEXT NOT NULL,
    evaluation_hash TEXT NOT NULL,
    branch TEXT NOT NULL,
    storage TEXT NOT NULL
);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY,
    study TEXT NOT NULL REFERENCES studies(name),
    number INTEGER NOT NULL,           -- the Optuna trial number; 0 is the baseline
    created_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,              -- running | baseline | keep | discard | pruned | failed | interrupted
    file TEXT,
    operator TEXT,
    parent_trial INTEGER,
    params_json TEXT NOT NULL DEFAULT '{}',
    idea TEXT,
    variant_text TEXT,
    variant_hash TEXT,                 -- hash of the full instruction set and knobs evaluated
    instructions_json TEXT,            -- every instruction file as evaluated (the incumbent's others + variant)
    composite REAL,
    incumbent_before REAL,
    delta REAL,
    judge_mean REAL,
    criteria_rate REAL,
    holdout_composite REAL,
    joules REAL NOT NULL DEFAULT 0,
    energy_source TEXT,
    evaluation_id INTEGER REFERENCES evaluations(id),
    holdout_evaluation_id INTEGER REFERENCES evaluations(id),
    commit_sha TEXT,
    note TEXT,
    UNIQUE (study, number)
);
ALTER TABLE calls ADD COLUMN study TEXT;
ALTER TABLE calls ADD COLUMN trial INTEGER;
"""

# The part of a call's joules spent loading its model (0 when it did not load); joules stays the total.
M003_LOAD_JOULES = """
ALTER TABLE calls ADD COLUMN load_joules REAL NOT NULL DEFAULT 0;
"""

# trials.objective: what the loop compared, told Optuna and kept on: composite − [scoring] energy_weight ×
#   kJ per search task (equal to composite when the weight is 0; NULL in rows made before m004, which
#   were made with weight 0). trials.composite stays the quality composite; with a weight > 0,
#   trials.delta and trials.incumbent_before are in objective units (objective − the incumbent's objective).
# calls.attribution: "exclusive" (the call was alone on its energy counter, or estimated) or "shared:N"
#   (it overlapped other calls on the same counter, at most N at once, and got a token share of their energy).
#   Since 2026-12-02 a counter reading says "device" or "device,shared:N" (a device counter also counts other
#   processes) and "exclusive" is left to estimates; older rows keep what they were written with.
# studies.warm_start: the study of another portfolio whose best instructions this study started from.
M004_OBJECTIVE_ATTRIBUTION = """
ALTER TABLE trials ADD COLUMN objective REAL;
ALTER TABLE calls ADD COLUMN attribution TEXT NOT NULL DEFAULT 'exclusive';
ALTER TABLE studies ADD COLUMN warm_start TEXT;
"""

# calls.seed: the sampling seed the call was sent with: the role's own, or (a role without one) a fresh
#   seed drawn for that call, so that any reply can be reproduced. NULL in rows made before m005.
M005_CALL_SEED = """
ALTER TABLE calls ADD COLUMN seed INTEGER;
"""

# studies.noise_json: the baseline's search composite under the configured seeds and the next ones
#   ({"values": [...], "seeds": [...]}, [search] noise_repeats of them): the study's measured noise. No longer
#   written: the noise is read from the baseline's evaluations (store/queries.noise_composites), which carry
#   their seeds; read only for a study whose evaluations predate m007's variant_hash and repeat.
M006_STUDY_NOISE = """
ALTER TABLE studies ADD COLUMN noise_json TEXT;
"""

# evaluations.variant_hash: the variant evaluated (instructions and knobs, as trials.variant_hash), so that the
#   keep rule finds an incumbent's scores under each seed set again, whichever trial made them.
# evaluations.repeat: which seed set it ran under (0: the configured seeds; r: each seed + r).
# trials.delta: from m007 on, for a trial that reached the keep rule, its mean paired difference over tasks ×
#   seeds (what the rule decided on); trials.incumbent_before stays the incumbent's objective.
# trials.evidence_json: how the keep rule decided: screen, paired comparison over tasks × seeds, its bound,
#   the holdout difference and its margin, the trial's model calls (search/keep_rule.py, Verdict.to_json).
M007_PAIRED_EVIDENCE = """
ALTER TABLE evaluations ADD COLUMN variant_hash TEXT;
ALTER TABLE evaluations ADD COLUMN repeat INTEGER NOT NULL DEFAULT 0;
ALTER TABLE trials ADD COLUMN evidence_json TEXT;
CREATE INDEX evaluations_by_variant ON evaluations(study, variant_hash, split, repeat);
"""

# calls.dialect: how a structured call sent its JSON schema: "json_schema", "json_object_schema", "json_object"
#   or "none" (lm/backends/dialects.py; the openai backend negotiates it per server). NULL for a call without
#   a schema, a call that failed before a dialect was accepted, and rows made before m008.
M008_CALL_DIALECT = """
ALTER TABLE calls ADD COLUMN dialect TEXT;
"""

# trials.incumbent_trial, incumbent_hash, incumbent_text: the incumbent a trial was compared with (its trial
#   number, its variant hash, and its text of the file the trial changed). In a shared study the incumbent may
#   be another worker's trial, absent from this store: `show` then finds its scores by hash among this
#   worker's evaluations of it, and diffs against its text. NULL in rows made before m009 (and for a baseline).
M009_TRIAL_INCUMBENT = """
ALTER TABLE trials ADD COLUMN incumbent_trial INTEGER;
ALTER TABLE trials ADD COLUMN incumbent_hash TEXT;
ALTER TABLE trials ADD COLUMN incumbent_text TEXT;
"""

# studies.baseline_json: a shared study's baseline where another worker ran it (no baseline trial in this store):
#   {"trial", "worker", "composite", "holdout_composite", "objective", "variant_hash"}, from the ledger's version 0,
#   so that log, report, show and the noise read it from this store.
M010_STUDY_BASELINE = """
ALTER TABLE studies ADD COLUMN baseline_json TEXT;
"""

# study_keeps: a shared study's keeps that other workers made, as this worker read them from the ledger, so that
#   `log` here lists every keep of the study (their evaluations stay in their workers' stores).
M011_STUDY_KEEPS = """
CREATE TABLE study_keeps (
    study TEXT NOT NULL REFERENCES studies(name),
    version INTEGER NOT NULL,          -- the incumbent version the keep made (1 upwards)
    trial INTEGER NOT NULL,            -- the study-wide Optuna trial number
    worker TEXT NOT NULL,
    file TEXT,
    composite REAL NOT NULL,
    holdout_composite REAL,
    subject TEXT NOT NULL,             -- the keep's commit subject
    idea TEXT,                         -- what the trial tried
    trailers_json TEXT NOT NULL,
    evidence_json TEXT,
    commit_sha TEXT,
    kept_at TEXT NOT NULL,
    PRIMARY KEY (study, version)
);
"""

# evaluations.models: what answered each pipeline role's calls beyond the model's name (lm/model_identity.py: a
#   GGUF's size and hash and the llama.cpp build, an Ollama digest, a server's model details) and the prompt
#   format (pipeline/program.prompt_format), as JSON; a run reuses stored scores only from evaluations of the
#   same (Store.models). NULL for `eval`'s evaluations and rows made before m012 (a study's first run after it
#   takes its own as made by its models).
M012_EVALUATION_MODELS = """
ALTER TABLE evaluations ADD COLUMN models TEXT;
"""

# trials.failure: why a failed trial failed, where that is the recipe's doing: "no_variant" (the proposer gave no usable
#   variant in all its tries), which Optuna is told as a pruned trial without a value, so the sampler ranks the recipe
#   with its worst (search/recovery.optuna_outcome). NULL for other failures (a backend down, too many tasks failed),
#   which are no verdict on the recipe, and in rows made before m013.
M013_TRIAL_FAILURE = """
ALTER TABLE trials ADD COLUMN failure TEXT;
"""

# calls.reused: 1 for a reply reused for a request identical to one the run sent before (lm/replies.py), recorded
#   with the figures of the call that made it: part of its task's cost, not of what the run spent, so the queries of
#   what a study or a trial spent leave it out. 0 for calls made, and in rows made before m014.
M014_CALL_REUSED = """
ALTER TABLE calls ADD COLUMN reused INTEGER NOT NULL DEFAULT 0;
"""

# calls.request_key: what makes a request the same request to the same model (lm/replies.request_key), recorded
#   where the engine may reuse its reply; calls.finish_reason: "stop" or "length" (the reply ran out of tokens).
#   A later run finds a reply by them (store/replies.py), among the calls made by the models now answering.
#   NULL in rows made before m015, which are never reused.
M015_CALL_REQUEST_KEY = """
ALTER TABLE calls ADD COLUMN request_key TEXT;
ALTER TABLE calls ADD COLUMN finish_reason TEXT;
CREATE INDEX calls_by_request_key ON calls(request_key) WHERE request_key IS NOT NULL;
"""

MIGRATIONS: list[tuple[str, str]] = [
    ("m001_initial", M001_INITIAL),
    ("m002_studies", M002_STUDIES),
    ("m003_load_joules", M003_LOAD_JOULES),
    ("m004_objective_attribution", M004_OBJECTIVE_ATTRIBUTION),
    ("m005_call_seed", M005_CALL_SEED),
    ("m006_study_noise", M006_STUDY_NOISE),
    ("m007_paired_evidence", M007_PAIRED_EVIDENCE),
    ("m008_call_dialect", M008_CALL_DIALECT),
    ("m009_trial_incumbent", M009_TRIAL_INCUMBENT),
    ("m010_study_baseline", M010_STUDY_BASELINE),
    ("m011_study_keeps", M011_STUDY_KEEPS),
    ("m012_evaluation_models", M012_EVALUATION_MODELS),
    ("m013_trial_failure", M013_TRIAL_FAILURE),
    ("m014_call_reused", M014_CALL_REUSED),
    ("m015_call_request_key", M015_CALL_REQUEST_KEY),
]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        # One transaction per migration: it applies whole or not at all.
        try:
            conn.executescript(
                f"BEGIN;\n{sql}\nINSERT INTO _migrations VALUES ('{name}', datetime('now'));\nCOMMIT;"
            )
        except sqlite3.Error:
            conn.rollback()
            raise
        applied.append(name)
    return applied
