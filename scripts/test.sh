#!/usr/bin/env bash
# Runs the whole test suite (embedded-model tests included) in .venv; arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
# The HTML report test opens the report in headless Chromium (Debian's package).
"$ROOT/scripts/ensure_chromium.sh" || echo "test.sh: chromium unavailable; the report browser test will skip" >&2
# The shared-study test runs a real PostgreSQL server on loopback (Debian's package); here it must not skip.
"$ROOT/scripts/ensure_postgres.sh"
export AUTORESEARCH_REQUIRE_POSTGRES=1
cd "$ROOT"

# pytest's own summary ("N passed in Ns") stays the last line CI reads.
rc=0
.venv/bin/python -m pytest -q "$@" || rc=$?

if [[ $rc -eq 5 ]]; then
    echo "test.sh: FAILED: pytest collected no tests (exit 5); check the test paths / -k / -m arguments." >&2
    exit 1
fi
exit "$rc"
