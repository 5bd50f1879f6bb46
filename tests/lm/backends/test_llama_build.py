"""The portable llama-cpp-python build: its flags, its cache key, and reading llama.cpp's system info."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from autoresearch.lm.backends import llama_build

ROOT = Path(__file__).resolve().parents[3]
# What llama_print_system_info() printed for a -march=native build on a Sapphire Rapids Xeon (issue 12).
NATIVE_AMX_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 "
                   "| AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 "
                   "| LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
PORTABLE_INFO = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"


def test_features_are_read_per_backend_prefix():
    info = "Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 | ARM_FMA = 1 | SVE_CNT = 16 | OPENMP = 0 |"
    assert llama_build.features(info) == {"EMBED_LIBRARY": "1", "NEON": "1", "ARM_FMA": "1", "SVE_CNT": "16",
                                          "OPENMP": "0"}


def test_amx_is_found_only_in_a_build_that_has_it():
    assert llama_build.amx_features(NATIVE_AMX_INFO) == ["AMX_INT8"]
    assert llama_build.amx_features(PORTABLE_INFO) == []
    assert llama_build.amx_features("CPU : AMX_INT8 = 0 |") == []


def test_cpu_features_leave_out_settings():
    assert llama_build.cpu_features(PORTABLE_INFO) == ["SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"]


def test_x86_flags_turn_native_detection_and_amx_off():
    flags = llama_build.cmake_args("x86_64").split()
    assert "-DGGML_NATIVE=OFF" in flags and "-DGGML_AVX2=ON" in flags
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF", "-DGGML_AVX512=OFF"} <= set(flags)
    assert not [f for f in flags if f.endswith("=ON") and ("AMX" in f or "AVX512" in f or "NATIVE" in f)]
    assert llama_build.cmake_args("aarch64") == "-DGGML_NATIVE=OFF"
    assert llama_build.cmake_args("riscv64") == "-DGGML_NATIVE=OFF"  # untested arch: still never native


def test_the_cache_key_changes_with_the_flags(monkeypatch):
    before = llama_build.build_key("x86_64")
    assert before == llama_build.build_key("x86_64") and before != llama_build.build_key("aarch64")
    monkeypatch.setitem(llama_build.PORTABLE_CMAKE_ARGS, "x86_64", ("-DGGML_NATIVE=ON",))
    assert llama_build.build_key("x86_64") != before


def test_the_built_version_is_inside_pyprojects_range():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [Requirement(d) for d in deps if Requirement(d).name == "llama-cpp-python"]
    assert spec.specifier.contains(llama_build.LLAMA_CPP_VERSION)


def test_the_reinstall_command_names_the_flags_and_the_version():
    command = llama_build.reinstall_command("/venv/bin/python")
    assert command.startswith(f'CMAKE_ARGS="{llama_build.cmake_args()}" /venv/bin/python -m pip install ')
    assert "--no-cache-dir --no-binary llama-cpp-python" in command
    assert command.endswith(f"llama-cpp-python=={llama_build.LLAMA_CPP_VERSION}")


def test_setup_sh_runs_the_module_as_a_plain_script():
    # As setup.sh runs it, before autoresearch is installed: a file, not a module of the package.
    script = ROOT / "autoresearch" / "lm" / "backends" / "llama_build.py"
    run = subprocess.run([sys.executable, "-I", str(script), "cmake-args"], capture_output=True, text=True,
                         check=True)
    assert run.stdout.strip() == llama_build.cmake_args()
    bad = subprocess.run([sys.executable, "-I", str(script), "nonsense"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage:" in bad.stderr


def test_the_readme_gives_plain_pip_users_the_same_flags():
    readme = (ROOT / "README.md").read_text()
    assert f'CMAKE_ARGS="{llama_build.cmake_args("x86_64")}" pip install --no-cache-dir --no-binary llama-cpp-python' in readme
    assert f'CMAKE_ARGS="{llama_build.cmake_args("aarch64")}"' in readme
