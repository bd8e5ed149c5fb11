#!/usr/bin/env bash
# Kubernetes CronJob semantics emulated on the real Docker engine with the real image: each run
# is a fresh container (`docker run --rm`) with the pod's fixed hostname, a read-only root
# filesystem and no state volume (state_dir on a tmpfs, gone with the container), all dropped
# capabilities, as the chart's CronJobs run. Three hosts back up to one REST repository
# (rclone serve restic, in its own container) at once; one is killed (SIGKILL) mid-backup and
# its next run, a fresh container with the same hostname, removes its stale lock and applies its
# retention; the retention stays per host; the maintenance job (`prune --check`) runs while the
# hosts back up, and the lock waits end without a failure; restic check is clean at the end.
#
#   docker/fleet.sh              builds the image as docker/e2e.sh does (bases cached by tag)
#   RESTICPILOT_FLEET_IMAGE=IMG docker/fleet.sh    uses an image already built (docker/e2e.sh
#                                                  passes its own: no second build)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
started=$SECONDS
say() { printf '[fleet %4ds] %s\n' "$((SECONDS - started))" "$*" >&2; }
fail() {
  say "FAIL: $*"
  exit 1
}

docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info)"
bases="$(docker/e2e/bases.sh)"
rclone_image="$(sed -n 's/^rclone=//p' <<<"$bases")"
runtime_base="$(sed -n 's/^runtime=//p' <<<"$bases")"
[[ -n "$rclone_image" && -n "$runtime_base" ]] || fail "bases.sh did not name the images"
project="rpfleet-$$-$RANDOM"
image="${RESTICPILOT_FLEET_IMAGE:-}"
own_image=0
if [[ -z "$image" ]]; then
  image="resticpilot-e2e/resticpilot:$project"
  own_image=1
  say "cargo build; image $image (BINARY=prebuilt on $runtime_base)"
  cargo build --quiet --locked
  # The docker CLI that builds with BuildKit (BINARY=prebuilt skips the compile stages with it).
  builder=""
  probe="$(mktemp -d)"
  echo 'FROM scratch' >"$probe/Dockerfile"
  for candidate in $(type -ap docker | awk '!seen[$0]++'); do
    if probe_image="$(DOCKER_BUILDKIT=1 "$candidate" build -q "$probe" 2>/dev/null)"; then
      docker image rm "$probe_image" >/dev/null 2>&1 || true
      builder=$candidate
      break
    fi
  done
  rm -rf "$probe"
  [[ -n "$builder" ]] || fail "no docker CLI here builds with BuildKit: install docker buildx"
  DOCKER_BUILDKIT=1 "$builder" build --quiet -f docker/Dockerfile --build-arg BINARY=prebuilt \
    --build-arg PREBUILT=target/debug/resticpilot --build-arg RUNTIME_IMAGE="$runtime_base" \
    -t "$image" . >/dev/null
