#!/usr/bin/env bash
# Shared set-up for the quickstart scripts: creates .venv and installs autoresearch into it.
# Safe to run repeatedly: it reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
STAMP="$VENV/.autoresearch-installed"
LOG="$VENV/pip-install.log"

die() { echo "setup: $*" >&2; exit 1; }

command -v git >/dev/null 2>&1 || die "git is not installed (e.g. apt-get install git); autoresearch commits every kept change."
# No git identity is needed: autoresearch sets its own author/committer on the commits it makes,
# so the user's git config is left untouched.

# A working venv: create it when missing or broken.
if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install Python 3.11 or newer."
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Python >= 3.11 is required, $PYTHON is $("$PYTHON" -c 'import platform; print(platform.python_version())'); set PYTHON=/path/to/python3.11 or newer."
    echo "setting up .venv…"
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        die "'$PYTHON -m venv' failed; install the venv module (e.g. apt-get install python3-venv) and retry."
    fi
fi
"$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die ".venv uses Python < 3.11; remove it (rm -rf .venv) and rerun with PYTHON=/path/to/python3.11 or newer."

# llama-cpp-python compiles llama.cpp from source, by default for the build machine's own CPU
# (-march=native): such a wheel can carry AMX, which segfaults the embedded model, or AVX-512, which
# another machine lacks, and pip's wheel cache hands it to the next install on any CPU. So we build it
# ourselves with portable flags (autoresearch/lm/backends/llama_build.py), never through pip's cache, and
# keep the wheel in a cache of our own keyed by version + flags + architecture + Python.
LLAMA_BUILD="$ROOT/autoresearch/lm/backends/llama_build.py"
llama_version="$("$VENV/bin/python" "$LLAMA_BUILD" version)"
llama_flags="$("$VENV/bin/python" "$LLAMA_BUILD" cmake-args)"
llama_key="$("$VENV/bin/python" "$LLAMA_BUILD" key)"
WHEEL_CACHE="${AUTORESEARCH_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/autoresearch/wheels}"
WHEEL_DIR="$WHEEL_CACHE/llama-cpp-python-$llama_version-$llama_key"

want="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read() + sys.argv[2].encode()).hexdigest())' pyproject.toml "$llama_key")"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" || ! -x "$VENV/bin/autoresearch" ]]; then
    rm -f "$STAMP"
    : >"$LOG"
    wheel="$(ls "$WHEEL_DIR"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)"
    if [[ -z "$wheel" ]]; then
        echo "compiling llama-cpp-python $llama_version with portable CPU flags (about 4 min on 2 cores, once per machine)…"
        echo "  CMAKE_ARGS=\"$llama_flags\""
        rm -rf "$WHEEL_DIR"  # an entry without its wheel (removed by hand) is rebuilt
        mkdir -p "$WHEEL_CACHE"
        building="$(mktemp -d "$WHEEL_CACHE/.building.XXXXXX")"
        # --no-binary: compile from the sdist; --no-cache-dir: neither take nor leave a wheel in pip's cache.
        if ! CMAKE_ARGS="$llama_flags" FORCE_CMAKE=1 "$VENV/bin/python" -m pip wheel --disable-pip-version-check \
                --progress-bar off --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$building" \
                "llama-cpp-python==$llama_version" >>"$LOG" 2>&1; then
            rm -rf "$building"
            tail -n 40 "$LOG" >&2
            die "compiling llama-cpp-python failed (full log: $LOG)."
        fi
        # A rename: another set-up sees the whole wheel or none of it.
        if [[ -e "$WHEEL_DIR" ]]; then rm -rf "$building"; else mv "$building" "$WHEEL_DIR"; fi
        wheel="$(ls "$WHEEL_DIR"/llama_cpp_python-*.whl | head -n 1)"
    fi
    if [[ -n "$have" ]]; then
        echo "pyproject.toml or the llama.cpp build changed: reinstalling autoresearch into .venv…"
    else
        echo "installing autoresearch into .venv…"
    fi
    # Quiet on success; on failure show the end of pip's output and where the full log is.
    # --force-reinstall replaces a llama-cpp-python of the same version built with other flags.
    if ! { "$VENV/bin/python" -m pip install --upgrade --disable-pip-version-check --progress-bar off pip \
           && "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
                --force-reinstall --no-deps "$wheel" \
           && "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
                -e ".[test]" "$wheel"; } >>"$LOG" 2>&1; then
        tail -n 40 "$LOG" >&2
        die "pip install failed (full log: $LOG)."
    fi
    # llama.cpp's own account of the build; refuses (and so leaves no stamp) if it uses AMX.
    "$VENV/bin/python" "$LLAMA_BUILD" check || die "the installed llama-cpp-python is not the portable build."
    echo "$want" >"$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
    echo "setup: done in ${SECONDS} s."
fi
