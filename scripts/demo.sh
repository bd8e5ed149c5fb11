#!/usr/bin/env bash
# The demo: a generated SQLite database (a small Torrust-like tracker), a local restic
# repository, and resticpilot backing it up twice, listing the snapshots, running the restore
# drill, and restoring the database copy with plain restic to show it needs no resticpilot.
# Everything lives in ./demo (or $RESTICPILOT_DEMO_DIR); run it again to add snapshots,
# delete the directory to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --demo

export RESTICPILOT_DEMO_DIR="${RESTICPILOT_DEMO_DIR:-$PWD/demo}"
demo="$RESTICPILOT_DEMO_DIR"
mkdir -p "$demo/data/etc"
if [[ ! -f "$demo/restic-password" ]]; then
  umask 077
  head -c 24 /dev/urandom | base64 > "$demo/restic-password"
  umask 022
fi
echo 'announce_interval = 120' > "$demo/data/etc/tracker.toml"
if [[ ! -f "$demo/data/app.db" ]]; then
  echo "creating a demo database at $demo/data/app.db" >&2
  sqlite3 "$demo/data/app.db" <<'SQL'
PRAGMA journal_mode = WAL;
CREATE TABLE torrents (id INTEGER PRIMARY KEY, info_hash BLOB NOT NULL UNIQUE, completed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE keys (id INTEGER PRIMARY KEY, key TEXT NOT NULL, valid_until INTEGER);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50000)
INSERT INTO torrents (info_hash, completed) SELECT randomblob(20), abs(random()) % 1000 FROM n;
INSERT INTO keys (key, valid_until) VALUES ('demo-key', strftime('%s', 'now') + 86400);
SQL
fi

cargo build --quiet
rp() { ./target/debug/resticpilot -c profiles/demo.yaml "$@"; }

rp validate
rp backup
sqlite3 "$demo/data/app.db" "UPDATE torrents SET completed = completed + 1 WHERE id % 100 = 0;"
rp backup
rp snapshots
# The restore drill: the latest snapshot restored into scratch space and checked.
rp verify demo

# Restore the latest snapshot with plain restic and check the database copy.
restore="$(mktemp -d)"
RESTIC_PASSWORD_FILE="$demo/restic-password" restic -r "$demo/repository" restore latest --target "$restore" >/dev/null
copy="$restore$demo/state/staging/demo/app.sqlite3"
echo "restored copy: integrity $(sqlite3 "$copy" 'PRAGMA integrity_check'), $(sqlite3 "$copy" 'SELECT count(*) FROM torrents') torrents"
rm -rf "$restore"
echo "demo done: repository $demo/repository, config profiles/demo.yaml"

# What to run next. profiles/demo.yaml finds ./demo by itself; another RESTICPILOT_DEMO_DIR
# must be exported for it.
env_prefix=""
if [[ "$(realpath "$demo")" != "$(realpath "$PWD/demo")" ]]; then
  env_prefix="RESTICPILOT_DEMO_DIR=$demo "
fi
cat <<EOF

Next, from $PWD:
  ${env_prefix}./target/debug/resticpilot -c profiles/demo.yaml status                 # the last runs
  ${env_prefix}./target/debug/resticpilot -c profiles/demo.yaml backup --dry-run       # what a run does
  ${env_prefix}./target/debug/resticpilot -c profiles/demo.yaml restore demo --target /tmp/demo-restore --database app
  ${env_prefix}./target/debug/resticpilot -c profiles/demo.yaml verify demo            # the restore drill
  ${env_prefix}./target/debug/resticpilot -c profiles/demo.yaml --help
EOF
