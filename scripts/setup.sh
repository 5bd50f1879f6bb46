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
    echo "setting up .venv (first run compiles llama-cpp-python, ~5 min)…"
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        die "'$PYTHON -m venv' failed; install the venv module (e.g. apt-get install python3-venv) and retry."
    fi
fi
"$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die ".venv uses Python < 3.11; remove it (rm -rf .venv) and rerun with PYTHON=/path/to/python3.11 or newer."

want="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' pyproject.toml)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" || ! -x "$VENV/bin/autoresearch" ]]; then
    if [[ -n "$have" ]]; then
        echo "pyproject.toml changed: reinstalling autoresearch into .venv…"
    else
        echo "installing autoresearch into .venv (compiling llama-cpp-python takes ~5 min unless pip has it cached)…"
    fi
    rm -f "$STAMP"
    # Quiet on success; on failure show the end of pip's output and where the full log is.
    if ! { "$VENV/bin/python" -m pip install --upgrade --disable-pip-version-check --progress-bar off pip \
           && "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -e ".[test]"; } \
           >"$LOG" 2>&1; then
        tail -n 40 "$LOG" >&2
        die "pip install failed (full log: $LOG)."
    fi
    echo "$want" >"$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
    echo "setup: done."
fi
