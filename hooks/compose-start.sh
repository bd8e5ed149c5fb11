#!/bin/sh
# Starts compose services again after a backup (hooks.after and hooks.on_failure); see
# compose-stop.sh. Starting a running service is a no-op, so it is safe in both hooks.
# Usage: compose-start.sh PROJECT_DIR SERVICE...
set -eu
dir=$1
shift
echo "starting $* in $dir (hook ${RESTICPILOT_HOOK:-?})"
exec docker compose --project-directory "$dir" start "$@"
