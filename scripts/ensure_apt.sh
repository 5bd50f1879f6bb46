#!/usr/bin/env bash
# ensure_apt.sh PACKAGE PROBE...: installs Debian's PACKAGE unless the PROBE command already succeeds.
# Used by test.sh for the servers and browsers the tests drive for real. Quiet on success; needs root
# (or passwordless sudo) and the Debian package mirror the first time.
set -euo pipefail

PACKAGE="$1"; shift
"$@" >/dev/null 2>&1 && exit 0
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n" \
        || { echo "ensure_apt: $PACKAGE is missing and installing it needs root (apt-get install $PACKAGE)" >&2; exit 1; }
fi
LOG="$(mktemp)"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$PACKAGE"; } >"$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    echo "ensure_apt: apt-get install $PACKAGE failed (log above)" >&2
    rm -f "$LOG"
    exit 1
fi
rm -f "$LOG"
"$@" >/dev/null 2>&1 || { echo "ensure_apt: $PACKAGE installed, but '$*' still fails" >&2; exit 1; }
