#!/bin/sh
# Usage: rd-with-teachers SERVICE PORT MIN_TEACHERS -- trainer pull|distill ...
# A headless Service resolves to one A record per *ready* pod. trainer's `--teacher` needs one
# endpoint per replica (a single name would pin every stream to the first address), so this
# waits until at least MIN_TEACHERS pods are ready, sets RD_TEACHER (the env form of
# `--teacher`) to ip:port of each, and execs the rest of the command line.
set -eu
service="$1" port="$2" min="$3"
shift 3
[ "${1:-}" = "--" ] && shift
tries=0
while :; do
  ips="$(getent ahostsv4 "$service" 2>/dev/null | awk '{print $1}' | sort -u || true)"
  count="$(printf '%s\n' "$ips" | grep -c . || true)"
  [ "$count" -ge "$min" ] && break
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then
    echo "rd-with-teachers: $service has $count ready pods after 10 minutes, need $min" >&2
    exit 1
  fi
  sleep 5
done
RD_TEACHER="$(printf '%s\n' "$ips" | sed "s/\$/:$port/" | paste -sd, -)"
export RD_TEACHER
echo "rd-with-teachers: RD_TEACHER=$RD_TEACHER" >&2
exec "$@"
