#!/usr/bin/env bash
# The test suite: installs what it needs when missing, then runs every test against the real
# restic, real SQLite files and a MariaDB server the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --locked "$@"
