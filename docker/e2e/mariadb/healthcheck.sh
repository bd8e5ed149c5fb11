#!/bin/sh
# Stand-in for the official image's healthcheck.sh: healthy when the server answers a query
# on its socket and InnoDB is up (what `--connect --innodb_initialized` checks there).
# The arguments are accepted and not needed.
innodb="$(mariadb --socket=/run/mysqld/mysqld.sock -uroot -N -e \
  "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE='InnoDB' AND SUPPORT IN ('YES','DEFAULT')")" || exit 1
[ "$innodb" = 1 ]
