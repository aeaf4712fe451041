#!/usr/bin/env bash
# Starts an echo server on 127.0.0.1 with a free port, runs an echo client against it,
# stops the server and prints what both said. Fails if either fails.
#   tests/echo_pair.sh SERVER CLIENT [client options...]   (SERVER_ARGS adds server options)
set -euo pipefail
server=$1 client=$2; shift 2
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
# shellcheck disable=SC2086
"$server" ${SERVER_ARGS:-} 127.0.0.1 0 >"$log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 200); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "server exited early" >&2; exit 1; }
    sleep 0.05
done
[ -n "$port" ] || { cat "$log"; echo "server did not start" >&2; exit 1; }
echo "server: $(head -n 1 "$log")"
"$client" "$@" 127.0.0.1 "$port" | sed 's/^/client: /'
kill -TERM "$pid"
wait "$pid"
echo "server: $(tail -n 1 "$log")"
