#!/usr/bin/env bash
# Builds the local base images the end-to-end test needs, for machines with a Docker engine
# but no image registry: debootstrap a Debian trixie minimal root filesystem with the
# packages each image needs and `docker import` it. Each image is tagged with a hash of what
# goes into it, so a second run finds it and builds nothing.
#
#   docker/e2e/bases.sh     prints "runtime=TAG", "mariadb=TAG" and "rclone=TAG" once all exist
#
# The runtime base holds what docker/Dockerfile's runtime stage installs, so that stage's
# install step finds everything present and needs no network. The services base holds the
# stack's other servers: MariaDB, with a small entrypoint in docker/e2e/mariadb/ (a stand-in
# for the official image's), and rclone, the off-site REST server of
# docker/compose.offsite.yaml, with rclone as its entrypoint as the official rclone/rclone
# image has. The two bases are debootstrapped side by side (dpkg's disk writes, not the
# downloads, take most of the time).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=trixie
recipe=1 # bump when the way a base is made changes

runtime_packages="restic,sqlite3,mariadb-client,postgresql-client,openssh-client,tini,ca-certificates,tzdata"
services_packages="mariadb-server,mariadb-client,tzdata,rclone,ca-certificates"


log() { echo "bases: $*" >&2; }

# tag_for NAME PACKAGES: a tag that changes when anything that goes into the image does.
tag_for() {
  local key
  key="$(printf '%s\n' "$recipe" "$suite" "$mirror" "$2" | sha256sum | cut -c1-12)"
  echo "resticpilot-e2e/base-$1:$key"
}

# build NAME PACKAGES: debootstrap, trim like the -slim images, import. No-op when cached.
build() {
  local name="$1" packages="$2" tag root started
  tag="$(tag_for "$name" "$packages")"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag cached"
    echo "$tag"
    return
  fi
  command -v debootstrap >/dev/null || { log "error: debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
  [[ $(id -u) -eq 0 ]] || { log "error: debootstrap needs root"; exit 1; }
  started=$SECONDS
  root="$(mktemp -d /tmp/rp-e2e-rootfs.XXXXXX)"
  # Cleaned when the function returns; a failed debootstrap leaves mounts inside it.
  trap 'umount -R "'"$root"'/proc" 2>/dev/null || true; rm -rf "'"$root"'"' RETURN
  log "debootstrap $suite ($packages) for $tag"
  # One cache per base: two debootstraps side by side must not write the same file.
  mkdir -p "/var/cache/resticpilot-e2e/debs/$name"
  if ! debootstrap --variant=minbase --include="$packages" \
    --cache-dir="/var/cache/resticpilot-e2e/debs/$name" \
    "$suite" "$root" "$mirror" >"$root.log" 2>&1; then
    tail -n 30 "$root.log" >&2
    tail -n 30 "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    log "error: debootstrap failed (log: $root.log)"
    umount -R "$root/proc" 2>/dev/null || true
    rm -rf "$root"
    exit 1
  fi
  rm -f "$root.log"
  # What debian:*-slim leaves out: documentation, man pages, apt lists and caches.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"
  tar --numeric-owner -C "$root" -c . |
    docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$tag" >/dev/null
  log "built $tag in $((SECONDS - started))s"
  echo "$tag"
}

built="$(mktemp -d /tmp/rp-e2e-bases.XXXXXX)"
trap 'rm -rf "$built"' EXIT
build runtime "$runtime_packages" >"$built/runtime" &
runtime_pid=$!
build services "$services_packages" >"$built/services" &
services_pid=$!
wait "$runtime_pid" || { wait "$services_pid" || true; log "error: the runtime base failed"; exit 1; }
wait "$services_pid" || { log "error: the services base failed"; exit 1; }
runtime="$(cat "$built/runtime")"
services_base="$(cat "$built/services")"

# The database image: the base plus an entrypoint that speaks the official image's
# environment (MARIADB_*), init directory and healthcheck.sh. Cached by Docker's layer cache.
mariadb_tag="resticpilot-e2e/mariadb:${services_base##*:}-$(cat "$here"/mariadb/* | sha256sum | cut -c1-8)"
if ! docker image inspect "$mariadb_tag" >/dev/null 2>&1; then
  docker build -q --build-arg BASE="$services_base" -t "$mariadb_tag" "$here/mariadb" >/dev/null
  log "built $mariadb_tag"
fi

# The off-site server: rclone as the entrypoint, like the official image.
rclone_tag="resticpilot-e2e/rclone:${services_base##*:}"
if ! docker image inspect "$rclone_tag" >/dev/null 2>&1; then
  printf 'FROM %s\nENTRYPOINT ["rclone"]\nCMD ["--help"]\n' "$services_base" |
    docker build -q -t "$rclone_tag" - >/dev/null
  log "built $rclone_tag"
fi

echo "runtime=$runtime"
echo "mariadb=$mariadb_tag"
echo "rclone=$rclone_tag"
