#!/usr/bin/env bash
# End-to-end test of the image and the example compose stack on a real Docker engine, with no
# image registry needed:
#
#   1. base images: debootstrap + docker import (docker/e2e/bases.sh), cached by tag;
#   2. the binary, built with the host's cargo, and the image from docker/Dockerfile with
#      BINARY=prebuilt on the local base; its labels; then the image alone (docker run, no
#      init): tini as PID 1 reaping orphans, the HEALTHCHECK following RESTICPILOT_LISTEN and
#      the config's `listen:`, SIGTERM reaching the daemon;
#   3. the stack (docker/compose.yaml + compose.offsite.yaml: the profile backs up to a REST
#      server with basic auth in the stack's network) up with a schedule every 10 seconds; at
#      least two scheduled snapshots, on the off-site server; the backup container healthy
#      through its HEALTHCHECK, and stopped by SIGTERM with exit 0;
#   4. a manual `run --rm backup backup`, then the disaster: the application stopped, its
#      SQLite file deleted, a MariaDB table dropped; both restored from the off-site
#      repository with `run --rm backup restore ...`; the application started; every row back;
#   5. the maintenance window: the application stopped during the dumps and running again
#      afterwards, after a successful run, a failed dump, and a SIGTERM inside the window;
#   6. `down -v`, always.
#
# Exits non-zero on any failure. Needs root (debootstrap) on the first run, Docker with
# BuildKit (docker buildx, or a docker CLI that has it built in) and Compose (v2 or v1.29).
#   RESTICPILOT_E2E_RELEASE=1   build the binary with --release (default: the debug build)
#   RESTICPILOT_E2E_KEEP=1      leave the stack up on failure, for inspection
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
started=$SECONDS

say() { printf '[e2e %4ds] %s\n' "$((SECONDS - started))" "$*" >&2; }
fail() {
  say "FAIL: $*"
  exit 1
}
# wait_for SECONDS WHAT COMMAND...: retries COMMAND every 2 seconds until it succeeds.
wait_for() {
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || fail "$what: not after ${limit}s"
    sleep 2
  done
}

# --- tools -----------------------------------------------------------------------------------
docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info)"
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
else
  fail "neither 'docker compose' nor 'docker-compose' is installed"
fi
command -v python3 >/dev/null || fail "python3 is needed to read JSON"
command -v openssl >/dev/null || fail "openssl is needed to hash the off-site server's password"
# docker/Dockerfile's BINARY=prebuilt path needs BuildKit to skip the compile stages.
probe="$(mktemp -d)"
echo 'FROM scratch' >"$probe/Dockerfile"
builder=""
while read -r candidate; do
  if probe_image="$(DOCKER_BUILDKIT=1 "$candidate" build -q "$probe" 2>/dev/null)"; then
    docker image rm "$probe_image" >/dev/null 2>&1 || true # an empty, untagged image
    builder="$candidate"
    break
  fi
done < <(type -ap docker | awk '!seen[$0]++')
rm -rf "$probe"
[[ -n "$builder" ]] || fail "no docker CLI here builds with BuildKit: install docker buildx"
say "using ${compose_cmd[*]}, BuildKit through $builder"

# --- names, secrets, teardown ------------------------------------------------------------------
project="rpe2e-$$-$RANDOM"
image="resticpilot-e2e/resticpilot:$project"
secrets="$(mktemp -d /tmp/rp-e2e-secrets.XXXXXX)"
signal_container="$project-signal"
alone_container="$project-alone"
export COMPOSE_PROJECT_NAME="$project"
export RESTICPILOT_IMAGE="$image"
export RESTICPILOT_SECRETS="$secrets"
export BACKUP_SCHEDULE="*/10 * * * * *" # 6 fields, seconds first: every 10 seconds
export BACKUP_HOST="e2e-stack"
export TRACKER_CONTAINER="$project-tracker"
export DOCKER_GID
DOCKER_GID="$(stat -c %g /var/run/docker.sock)"
compose=("${compose_cmd[@]}" -f docker/compose.yaml -f docker/compose.maintenance.yaml
  -f docker/compose.offsite.yaml)
