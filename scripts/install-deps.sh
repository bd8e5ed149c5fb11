#!/usr/bin/env bash
# Installs the programs resticpilot drives (and its tests need) when they are missing:
# restic, sqlite3, the MariaDB client and server, xfsprogs (the reflink tests and the
# benchmarks make an XFS image), and the off-site tests' servers: rclone (REST), openssh
# (SFTP), moto from PyPI (S3) and aiosmtpd from PyPI (SMTP, the email notifications);
# prometheus-pushgateway (metrics.push_url). Debian/Ubuntu (apt); root or sudo.
#   scripts/install-deps.sh                everything the tests need
#   scripts/install-deps.sh --demo         only what the demo needs (restic, sqlite3)
#   scripts/install-deps.sh --e2e          what docker/e2e.sh needs besides Docker (debootstrap, and
#                                          openssl to hash the off-site server's password)
#   scripts/install-deps.sh --deploy       what deploy/check.sh needs: systemd (for systemd-analyze),
#                                          kubernetes-validate and check-jsonschema (PyPI); it uses
#                                          kubectl when installed (Debian has no recent one)
#   scripts/install-deps.sh --restic-trixie
#       fetches Debian trixie's restic package (0.18) with apt into a cache, unpacks its binary
#       (nothing is installed) and prints the binary's path: the suite runs against it too
set -euo pipefail

if [[ "${1:-}" == "--restic-trixie" ]]; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/resticpilot/restic-trixie"
  if [[ -x "$cache/bin/restic" ]]; then
    echo "$cache/bin/restic"
    exit 0
  fi
  apt_dir="$cache/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/etc" "$cache/bin"
  # A source list of its own, used only to download: the system's sources are not touched.
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    > "$apt_dir/etc/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt_dir/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
        -o "Dir::Cache::Archives=$apt_dir/archives" -o "APT::Sandbox::User=$(id -un)")
  apt-get "${opts[@]}" update -q >/dev/null
  (cd "$apt_dir" && rm -f restic_*.deb && apt-get "${opts[@]}" download restic >/dev/null)
  rm -rf "$cache/unpacked"
  dpkg -x "$apt_dir"/restic_*.deb "$cache/unpacked"
  install -m 0755 "$cache/unpacked/usr/bin/restic" "$cache/bin/restic"
  rm -rf "$cache/unpacked" "$apt_dir"/restic_*.deb
  echo "$cache/bin/restic"
  exit 0
fi

declare -A package_of=(
  [restic]=restic
  [sqlite3]=sqlite3
  [mariadb]=mariadb-client
  [mariadb-dump]=mariadb-client
  [mariadb-admin]=mariadb-client
  [mariadb-install-db]=mariadb-server
  [mariadbd]=mariadb-server
  [psql]=postgresql-client
  [pg_dump]=postgresql-client
  [pg_restore]=postgresql-client
  [pg_dumpall]=postgresql-client
  [pg_ctlcluster]=postgresql
  [debootstrap]=debootstrap
  [openssl]=openssl
  [mkfs.xfs]=xfsprogs
  [rclone]=rclone
  [sshd]=openssh-server
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [unshare]=util-linux
  [python3]=python3-pip
  [prometheus-pushgateway]=prometheus-pushgateway
  [systemd-analyze]=systemd
)
tools=(restic sqlite3 mariadb mariadb-dump mariadb-admin mariadb-install-db mariadbd
       psql pg_dump pg_restore pg_dumpall pg_ctlcluster mkfs.xfs
       rclone sshd ssh ssh-keygen unshare python3 prometheus-pushgateway)
with_pip=1
with_deploy_pip=0
if [[ "${1:-}" == "--demo" ]]; then
  tools=(restic sqlite3)
  with_pip=0
elif [[ "${1:-}" == "--deploy" ]]; then
  tools=(systemd-analyze python3)
  with_pip=0
  with_deploy_pip=1
elif [[ "${1:-}" == "--e2e" ]]; then
  tools=(debootstrap openssl)
  with_pip=0
fi

# deploy/check.sh's validators, from PyPI.
install_deploy_pip() {
  if command -v kubernetes-validate >/dev/null && command -v check-jsonschema >/dev/null; then
    return
  fi
  echo "installing: kubernetes-validate check-jsonschema (pip)" >&2
  python3 -m pip install -q 'kubernetes-validate>=1.30' 'check-jsonschema>=0.28' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'kubernetes-validate>=1.30' 'check-jsonschema>=0.28'
}

# The S3 server of the off-site tests: moto, from PyPI.
install_moto() {
  if python3 -c 'import moto.server, boto3, flask' >/dev/null 2>&1; then
    return
  fi
  echo "installing: moto[server] (pip)" >&2
  python3 -m pip install -q 'moto[server]>=5,<6' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'moto[server]>=5,<6'
}

# The SMTP server of the email notification tests: aiosmtpd, from PyPI.
install_aiosmtpd() {
  if python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    return
  fi
  echo "installing: aiosmtpd (pip)" >&2
  python3 -m pip install -q 'aiosmtpd>=1.4,<2' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'aiosmtpd>=1.4,<2'
}

missing=()
for tool in "${tools[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && ! [[ -x "/usr/sbin/$tool" ]]; then
    missing+=("${package_of[$tool]}")
  fi
done
if [[ $((with_pip + with_deploy_pip)) -gt 0 ]] && ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3-pip)
fi
if [[ ${#missing[@]} -eq 0 ]]; then
  if [[ $with_pip -eq 1 ]]; then install_moto; install_aiosmtpd; fi
  if [[ $with_deploy_pip -eq 1 ]]; then install_deploy_pip; fi
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
if [[ $with_pip -eq 1 ]]; then install_moto; install_aiosmtpd; fi
if [[ $with_deploy_pip -eq 1 ]]; then install_deploy_pip; fi
