#!/bin/sh
# Posts a failed run to a webhook (hooks.on_failure), e.g. a chat channel's incoming webhook.
#   hooks:
#     on_failure: ["/etc/resticpilot/hooks/notify-failure.sh https://chat.example.org/hooks/KEY"]
# resticpilot sets RESTICPILOT_PROFILE and RESTICPILOT_ERROR. Needs curl. Never fails the hook:
# a notification that cannot be sent must not hide the backup's own error.
url=$1
text="resticpilot: backup of ${RESTICPILOT_PROFILE:-?} on $(hostname) failed: ${RESTICPILOT_ERROR:-unknown error}"
payload=$(printf '%s' "$text" | sed 's/\\/\\\\/g; s/"/\\"/g')
curl -fsS -m 10 -H 'Content-Type: application/json' -d "{\"text\":\"$payload\"}" "$url" || \
  echo "could not notify $url" >&2
exit 0