compose_restore=("${compose[@]}" -f docker/compose.restore.yaml)
e2e_config=(-v "$repo/docker/e2e:/etc/resticpilot-e2e:ro")

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((rc != 0)); then
    say "logs of the stack (last lines):"
    "${compose[@]}" logs --no-color --tail=40 >&2 2>&1 || true
    docker logs --tail=40 "$signal_container" >&2 2>&1 || true
    docker logs --tail=40 "$alone_container" >&2 2>&1 || true
    if [[ "${RESTICPILOT_E2E_KEEP:-}" == 1 ]]; then
      say "left up for inspection: COMPOSE_PROJECT_NAME=$project; secrets in $secrets"
      exit "$rc"
    fi
  fi
  docker rm -f "$signal_container" "$alone_container" >/dev/null 2>&1 || true
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || say "warning: down -v failed for $project"
  docker image rm "$image" >/dev/null 2>&1 || true
  rm -rf "$secrets"
  if ((rc == 0)); then say "PASSED in $((SECONDS - started))s"; else say "FAILED (exit $rc) after $((SECONDS - started))s"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for s in restic-password mariadb-root-password mariadb-password offsite-password; do
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$secrets/$s"
done
# The off-site server's htpasswd (apr1: what openssl makes; the README shows htpasswd -B).
printf 'backup:%s\n' "$(openssl passwd -apr1 -stdin <"$secrets/offsite-password")" >"$secrets/offsite-htpasswd"
export OFFSITE_REST_PASSWORD
OFFSITE_REST_PASSWORD="$(cat "$secrets/offsite-password")"
# The backup image runs as UID 1000: the secrets must be readable by it.
chown 1000:1000 "$secrets"/*
chmod 0400 "$secrets"/*

# --- 1-2: base images, binary, image -------------------------------------------------------------
say "base images (debootstrap on the first run, cached by tag after)"
bases="$(docker/e2e/bases.sh)"
runtime_base="$(sed -n 's/^runtime=//p' <<<"$bases")"
export MARIADB_IMAGE RCLONE_IMAGE
MARIADB_IMAGE="$(sed -n 's/^mariadb=//p' <<<"$bases")"
RCLONE_IMAGE="$(sed -n 's/^rclone=//p' <<<"$bases")"
[[ -n "$runtime_base" && -n "$MARIADB_IMAGE" && -n "$RCLONE_IMAGE" ]] || fail "bases.sh did not name the images"

profile_dir=debug
cargo_flags=(--locked)
if [[ "${RESTICPILOT_E2E_RELEASE:-}" == 1 ]]; then
  profile_dir=release
  cargo_flags+=(--release)
fi
say "cargo build ${cargo_flags[*]}"
cargo build --quiet "${cargo_flags[@]}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
say "image $image (BINARY=prebuilt on $runtime_base)"
DOCKER_BUILDKIT=1 "$builder" build --quiet -f docker/Dockerfile \
  --build-arg BINARY=prebuilt \
  --build-arg PREBUILT="target/$profile_dir/resticpilot" \
  --build-arg RUNTIME_IMAGE="$runtime_base" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  -t "$image" . >/dev/null
image_version="$(docker run --rm "$image" --version)" || fail "the image's entrypoint does not run"
[[ "$image_version" == *"(commit ${revision:0:12})" ]] ||
  fail "--version does not name the commit ${revision:0:12}: $image_version"
docker run --rm --entrypoint sh "$image" -c 'test -s /usr/share/bash-completion/completions/resticpilot &&
  test -s /usr/share/zsh/vendor-completions/_resticpilot && test -s /usr/local/share/man/man1/resticpilot.1' ||
  fail "the image lacks the shell completions or the manual page"
[[ "$(docker image inspect -f '{{.Config.User}}' "$image")" == "1000:1000" ]] ||
  fail "the image does not run as 1000:1000"
label() { docker image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$1\"}}" "$image"; }
[[ "$(label title)" == resticpilot && "$(label version)" == "$version" &&
  "$(label revision)" == "$revision" && "$(label licenses)" == "MIT OR Apache-2.0" &&
  "$(label source)" == https://* && -n "$(label description)" ]] ||
  fail "OCI labels: $(docker image inspect -f '{{json .Config.Labels}}' "$image")"
docker run --rm --entrypoint sh "$image" -c 'restic version && ssh -V' >"$secrets/versions.txt" 2>&1 ||
  { cat "$secrets/versions.txt" >&2; fail "restic or ssh missing in the image"; }
say "image size: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}');" \
  "$(head -n 1 "$secrets/versions.txt" | cut -d' ' -f1-2), $(tail -n 1 "$secrets/versions.txt" | cut -d, -f1)"

# --- 2b: the image alone, as `docker run` starts it (no --init) ------------------------------------
idle=(-v "$repo/docker/e2e:/etc/resticpilot-e2e:ro"
  -v "$secrets/restic-password:/run/secrets/restic-password:ro"
  -e RESTICPILOT_CONFIG=/etc/resticpilot-e2e/idle.yaml
  --health-interval=2s --health-start-period=2s --health-retries=1)
# logged CONTAINER [grep options] PATTERN: whether the container's log has it. (Not `docker logs
# | grep -q`: grep stops reading at the first match, and with pipefail the SIGPIPE of docker
# logs fails the test.)
logged() {
  local container="$1" log
  shift
  log="$(docker logs "$container" 2>&1)"
  grep -q "$@" <<<"$log"
}
health_of() { docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null; }
alone_healthy() { [[ "$(health_of "$alone_container")" == healthy ]]; }

say "image alone: RESTICPILOT_LISTEN=0.0.0.0:9911: tini, healthy, a reaped orphan, SIGTERM"
docker run -d --name "$alone_container" "${idle[@]}" -e RESTICPILOT_LISTEN=0.0.0.0:9911 \
  "$image" >/dev/null
wait_for 60 "the daemon healthy on port 9911 (HEALTHCHECK without --address)" alone_healthy
[[ "$(docker exec "$alone_container" cat /proc/1/comm)" == tini ]] || fail "PID 1 is not tini"
# An orphan (the shell exits before its child): re-parented to PID 1, which must reap it.
docker exec "$alone_container" sh -c 'sleep 1 & exit 0'
zombies() { docker exec "$alone_container" sh -c 'grep -l "^State:.*Z" /proc/[0-9]*/status 2>/dev/null' | wc -l; }
no_zombies() { (($(zombies) == 0)); }
sleep 2
wait_for 20 "no zombie process in the container (PID 1 reaps)" no_zombies
docker stop -t 30 "$alone_container" >/dev/null
[[ "$(docker inspect -f '{{.State.ExitCode}}' "$alone_container")" == 0 ]] ||
  fail "docker stop: the daemon exited $(docker inspect -f '{{.State.ExitCode}}' "$alone_container"), not 0 (SIGTERM not passed on?)"
