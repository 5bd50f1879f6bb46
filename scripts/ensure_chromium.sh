#!/usr/bin/env bash
# Installs Debian's chromium when it is missing: the report test opens the HTML report in it, headless.
exec "$(dirname "${BASH_SOURCE[0]}")/ensure_apt.sh" chromium command -v chromium
