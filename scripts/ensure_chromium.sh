#!/usr/bin/env bash
# Installs Debian's chromium when it is missing: the report test opens the HTML report in it, headless.
# Quiet on success; needs root (or passwordless sudo) and the Debian package mirror the first time.
set -euo pipefail

command -v chromium >/dev/null 2>&1 && exit 0
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n" \
        || { echo "ensure_chromium: chromium is missing and installing it needs root (apt-get install chromium)" >&2; exit 1; }
fi
LOG="$(mktemp)"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } >"$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    echo "ensure_chromium: apt-get install chromium failed (log above)" >&2
    rm -f "$LOG"
    exit 1
fi
rm -f "$LOG"
command -v chromium >/dev/null 2>&1 || { echo "ensure_chromium: chromium still not on PATH after install" >&2; exit 1; }
