"""The Optuna strategies a Study uses by default, and what does (not) name a study."""

from __future__ import annotations

import importlib.util

import optuna
import pytest
from scripted import ScriptedPipeline

from autoresearch.errors import ConfigError
from autoresearch.search import identity, strategies
from autoresearch.search.study import Study
from autoresearch.workspace.config import SearchConfig
from autoresearch.workspace.workspace import load_workspace


def test_start_up_trials_are_a_quarter_of_the_budget_from_2_to_5():
    assert [strategies.startup_trials(n) for n in (1, 7, 12, 20, 200)] == [2, 2, 3, 5, 5]
    assert strategies.startup_trials(None) == 5  # a run stopped by time or plateau: no budget to scale to


def test_tpe_is_multivariate_scaled_to_the_budget_and_a_constant_liar_when_shared():
    alone = strategies.default_sampler(SearchConfig(), 3, n_trials=8)
    assert isinstance(alone, optuna.samplers.TPESampler)
    assert (alone._n_startup_trials, alone._multivariate, alone._constant_liar) == (2, True, False)
    shared = strategies.default_sampler(SearchConfig(), 3, n_trials=None, shared=True)
    assert (shared._n_startup_trials, shared._constant_liar) == (5, True)


def test_random_sampler_is_chosen_by_the_setting():
    sampler = strategies.default_sampler(SearchConfig(sampler="random"), 3, n_trials=8)
    assert isinstance(sampler, optuna.samplers.RandomSampler)


def test_the_gp_sampler_without_torch_is_refused_naming_the_field(loop_workspace, monkeypatch):
    root = loop_workspace(extra='\n[search]\nsampler = "gp"\n')
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(ConfigError) as error:
        Study(load_workspace(root))
    assert error.value.field == "search.sampler" and "torch" in error.value.message
    assert not (root / "runs" / "autoresearch.db").exists()  # refused before anything was written


def test_a_study_makes_its_sampler_for_the_runs_budget(loop_workspace):
    study = Study(load_workspace(loop_workspace()), seed=1)
    assert study.sampler is None  # made in optimize(), when the budget is known
    assert study._default_sampler(12)._n_startup_trials == 3


def test_concurrency_and_the_sampler_do_not_rename_a_study_but_a_scoring_setting_does(loop_workspace):
    root = loop_workspace()
    before = identity.study_name(load_workspace(root))
    config = root / "autoresearch.toml"
    text = config.read_text()
    changed = text.replace("[backends]", "[backends]\nconcurrency = 4", 1)
    config.write_text(changed + '\n[search]\nsampler = "random"\n')
    assert identity.study_name(load_workspace(root)) == before
    config.write_text(text.replace("temperature = 0.2", "temperature = 0.25", 1))
    assert identity.study_name(load_workspace(root)) != before


def test_batched_or_drafted_embedded_decoding_renames_a_study_and_one_row_decoding_does_not(tmp_path):
    from autoresearch.workspace.workspace import init_workspace

    root = init_workspace(tmp_path / "ws")  # the starter: every role on the embedded model
    config = root / "autoresearch.toml"
    text = config.read_text()
    before = identity.study_name(load_workspace(root))
    names = {}
    for setting in ("embedded_batch = 1", "concurrency = 4", "embedded_batch = 4", "embedded_draft = 16"):
        config.write_text(text.replace("[backends]", f"[backends]\n{setting}", 1))
        names[setting] = identity.study_name(load_workspace(root))
    config.write_text(text.replace("temperature = 0.2\n", "temperature = 0.2\nconcurrency = 4\n", 1))
    names["a role's concurrency"] = identity.study_name(load_workspace(root))  # its batch on the embedded model
    # One row at a time is the arithmetic studies were always scored with; a server's concurrency is not
    # the embedded model's; batches and drafts score with other arithmetic and so make another study.
    assert names["embedded_batch = 1"] == names["concurrency = 4"] == before
    assert len({before, names["embedded_batch = 4"], names["embedded_draft = 16"], names["a role's concurrency"]}) == 4