logged "$alone_container" "received SIGTERM" || fail "the daemon did not log the SIGTERM"
docker rm -f "$alone_container" >/dev/null

say "image alone: \`listen: 0.0.0.0:9912\` in the config wins over RESTICPILOT_LISTEN"
{ echo "listen: 0.0.0.0:9912"; cat docker/e2e/idle.yaml; } >"$secrets/idle-listen.yaml"
chmod 0644 "$secrets/idle-listen.yaml"
docker run -d --name "$alone_container" "${idle[@]}" \
  -v "$secrets/idle-listen.yaml:/etc/resticpilot-e2e-listen.yaml:ro" \
  -e RESTICPILOT_CONFIG=/etc/resticpilot-e2e-listen.yaml "$image" >/dev/null
wait_for 60 "the daemon healthy on port 9912 (listen: in the config)" alone_healthy
logged "$alone_container" "serving /healthz and /metrics on http://0.0.0.0:9912" ||
  fail "the daemon does not serve on the config's listen address"
docker rm -f "$alone_container" >/dev/null

say "image alone: daemon --listen 0.0.0.0:9913 on the command line: unhealthy, and the log says why"
docker run -d --name "$alone_container" "${idle[@]}" "$image" daemon --listen 0.0.0.0:9913 >/dev/null
alone_unhealthy() { [[ "$(health_of "$alone_container")" == unhealthy ]]; }
wait_for 60 "the HEALTHCHECK to notice the daemon is not on 9898" alone_unhealthy
logged "$alone_container" -- "--listen 0.0.0.0:9913: .resticpilot health. without --address" ||
  fail "no warning that the HEALTHCHECK cannot follow --listen"
