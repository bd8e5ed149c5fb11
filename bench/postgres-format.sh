#!/usr/bin/env bash
# PostgreSQL dump formats side by side for restic: plain SQL, custom format uncompressed (-Z0,
# resticpilot's default) and custom format with pg_dump's default compression. For each:
# pg_dump time and size, what restic adds (before its compression) for the first snapshot and
# for a second one after a change, the repository's size on disk after both (compressed), and
# the restore time into a new database.
#
#   bench/postgres-format.sh [ROWS] [local|scattered]   default 1500000 rows (about 350 MB), local
#
# Starts its own PostgreSQL server on a temporary directory (Debian's postgresql package) and
# removes it at the end. Not run by the tests or CI.
set -euo pipefail
rows="${1:-1500000}"
change="${2:-local}"
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/rp-pgbench-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg=()
if [[ $(id -u) == 0 ]]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$bin/initdb" -D "$work/data" -U postgres --auth-local=trust --no-sync >/dev/null
"${as_pg[@]}" "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w \
  -o "-k $work -p $port -c listen_addresses='' -c fsync=off" start >/dev/null
cleanup() { "${as_pg[@]}" "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
export PGHOST="$work" PGPORT="$port" PGUSER=postgres RESTIC_PASSWORD=bench
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }
added() { python3 -c 'import json,sys
for l in sys.stdin:
  m=json.loads(l)
  if m.get("message_type")=="summary": print("%.1f MiB" % (m["data_added"] / 2**20))'; }

sql -d postgres -c "CREATE DATABASE bench"
sql -d bench -c "CREATE TABLE items (id bigint PRIMARY KEY, n int, name text, payload text);
  INSERT INTO items SELECT g, g % 1000, 'item ' || g, repeat(md5(g::text), 5) FROM generate_series(1, $rows) g;"
size=$(sql -d bench -c "SELECT pg_size_pretty(pg_database_size('bench'))")
echo "database: $rows rows, $size on disk; $(pg_dump --version)"
declare -A dump_a
declare -A flags=([plain]="--format=plain" [custom-Z0]="--format=custom --compress=0" [custom-default]="--format=custom")
formats=(plain custom-Z0 custom-default)
for f in "${formats[@]}"; do
  t0=$(now); pg_dump ${flags[$f]} -f "$work/$f.a" bench; t1=$(now)
  dump_a[$f]=$(secs "$t0" "$t1")
done
# Change: ${change} (scattered: 1 % of the rows all over the table; or local: 1 % rows
# appended and 0.1 % updated in one range, as an application that mostly adds rows).
if [[ $change == scattered ]]; then
  sql -d bench -c "UPDATE items SET n = n + 1, payload = md5(payload) WHERE id % 100 = 37"
else
  sql -d bench -c "INSERT INTO items SELECT g, g % 1000, 'item ' || g, repeat(md5(g::text), 5) FROM generate_series($rows + 1, $rows + $rows / 100) g;
    UPDATE items SET n = n + 1 WHERE id BETWEEN 1000 AND 1000 + $rows / 1000"
fi
for f in "${formats[@]}"; do pg_dump ${flags[$f]} -f "$work/$f.b" bench; done
echo
echo "| format | pg_dump | dump size | restic adds (1st) | restic adds after the change ($change) | repository after both | restore |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for f in "${formats[@]}"; do
  repo="$work/repo-$f"; restic init -q -r "$repo" >/dev/null
  mkdir -p "$work/stage-$f"
  cp "$work/$f.a" "$work/stage-$f/dump"
  first=$(restic -r "$repo" backup --json "$work/stage-$f" | added)
  cp "$work/$f.b" "$work/stage-$f/dump"
  second=$(restic -r "$repo" backup --json "$work/stage-$f" | added)
  sql -d postgres -c "DROP DATABASE IF EXISTS r"; sql -d postgres -c "CREATE DATABASE r"
  t0=$(now)
  if [[ $f == plain ]]; then sql -d r -f "$work/$f.a" >/dev/null; else pg_restore -d r "$work/$f.a"; fi
  t1=$(now)
  echo "| $f | ${dump_a[$f]} s | $(du -m "$work/$f.a" | cut -f1) MiB | $first | $second | $(du -sm "$repo" | cut -f1) MiB | $(secs "$t0" "$t1") s |"
done
echo
echo "restic: $(restic version | head -1)"

# resticpilot against the bare tools on the same database, when RESTICPILOT names its binary:
# backup (pg_dump, read-back check, restic) against pg_dump + restic backup, and restore
# (read back, scratch database, rename) against createdb + pg_restore.
if [[ -n "${RESTICPILOT:-}" ]]; then
  rp=$(mktemp -d /tmp/rp-pgbench-rp-XXXXXX)
  trap 'cleanup; rm -rf "$rp"' EXIT
  echo bench > "$rp/restic-password"
  cat > "$rp/config.yaml" <<YAML
state_dir: $rp/state
repositories:
  r: { url: $rp/repo, password_file: $rp/restic-password, init: true }
profiles:
  p:
    repository: r
    host: bench
    databases:
      - { name: pg, type: postgresql, socket: $work, port: $port, user: postgres, databases: [bench] }
YAML
  restic init -q -r "$rp/bare-repo" >/dev/null
  mkdir -p "$rp/bare-stage"
  echo
  echo "| step | resticpilot | bare tools |"
  echo "| --- | --- | --- |"
  for round in 1 2; do
    t0=$(now); "$RESTICPILOT" -c "$rp/config.yaml" backup p >/dev/null 2>&1; t1=$(now)
    pg_dump --format=custom --compress=0 -f "$rp/bare-stage/bench.dump" bench
    restic -q -r "$rp/bare-repo" backup "$rp/bare-stage" >/dev/null; t2=$(now)
    echo "| backup $round (pg_dump + restic backup) | $(secs "$t0" "$t1") s | $(secs "$t1" "$t2") s |"
  done
  t0=$(now); "$RESTICPILOT" -c "$rp/config.yaml" restore p --database pg --into rp_restored >/dev/null 2>&1; t1=$(now)
  restic -q -r "$rp/bare-repo" restore latest --target "$rp/bare-restore" >/dev/null
  sql -d postgres -c "CREATE DATABASE bare_restored"
  pg_restore --single-transaction -d bare_restored "$rp/bare-restore$rp/bare-stage/bench.dump"; t2=$(now)
  echo "| restore into a new database | $(secs "$t0" "$t1") s | $(secs "$t1" "$t2") s |"
  echo
  echo "rows: resticpilot $(sql -d rp_restored -c 'SELECT count(*) FROM items'), bare $(sql -d bare_restored -c 'SELECT count(*) FROM items')"
fi
