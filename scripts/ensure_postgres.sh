#!/usr/bin/env bash
# Installs Debian's PostgreSQL server when it is missing: the shared-study test starts a private server on
# loopback (tests/search/postgres.py).
exec "$(dirname "${BASH_SOURCE[0]}")/ensure_apt.sh" postgresql bash -c 'ls /usr/lib/postgresql/*/bin/initdb'
