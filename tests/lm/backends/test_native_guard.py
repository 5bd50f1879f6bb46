"""The AMX guard: a llama-cpp-python built with AMX is refused with one line and exit 2, before anything is
written; and the build in this test environment is the portable one, and really runs the model."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from autoresearch.cli.main import main
from autoresearch.errors import NativeBuildError
from autoresearch.lm.backends import (
    ChatMessage,
    CompletionRequest,
    EmbeddedBackend,
    llama_build,
)
from autoresearch.lm.backends.embedded import DEFAULT_MODEL, check_native_build
from autoresearch.workspace.workspace import init_workspace

AMX_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 "
            "| AVX512_VNNI = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")


@pytest.fixture
def amx_build(monkeypatch):
    """llama.cpp reports an AMX build, as a -march=native wheel built on a Sapphire Rapids Xeon does."""
    monkeypatch.setattr(llama_build, "system_info", lambda: AMX_INFO)


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if ".git" not in p.parts)


def git_log(root):
    return subprocess.run(["git", "log", "--oneline"], cwd=root, capture_output=True, text=True, check=True).stdout


def test_an_amx_build_is_refused_with_the_reinstall_command(amx_build):
    with pytest.raises(NativeBuildError) as caught:
        check_native_build()
    message = str(caught.value)
    assert "AMX_INT8" in message and "issue 20824" in message
    assert llama_build.reinstall_command() in message


def test_an_amx_build_never_reaches_the_model(amx_build, monkeypatch):
    import llama_cpp

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded despite an AMX build")

    monkeypatch.setattr(llama_cpp, "Llama", must_not_load)
    backend = EmbeddedBackend(n_ctx=640)  # an n_ctx no other test loads, so this call would load
    with pytest.raises(NativeBuildError):
        backend.complete(CompletionRequest(model=DEFAULT_MODEL, messages=(ChatMessage("user", "Hi."),), max_tokens=4))
    with pytest.raises(NativeBuildError):  # preflight asks list_models, before anything is written
        backend.list_models()


@pytest.mark.parametrize("command", [["eval"], ["run", "--trials", "1"], ["profile"]])
def test_cli_prints_one_line_exits_2_and_writes_nothing(command, amx_build, tmp_path):
    root = init_workspace(tmp_path / "ws")
    files, log = files_under(root), git_log(root)

    result = CliRunner().invoke(main, [*command, "-w", str(root)])

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "AMX_INT8" in lines[0]
    assert "--no-binary llama-cpp-python" in lines[0]
    assert files_under(root) == files and git_log(root) == log


def test_doctor_flags_an_amx_build(amx_build, tmp_path):
    root = init_workspace(tmp_path / "ws")
    result = CliRunner().invoke(main, ["doctor", "-w", str(root), "--json"])
    assert result.exit_code == 0, result.output
    build = next(b for b in json.loads(result.stdout)["backends"] if b["name"] == "embedded build")
    assert not build["ok"] and "AMX_INT8" in build["detail"] and "--no-binary llama-cpp-python" in build["detail"]


def test_doctor_shows_the_builds_cpu_features(tmp_path):
    root = init_workspace(tmp_path / "ws")
    result = CliRunner().invoke(main, ["doctor", "-w", str(root), "--json"])
    assert result.exit_code == 0, result.output
    build = next(b for b in json.loads(result.stdout)["backends"] if b["name"] == "embedded build")
    expected = " ".join(llama_build.cpu_features(llama_build.system_info()))
    assert build["ok"] and build["detail"] == f"CPU features: {expected}; no AMX"


@pytest.mark.embedded
def test_this_environment_has_the_portable_build_and_it_runs_the_model():
    info = llama_build.system_info()
    assert llama_build.amx_features(info) == [], info
    if llama_build.machine() == "x86_64":
        # The flags of scripts/setup.sh, whatever this CPU has: a native build on an AVX-512 machine
        # would report AVX512 here, and one on a Sapphire Rapids Xeon AMX_INT8.
        used = set(llama_build.cpu_features(info))
        assert {"AVX", "AVX2", "FMA", "F16C"} <= used, info
        assert not {f for f in used if f.startswith(("AVX512", "AMX"))}, info
    check_native_build()
    completion = EmbeddedBackend(n_ctx=1024).complete(CompletionRequest(
        model=DEFAULT_MODEL, messages=(ChatMessage("user", "Name a colour."),), max_tokens=8, temperature=0.0,
        seed=1))
    assert completion.text.strip() and completion.completion_tokens > 0