docker rm -f "$alone_container" >/dev/null

# --- helpers on the stack ------------------------------------------------------------------------
container_of() { "${compose[@]}" ps -q "$1"; }
running() { [[ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" == true ]]; }
stopped() { ! running "$1"; }
# The stack profile's snapshots as "ID TIME" lines, oldest first.
snapshots() {
  "${compose[@]}" run --rm --no-deps -T backup snapshots stack --json 2>/dev/null |
    python3 -c 'import json, sys
text = sys.stdin.read()
for s in (json.loads(text)["snapshots"] if text.strip() else []): print(s["id"], s["time"])'
}
at_least_snapshots() { (($(snapshots | wc -l) >= $1)); }
healthy() { [[ "$(docker inspect -f '{{.State.Health.Status}}' "$(container_of backup)")" == healthy ]]; }
sqlite_query() { # through the tracker's image, as the application's user
  "${compose[@]}" run --rm --no-deps -T -u 1000:1000 --entrypoint sqlite3 tracker \
    -readonly /data/tracker/tracker.db "$1" 2>/dev/null
}
maria_query() {
  # shellcheck disable=SC2016 # expanded by the container's shell
  "${compose[@]}" exec -T mariadb sh -c \
    'MYSQL_PWD="$(cat /run/secrets/mariadb-root-password)" exec mariadb -h 127.0.0.1 -uroot -N -B -e "$1"' \
    sh "$1"
}
# tracker_events SINCE: the tracker container's stop/start events since SINCE, one a line.
tracker_events() {
  docker events --since "$1" --until "$(date +%s.%N)" --filter "container=$TRACKER_CONTAINER" \
    --filter event=stop --filter event=start --format '{{.Action}}'
}

# --- 3: the stack on a schedule ------------------------------------------------------------------
say "compose up (schedule: $BACKUP_SCHEDULE)"
"${compose[@]}" up -d --no-build >/dev/null 2>&1 || {
  "${compose[@]}" up -d --no-build
  fail "compose up"
}
running "$TRACKER_CONTAINER" || fail "the tracker is not running"
say "waiting for two scheduled snapshots"
wait_for 150 "two scheduled snapshots of profile stack" at_least_snapshots 2
say "scheduled snapshots: $(snapshots | wc -l)"
# They are on the off-site server (its snapshot files), and the local volume has none.
offsite_snapshots() { "${compose[@]}" exec -T offsite sh -c 'ls /data/stack/snapshots | wc -l'; }
(($(offsite_snapshots) >= 2)) || fail "the off-site server holds $(offsite_snapshots) snapshot files"
if "${compose[@]}" exec -T backup sh -c 'test -e /repository/config'; then
  fail "a repository was created on the local volume: the profile did not go off-site"
fi
say "waiting for the backup container's HEALTHCHECK"
wait_for 120 "the backup container healthy (HEALTHCHECK: resticpilot health)" healthy
say "backup container healthy"

# --- 4: manual backup, disaster, restore ---------------------------------------------------------
backup_container="$(container_of backup)"
"${compose[@]}" stop backup >/dev/null 2>&1 # no scheduled run of a damaged database from here on
[[ "$(docker inspect -f '{{.State.ExitCode}}' "$backup_container")" == 0 ]] ||
  fail "compose stop: the daemon exited $(docker inspect -f '{{.State.ExitCode}}' "$backup_container") (expected 0 after SIGTERM through tini)"
logged "$backup_container" "received SIGTERM" ||
  fail "compose stop: the daemon did not log the SIGTERM"
"${compose[@]}" stop tracker >/dev/null 2>&1
stopped "$TRACKER_CONTAINER" || fail "the tracker did not stop"
say "manual backup: run --rm backup backup stack"
"${compose[@]}" run --rm --no-deps -T backup backup stack >"$secrets/manual.log" 2>&1 ||
  { cat "$secrets/manual.log" >&2; fail "the manual backup failed"; }
snapshot="$(snapshots | tail -n 1 | cut -d' ' -f1)"
[[ -n "$snapshot" ]] || fail "no snapshot after the manual backup"
grep -q "$(cut -c1-8 <<<"$snapshot")" "$secrets/manual.log" ||
  fail "the manual backup's log does not name the latest snapshot ${snapshot:0:8}"
sqlite_before="$(sqlite_query 'SELECT count(*) || " " || max(id) FROM announces')"
maria_before="$(maria_query 'SELECT count(*) FROM torrust_tracker.torrents')"
[[ "${sqlite_before%% *}" -gt 0 && "$maria_before" -eq 1000 ]] ||
  fail "unexpected data before the disaster: sqlite '$sqlite_before', mariadb '$maria_before'"
say "snapshot ${snapshot:0:8}: sqlite rows/max id $sqlite_before, mariadb torrents $maria_before"

say "disaster: SQLite file deleted, MariaDB table dropped"
"${compose[@]}" run --rm --no-deps -T --entrypoint rm tracker -f /data/tracker/tracker.db \
  /data/tracker/tracker.db-wal /data/tracker/tracker.db-shm >/dev/null 2>&1
maria_query 'DROP TABLE torrust_tracker.torrents'
[[ -z "$(sqlite_query 'SELECT 1' || true)" ]] || fail "the SQLite file is still there"
[[ "$(maria_query "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='torrust_tracker' AND TABLE_NAME='torrents'")" == 0 ]] ||
  fail "the table was not dropped"

say "restore: run --rm backup restore stack --database tracker (read-write mount)"
"${compose_restore[@]}" run --rm --no-deps -T backup restore stack --snapshot "$snapshot" \
  --database tracker >"$secrets/restore-sqlite.log" 2>&1 ||
  { cat "$secrets/restore-sqlite.log" >&2; fail "the SQLite restore failed"; }
say "restore: run --rm backup restore stack --database main --force"
"${compose[@]}" run --rm --no-deps -T backup restore stack --snapshot "$snapshot" \
  --database main --force >"$secrets/restore-mysql.log" 2>&1 ||
  { cat "$secrets/restore-mysql.log" >&2; fail "the MariaDB restore failed"; }

[[ "$(sqlite_query 'PRAGMA integrity_check')" == ok ]] || fail "the restored SQLite file fails integrity_check"
sqlite_after="$(sqlite_query 'SELECT count(*) || " " || max(id) FROM announces')"
[[ "$sqlite_after" == "$sqlite_before" ]] || fail "SQLite rows: '$sqlite_after' after the restore, '$sqlite_before' before"
maria_after="$(maria_query 'SELECT count(*) FROM torrust_tracker.torrents')"
[[ "$maria_after" == "$maria_before" ]] || fail "MariaDB torrents: $maria_after after the restore, $maria_before before"
"${compose[@]}" start tracker >/dev/null 2>&1
wait_for 30 "the tracker running again" running "$TRACKER_CONTAINER"
more_rows() { (($(sqlite_query 'SELECT count(*) FROM announces') > ${sqlite_before%% *})); }
wait_for 30 "the tracker writing into the restored database" more_rows
max_id="${sqlite_before##* }"
[[ "$(sqlite_query "SELECT count(*) FROM announces WHERE id <= $max_id")" == "${sqlite_before%% *}" ]] ||
  fail "rows of the snapshot missing once the tracker writes again"
say "restored: sqlite $sqlite_after, mariadb torrents $maria_after; the tracker writes on"

# --- 5: maintenance window -------------------------------------------------------------------------
say "maintenance window without the socket, then without the socket's group"
plain=("${compose_cmd[@]}" -f docker/compose.yaml) # no compose.maintenance.yaml
since="$(date +%s.%N)"
if "${plain[@]}" run --rm --no-deps -T backup backup stack-offline >"$secrets/no-socket.log" 2>&1; then
  fail "a maintenance window without the Docker socket succeeded"
fi
grep -q "the Docker socket /var/run/docker.sock does not exist" "$secrets/no-socket.log" ||
  { cat "$secrets/no-socket.log" >&2; fail "no clear error when the socket is not mounted"; }
if "${plain[@]}" run --rm --no-deps -T -v /var/run/docker.sock:/var/run/docker.sock backup \
  backup stack-offline >"$secrets/no-group.log" 2>&1; then
  fail "a maintenance window without the socket's group succeeded"
fi
grep -q "no permission to use the Docker socket /var/run/docker.sock" "$secrets/no-group.log" ||
  { cat "$secrets/no-group.log" >&2; fail "no clear error when the socket is not accessible"; }
[[ -z "$(tracker_events "$since")" ]] || fail "the tracker was touched by a run that could not reach Docker"
running "$TRACKER_CONTAINER" || fail "the tracker is not running"

say "maintenance window: run --rm backup backup stack-offline"
since="$(date +%s.%N)"
"${compose[@]}" run --rm --no-deps -T backup backup stack-offline >"$secrets/window.log" 2>&1 ||
  { cat "$secrets/window.log" >&2; fail "the maintenance-window backup failed"; }
[[ "$(tracker_events "$since" | tr '\n' ' ')" == "stop start " ]] ||
  fail "tracker events during the window: '$(tracker_events "$since" | tr '\n' ' ')', expected 'stop start'"
running "$TRACKER_CONTAINER" || fail "the tracker is not running after the window"
# In the log: stopped, then dumped, then started.
order="$(grep -oE 'stopped container|dumped tracker|started container' "$secrets/window.log" | tr '\n' ',')"
[[ "$order" == "stopped container,dumped tracker,started container," ]] ||
  { cat "$secrets/window.log" >&2; fail "window order in the log: $order"; }
say "window: tracker stopped for the dump and started again"

say "maintenance window with a failing dump"
since="$(date +%s.%N)"
if "${compose[@]}" run --rm --no-deps -T "${e2e_config[@]}" backup \
  -c /etc/resticpilot-e2e/maintenance.yaml backup window-fails >"$secrets/window-fails.log" 2>&1; then
  fail "the run with a failing dump succeeded"
fi
grep -q "dump of database missing failed" "$secrets/window-fails.log" ||
  { cat "$secrets/window-fails.log" >&2; fail "the failing run does not say which dump failed"; }
[[ "$(tracker_events "$since" | tr '\n' ' ')" == "stop start " ]] ||
  fail "tracker events around the failed dump: '$(tracker_events "$since" | tr '\n' ' ')'"
running "$TRACKER_CONTAINER" || fail "the tracker is not running after the failed dump"
say "window: tracker running again after the failed dump"

say "maintenance window interrupted by SIGTERM"
since="$(date +%s.%N)"
"${compose[@]}" run -d --no-deps --name "$signal_container" "${e2e_config[@]}" backup \
  -c /etc/resticpilot-e2e/maintenance.yaml backup window-signal >/dev/null 2>&1
wait_for 60 "the tracker stopped by the window" stopped "$TRACKER_CONTAINER"
sleep 2 # inside the (slow) dump now
docker kill --signal TERM "$signal_container" >/dev/null
code="$(timeout 90 docker wait "$signal_container")" || fail "the signalled run did not end within 90s"
[[ "$code" != 0 ]] || fail "the signalled run exited 0"
# Through tini to resticpilot, which gave the dump its grace period (3s) before stopping it.
logged "$signal_container" "received SIGTERM: .* 3s to finish" ||
  fail "the signalled run did not log the SIGTERM and its grace period"
wait_for 30 "the tracker running again after SIGTERM (run exited $code)" running "$TRACKER_CONTAINER"
[[ "$(tracker_events "$since" | tr '\n' ' ')" == "stop start " ]] ||
  fail "tracker events around the signal: '$(tracker_events "$since" | tr '\n' ' ')'"
say "window: tracker running again after SIGTERM (the run exited $code)"

# --- 6: teardown in cleanup ------------------------------------------------------------------------
