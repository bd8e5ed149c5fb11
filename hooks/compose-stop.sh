#!/bin/sh
# Stops compose services before the dumps (hooks.before), for databases that must not be
# copied while written. Pair it with compose-start.sh in BOTH hooks.after and
# hooks.on_failure, so the services come back whether the run succeeds or fails:
#
#   hooks:
#     before:     ["/etc/resticpilot/hooks/compose-stop.sh /srv/stack tracker"]
#     after:      ["/etc/resticpilot/hooks/compose-start.sh /srv/stack tracker"]
#     on_failure: ["/etc/resticpilot/hooks/compose-start.sh /srv/stack tracker"]
#
# Usage: compose-stop.sh PROJECT_DIR SERVICE...   (needs the docker CLI with compose)
set -eu
dir=$1
shift
echo "stopping $* in $dir for profile ${RESTICPILOT_PROFILE:-?}"
exec docker compose --project-directory "$dir" stop --timeout 60 "$@"
