#!/usr/bin/env bash
# The test suite: installs what it needs when missing, then runs every test against the real
# restic, real SQLite files, a MariaDB server and the off-site servers (REST, S3, SFTP) the
# tests start themselves.
#   scripts/test.sh [--restic 0.14|0.18|PATH] [cargo test arguments...]
# --restic picks the restic the tests and resticpilot run (default: restic on PATH):
# 0.18 is Debian trixie's package, fetched and unpacked into a cache (nothing is installed);
# 0.14 is the host's /usr/bin/restic (Debian bookworm's); a PATH is any restic binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
restic_bin=""
if [[ "${1:-}" == "--restic" ]]; then
  case "${2:?--restic needs 0.14, 0.18 or a path}" in
    0.18|trixie) restic_bin=$(scripts/install-deps.sh --restic-trixie) ;;
    0.14|bookworm|host) restic_bin=/usr/bin/restic ;;
    *) restic_bin=$2 ;;
  esac
  shift 2
fi
if [[ -n "$restic_bin" ]]; then
  # restic first on PATH, for the tests' own restic calls and for resticpilot's.
  dir=target/test-restic/$(echo "$restic_bin" | md5sum | cut -c1-8)
  mkdir -p "$dir"
  ln -sf "$(realpath "$restic_bin")" "$dir/restic"
  export PATH="$PWD/$dir:$PATH"
fi
version=$(restic version)
echo "tests: $version ($(command -v restic))" >&2
# The harness checks every restic it runs is this one.
export RESTICPILOT_TEST_RESTIC_VERSION="$(echo "$version" | awk '{print $2}')"
# Most integration tests wait on servers, restic and timeouts rather than on the CPU: six at a
# time halve the suite's time on 2 cores (641 s -> 314 s measured). RUST_TEST_THREADS overrides.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-6}"
cargo test --locked "$@"