def test_restated_instructions_rename_a_study_and_reach_every_pipeline_prompt(tmp_path):
    from autoresearch.pipeline.harness import Harness
    from autoresearch.workspace.workspace import init_workspace

    root = init_workspace(tmp_path / "ws")
    config = root / "autoresearch.toml"
    before = identity.study_name(load_workspace(root))
    config.write_text(config.read_text().replace("[workspace]", "[workspace]\nrestate_instructions = true", 1))
    ws = load_workspace(root)
    assert identity.study_name(ws) != before  # every prompt changes: scores do not mix with the old ones
    assert Harness(ws, ws.portfolio("default")).adapter.restate


@pytest.mark.parametrize("pruner, prunes", [("none", False), ("paired", True), ("wilcoxon", True)])
def test_screens_are_stoppable_exactly_when_a_pruner_may_stop_them(loop_workspace, pruner, prunes):
    # A staged harness (Ollama model swaps) runs a stoppable screen in blocks, which only a pruner makes worth it.
    root = loop_workspace(extra=f'\n[search]\npruner = "{pruner}"\nnoise_repeats = 1\n')
    study = Study(load_workspace(root), backend_factory=ScriptedPipeline().factory, seed=1, backoff_s=0)
    study.optimize(n_trials=0)
    assert study.evaluator.prunes is prunes


def test_a_repeat_penalty_renames_a_study_and_enters_a_shared_workers_identity_only_where_set(loop_workspace):
    from autoresearch.search.shared.worker import scoring_identity

    root = loop_workspace()
    config = root / "autoresearch.toml"
    starter = config.read_text()  # the starter's producer and proposer set repeat_penalty = 1.15
    config.write_text(starter.replace("repeat_penalty = 1.15\n", ""))
    ws = load_workspace(root)
    before, identity_before = identity.study_name(ws), scoring_identity(ws.portfolio("default"))
    assert "repeat_penalty" not in identity_before["proposer"]  # unset: a study named before it existed keeps
    config.write_text(starter)
    ws = load_workspace(root)
    assert identity.study_name(ws) != before
    assert scoring_identity(ws.portfolio("default"))["proposer"]["repeat_penalty"] == 1.15


def test_a_shared_workers_seed_stays_one_numpy_takes_whatever_the_worker_id(loop_workspace, monkeypatch):
    from autoresearch.search import study as study_module

    monkeypatch.setattr(study_module, "worker_id", lambda: "host:1:ffffff")  # a hash near the top of 32 bits
    ws = load_workspace(loop_workspace())
    for seed in (31, 10**9):
        shared = Study(ws, seed=seed, study_name="nightly", storage="sqlite:///x.db")
        assert 0 <= shared.seed < 2**32
        shared._default_sampler(10)  # numpy's RandomState took it


def test_the_starters_study_names_stay_as_they_are(tmp_path):
    # A study's name is the identity of its scores. A code change that renamed it (a new [search] setting with a
    # default, say) would start every user's study over after an upgrade: a new baseline on a new branch, the old
    # keeps left behind. Change these only with a change to what the starter's studies measure, and say so.
    from autoresearch.workspace.workspace import init_workspace

    # Last changed by the degenerate guard measuring short answers for copies (2026-12-06): an answer made of its
    # instructions' own lines scores 0 however short, so the starter's studies start over (they were
    # starter-default-d51e67ae, -terse-48512e38; before the producer's repeat_penalty, -9a0ea41f and -ef9ff67a;
    # before [scoring] degenerate_guard, -4a2eb513 and -e73ea790).
    ws = load_workspace(init_workspace(tmp_path / "ws"))
    assert identity.study_name(ws) == "starter-default-46e399c3"
    assert identity.study_name(ws, "terse") == "starter-terse-5b1bca33"
