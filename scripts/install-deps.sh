#!/usr/bin/env bash
# Installs the programs resticpilot drives (and its tests need) when they are missing:
# restic, sqlite3, the MariaDB client and server, and xfsprogs (the reflink tests and the
# benchmarks make an XFS image). Debian/Ubuntu (apt); root or sudo.
#   scripts/install-deps.sh            everything the tests need
#   scripts/install-deps.sh --demo     only what the demo needs (restic, sqlite3)
#   scripts/install-deps.sh --e2e      what docker/e2e.sh needs besides Docker (debootstrap, and
#                                      openssl to hash the off-site server's password)
set -euo pipefail

declare -A package_of=(
  [restic]=restic
  [sqlite3]=sqlite3
  [mariadb]=mariadb-client
  [mariadb-dump]=mariadb-client
  [mariadb-admin]=mariadb-client
  [mariadb-install-db]=mariadb-server
  [mariadbd]=mariadb-server
  [debootstrap]=debootstrap
  [openssl]=openssl
  [mkfs.xfs]=xfsprogs
)
tools=(restic sqlite3 mariadb mariadb-dump mariadb-admin mariadb-install-db mariadbd mkfs.xfs)
if [[ "${1:-}" == "--demo" ]]; then
  tools=(restic sqlite3)
elif [[ "${1:-}" == "--e2e" ]]; then
  tools=(debootstrap openssl)
fi

missing=()
for tool in "${tools[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && ! [[ -x "/usr/sbin/$tool" ]]; then
    missing+=("${package_of[$tool]}")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "installing: ${packages[*]}" >&2

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing ${packages[*]} and this is not a Debian-like system: install them yourself" >&2
  exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "error: missing ${packages[*]}; run as root or install them: apt-get install ${packages[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >/dev/null
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
# The server package may start a system MariaDB; the tests start their own on a temporary datadir.