fi
work="$(mktemp -d /tmp/rp-fleet.XXXXXX)"
net="$project"
server="$project-rest"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((rc != 0)); then
    for f in "$work"/logs/*; do [[ -f "$f" ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  fi
  docker ps -aq --filter "label=resticpilot-fleet=$project" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker rm -f "$server" >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  ((own_image == 0)) || docker image rm "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
  if ((rc == 0)); then say "PASSED in $((SECONDS - started))s"; else say "FAILED (exit $rc) after $((SECONDS - started))s"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/repo" "$work/logs" "$work/secrets"
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/secrets/restic-password"
chown -R 1000:1000 "$work/secrets" "$work/repo"
chmod 0400 "$work/secrets/restic-password"
# Each host's data: 150 MB of random bytes (a backup that lasts long enough to be killed) and
# a small file changed every run.
for h in 1 2 3; do
  mkdir -p "$work/data$h"
  head -c 150000000 /dev/urandom >"$work/data$h/big.bin"
done
cat >"$work/config.yaml" <<'YAML'
state_dir: /var/lib/resticpilot
repositories:
  fleet:
    url: rest:http://rest:8000/
    password_file: /run/secrets/restic-password
    init: true
profiles:
  app:
    repository: fleet
    host: ${FLEET_HOST}
    paths: [/data]
    retention: { keep_last: 2, prune: false }
    lock_wait: 5m
YAML
chmod 0644 "$work/config.yaml"

docker network create "$net" >/dev/null
docker run -d --name "$server" --network "$net" --network-alias rest -u 1000:1000 \
  -v "$work/repo:/data" "$rclone_image" serve restic /data --addr :8000 >/dev/null
# run_job NAME HOSTNAME ARGS...: one CronJob run: a fresh container, read-only root, no state.
run_job() {
  local name=$1 host=$2
  shift 2
  docker run --rm --name "$project-$name" --label "resticpilot-fleet=$project" --network "$net" \
    --hostname "$host" --read-only --tmpfs /var/lib/resticpilot:uid=1000,gid=1000,mode=0700 \
    --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
    -e FLEET_HOST="$host" -e RESTICPILOT_CONFIG=/etc/resticpilot/config.yaml \
    -v "$work/config.yaml:/etc/resticpilot/config.yaml:ro" \
    -v "$work/secrets/restic-password:/run/secrets/restic-password:ro" \
    -v "$work/data${host##*-h}:/data:ro" \
    "$image" "$@" --log-format json >"$work/logs/$name.log" 2>&1
}
snapshots_of() { # HOST: how many snapshots the repository has of it
  docker run --rm --network "$net" --entrypoint restic -e RESTIC_PASSWORD_FILE=/run/secrets/p \
    -v "$work/secrets/restic-password:/run/secrets/p:ro" "$image" -r rest:http://rest:8000/ \
    snapshots --json --host "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

say "round 0: host 1 alone creates the repository"
run_job r0-h1 fleet-h1 backup app || fail "first backup of fleet-h1"
for round in 1 2; do
  say "round $round: three hosts at once, each a fresh container"
  t0=$SECONDS
  pids=()
  for h in 1 2 3; do
    echo "round $round $RANDOM" >"$work/data$h/changed.txt"
    run_job "r$round-h$h" "fleet-h$h" backup app &
    pids+=($!)
  done
  for i in 0 1 2; do wait "${pids[$i]}" || fail "round $round: fleet-h$((i + 1)) failed"; done
  say "round $round: 3/3 succeeded in $((SECONDS - t0))s"
done

say "round 3: fleet-h2 killed (SIGKILL) while its backup holds a lock"
echo "round 3" >"$work/data2/changed.txt"
head -c 150000000 /dev/urandom >"$work/data2/big2.bin" # new data: a longer backup
run_job r3-h2 fleet-h2 backup app &
killed=$!
has_lock() { compgen -G "$work/repo/locks/*" >/dev/null; }
packs() { find "$work/repo/data" -type f | wc -l; }
# Mid-backup: a lock held and new packs arriving (the short commands before the backup take
# locks too; killing one of those would leave nothing to test).
packs_before=$(packs)
deadline=$((SECONDS + 120))
until has_lock && (($(packs) > packs_before + 1)); do
  ((SECONDS < deadline)) || fail "fleet-h2's backup never started uploading under a lock"
  sleep 0.2
done
docker kill -s KILL "$project-r3-h2" >/dev/null
wait "$killed" && fail "the killed run exited 0"
has_lock || fail "the killed run left no lock behind (nothing to test)"
say "killed; left $(ls "$work/repo/locks" | wc -l) lock(s)"

say "round 4: the next run of fleet-h2 (fresh container, same hostname) and the maintenance job, with hosts 1 and 3, at once"
t0=$SECONDS
pids=()
for h in 1 2 3; do
  echo "round 4 $RANDOM" >"$work/data$h/changed.txt"
  run_job "r4-h$h" "fleet-h$h" backup app &
  pids+=($!)
done
run_job r4-maintenance fleet-maintenance prune fleet --check &
maint=$!
for i in 0 1 2; do wait "${pids[$i]}" || fail "round 4: fleet-h$((i + 1)) failed"; done
wait "$maint" || fail "round 4: the maintenance job failed"
say "round 4: 4/4 succeeded in $((SECONDS - t0))s"
grep -q "stale" "$work/logs/r4-h2.log" || fail "fleet-h2's next run did not report removing a stale lock"
# Only fleet-h2 (same hostname, process gone) could remove the killed run's lock before 30
# minutes: no other run may report having removed a lock of fleet-h2 (a lock released by its
# owner between two listings was once reported so).
for other in r4-h1 r4-h3 r4-maintenance; do
  if grep -q 'removed a stale [a-z]* lock [0-9a-f]* of host fleet-h2' "$work/logs/$other.log"; then
    fail "$other reports removing a lock of fleet-h2, which restic could not remove from there"
  fi
done
# What each run of round 4 said about locks (JSON logs: the message field).
for f in "$work"/logs/r4-*.log; do
  python3 - "$f" <<'PY' >&2
import json, sys
name = sys.argv[1].rsplit("/", 1)[1][:-4]
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line).get("fields", {}).get("message", "")
    except ValueError:
        continue
    if "lock" in msg:
        print(f"  {name}: {msg[:200]}")
PY
done
if compgen -G "$work/repo/locks/*" >/dev/null; then fail "locks left after round 4: $(ls "$work/repo/locks")"; fi

for h in 1 2 3; do
  n=$(snapshots_of "fleet-h$h")
  [[ "$n" == 2 ]] || fail "fleet-h$h has $n snapshots, expected 2 (keep_last 2, per host)"
done
say "retention per host: 2/2/2 snapshots (keep_last 2 each), after 4-5 runs each"
docker run --rm --network "$net" --entrypoint restic -e RESTIC_PASSWORD_FILE=/run/secrets/p \
  -v "$work/secrets/restic-password:/run/secrets/p:ro" "$image" -r rest:http://rest:8000/ \
  check >"$work/logs/check.log" 2>&1 || fail "restic check"
say "restic check: no errors"
