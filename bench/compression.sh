#!/usr/bin/env bash
# restic's compression modes side by side on the same Torrust-like SQLite database, through
# resticpilot's whole `backup` (online dump, then restic backup) with `restic: { compression }`
# set to off, auto and max: the median wall time of 3 runs each (a new repository each run)
# and the repository's size. Run by `bench/run.sh --compression [SIZE]` (default 256M).
# Output: a Markdown table on stdout and in target/bench/compression-<size>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-256M}"
bytes="$(numfmt --from=iec "${size^^}")"
work="$PWD/target/bench/compression"
mkdir -p "$work"
# RESTICPILOT_BIN: a binary already built (the release build takes minutes on a small machine).
if [[ -n "${RESTICPILOT_BIN:-}" ]]; then
  bin="$RESTICPILOT_BIN"
else
  cargo build --release --quiet
  bin="$PWD/target/release/resticpilot"
fi
db="$work/tracker-$size.db"
if [[ ! -f "$db" ]]; then
  echo "generating $db ($size)" >&2
  python3 - "$db" "$bytes" <<'PY'
import os, random, sqlite3, sys
path, target = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(path)
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE torrents (id INTEGER PRIMARY KEY, info_hash BLOB NOT NULL UNIQUE, "
            "seeders INTEGER, leechers INTEGER, completed INTEGER, updated_at TEXT)")
rng = random.Random(42)
i = 0
while os.path.getsize(path) < target:
    rows = [(os.urandom(20), rng.randrange(500), rng.randrange(200), rng.randrange(100000),
             "2026-11-%02d %02d:%02d:%02d" % (rng.randrange(1, 31), rng.randrange(24),
                                              rng.randrange(60), rng.randrange(60)))
            for _ in range(20000)]
    con.executemany("INSERT INTO torrents (info_hash, seeders, leechers, completed, updated_at) "
                    "VALUES (?,?,?,?,?)", rows)
    con.commit()
    i += len(rows)
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
PY
fi
echo "bench-password" >"$work/password"
restic_version="$(restic version | awk '{print $2}')"
out="target/bench/compression-$size.md"
{
  echo "### restic compression, resticpilot backup of a $size Torrust-like SQLite database (restic $restic_version, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), $bin)"
  echo
  echo "| compression | backup, median of 3 (s) | repository size | vs off |"
  echo "| --- | ---: | ---: | ---: |"
} | tee "$out"
off_size=""
for mode in off auto max; do
  times=()
  for run in 1 2 3; do
    rm -rf "$work/repo" "$work/state"
    cat >"$work/config.yaml" <<YAML
state_dir: $work/state
repositories:
  bench:
    url: $work/repo
    password_file: $work/password
    init: true
    restic: { compression: $mode }
profiles:
  tracker:
    repository: bench
    host: bench
    databases:
      - { name: tracker, type: sqlite, path: '$db' }
YAML
    RESTIC_PASSWORD_FILE="$work/password" RESTIC_REPOSITORY="$work/repo" restic init -q >/dev/null
    start=$(date +%s.%N)
    "$bin" -q -c "$work/config.yaml" backup
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
  done
  median="$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)"
  repo_size="$(du -sb "$work/repo" | cut -f1)"
  [[ -z "$off_size" ]] && off_size=$repo_size
  ratio="$(echo "scale=2; $repo_size / $off_size" | bc)"
  printf '| %s | %.2f | %s | %s |\n' "$mode" "$median" "$(numfmt --to=iec "$repo_size")" "$ratio" | tee -a "$out"
done
rm -rf "$work/repo" "$work/state"
