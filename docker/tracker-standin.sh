#!/bin/sh
# The example stack's application: a stand-in for the Torrust tracker that records an
# "announce" in a WAL-mode SQLite database five times a second, through one connection it
# keeps open (as the tracker does). Like the tracker it keeps its files as UID 1000
# (APP_UID), the user the backup image runs as, so a restore can put the database back in
# place. Started as root only to hand the data directory to that user.
set -eu
db="${TRACKER_DB:-/data/tracker/tracker.db}"
uid="${APP_UID:-1000}"

if [ "$(id -u)" = 0 ]; then
  chown "$uid:$uid" "$(dirname "$db")"
  exec setpriv --reuid="$uid" --regid="$uid" --clear-groups -- /bin/sh "$0" "$@"
fi

statements() {
  echo "PRAGMA journal_mode=WAL;"
  echo "CREATE TABLE IF NOT EXISTS announces (id INTEGER PRIMARY KEY, info_hash TEXT NOT NULL, at INTEGER NOT NULL);"
  while :; do
    echo "INSERT INTO announces (info_hash, at) VALUES (hex(randomblob(20)), unixepoch());"
    sleep 0.2
  done
}
echo "tracker: writing announces to $db as uid $(id -u)"
statements | sqlite3 -bail -cmd '.timeout 10000' "$db" >/dev/null &
writer=$!
trap 'echo "tracker: stopping"; kill "$writer" 2>/dev/null; exit 0' TERM INT
wait "$writer"
