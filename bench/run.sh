#!/usr/bin/env bash
# The benchmark suite, in one command: resticpilot side by side with the bare tools.
#
#   bench/run.sh                      1 GiB SQLite (WAL and rollback journal) + 1 GiB MariaDB
#                                     + 1 GiB PostgreSQL
#   bench/run.sh --size 64M --mysql-size 64M --pg-size 64M      a quick run
#   bench/run.sh --skip sqlite,growth,incremental,mysql  PostgreSQL alone (--pg-size 0 skips it)
#   bench/run.sh --sizes 1G,4G        several sizes in one run (17G works where disk allows)
#   bench/run.sh --compression [SIZE] restic compression off/auto/max through resticpilot backup
#   bench/run.sh --help               every option (writer rate, timeouts, sections to skip...)
#
# Builds in release mode, installs what is missing (scripts/install-deps.sh), and, when run as
# root, makes an XFS image with reflink, loop-mounts it for the reflink rows and unmounts it at
# the end. Results: Markdown on stdout and in target/bench/results-*.md. Generated databases are
# kept in target/bench/cache and reused. Not run by the tests or CI: it takes minutes to hours.
set -euo pipefail
cd "$(dirname "$0")/.."

# restic's compression modes (off, auto, max) through resticpilot's backup: bench/compression.sh.
if [[ "${1:-}" == "--compression" ]]; then
  shift
  exec bench/compression.sh "$@"
fi

for arg in "$@"; do
  if [[ "$arg" == "--help" || "$arg" == "-h" ]]; then
    exec cargo bench --quiet --bench suite -- --help
  fi
done

scripts/install-deps.sh

workdir="$PWD/target/bench"
sizes="1G"
reflink_given=0
workdir_arg=(--workdir "$workdir")
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --workdir) workdir="${args[i + 1]}" workdir_arg=() ;;
    --workdir=*) workdir="${args[i]#*=}" workdir_arg=() ;;
    --size | --sizes) sizes="${args[i + 1]}" ;;
    --size=* | --sizes=*) sizes="${args[i]#*=}" ;;
    --reflink-dir | --reflink-dir=*) reflink_given=1 ;;
  esac
done
mkdir -p "$workdir"
workdir="$(cd "$workdir" && pwd)"

# The largest size in bytes, for the XFS image (it holds one database and one copy at a time).
largest=0
IFS=',' read -ra size_list <<<"$sizes"
for s in "${size_list[@]}"; do
  n="$(numfmt --from=iec "${s^^}")"
  ((n > largest)) && largest=$n
done

reflink=()
mounted=""
cleanup() {
  if [[ -n "$mounted" ]]; then
    umount "$mounted" || echo "warning: could not unmount $mounted" >&2
    rm -f "$workdir/xfs.img"
  fi
}
trap cleanup EXIT

if ((reflink_given == 0)); then
  reason=""
  if [[ $(id -u) -ne 0 ]]; then
    reason="not root: cannot loop-mount an XFS image (pass --reflink-dir DIR on XFS/btrfs)"
  elif ! command -v mkfs.xfs >/dev/null; then
    reason="mkfs.xfs is missing (apt-get install xfsprogs)"
  else
    image="$workdir/xfs.img"
    mnt="$workdir/xfs"
    mkdir -p "$mnt"
    umount "$mnt" 2>/dev/null || true
    rm -f "$image"
    # Sparse: only what the bench writes takes space on the disk below.
    truncate -s $((largest * 3 + (1 << 30))) "$image"
    if ! out="$(mkfs.xfs -q -m reflink=1 "$image" 2>&1)"; then
      reason="mkfs.xfs failed: $out"
    elif ! out="$(mount -o loop "$image" "$mnt" 2>&1)"; then
      reason="this machine does not allow loop mounts: $out"
    else
      mounted="$mnt"
      reflink=(--reflink-dir "$mnt")
    fi
  fi
  if [[ -n "$reason" ]]; then
    echo "reflink rows will be skipped: $reason" >&2
    reflink=(--no-reflink-reason "$reason")
  fi
fi

cargo bench --quiet --bench suite -- "${workdir_arg[@]}" "${reflink[@]}" "$@"
