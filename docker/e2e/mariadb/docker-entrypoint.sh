#!/bin/bash
# Stand-in for the official image's entrypoint (the subset docker/compose.yaml uses):
# on an empty datadir, create the system tables, root@'%' with MARIADB_ROOT_PASSWORD(_FILE),
# MARIADB_DATABASE, MARIADB_USER with MARIADB_PASSWORD(_FILE) and all privileges on that
# database, then run /docker-entrypoint-initdb.d/*.sql in it. root@localhost takes the
# password or unix-socket authentication (which healthcheck.sh uses), as in the official
# image. Then the server runs as PID 1.
set -euo pipefail

secret() { # secret NAME: $NAME, or the contents of the file $NAME_FILE names
  local file_var="${1}_FILE"
  if [[ -n "${!file_var:-}" ]]; then cat "${!file_var}"; else echo -n "${!1:-}"; fi
}
sql_string() { printf "'%s'" "$(printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g")"; }

if [[ "${1:-}" == mariadbd && ! -d /var/lib/mysql/mysql ]]; then
  root_password="$(secret MARIADB_ROOT_PASSWORD)"
  [[ -n "$root_password" ]] || { echo "MARIADB_ROOT_PASSWORD(_FILE) is required" >&2; exit 1; }
  echo "entrypoint: initialising the database directory" >&2
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
  mariadbd --user=mysql --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  for _ in $(seq 60); do
    mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  client=(mariadb --socket=/run/mysqld/init.sock -uroot)
  {
    echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD($(sql_string "$root_password")) OR unix_socket;"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY $(sql_string "$root_password");"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [[ -n "${MARIADB_DATABASE:-}" ]]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    fi
    if [[ -n "${MARIADB_USER:-}" ]]; then
      echo "CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY $(sql_string "$(secret MARIADB_PASSWORD)");"
      [[ -n "${MARIADB_DATABASE:-}" ]] && echo "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';"
    fi
  } | "${client[@]}"
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [[ -e "$f" ]] || continue
    echo "entrypoint: running $f" >&2
    "${client[@]}" ${MARIADB_DATABASE:+"$MARIADB_DATABASE"} <"$f"
  done
  mariadb-admin --socket=/run/mysqld/init.sock shutdown
  wait "$pid" || true
  echo "entrypoint: initialised" >&2
fi

if [[ "${1:-}" == mariadbd ]]; then
  shift
  exec mariadbd --user=mysql --bind-address=0.0.0.0 --socket=/run/mysqld/mysqld.sock "$@"
fi
exec "$@"
