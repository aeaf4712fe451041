#!/usr/bin/env bash
# Starts an echo server on 127.0.0.1 with a free port, runs an echo client against it,
# stops the server and prints what both said. Fails if either fails.
#   tests/echo_pair.sh SERVER CLIENT [client options...]   (SERVER_ARGS adds server options)
# With ECHO_UNIX=1 they meet on a Unix socket in a fresh temp directory instead (server and
# client get `--unix PATH` in place of HOST PORT); the server must remove its socket file.
set -euo pipefail
server=$1 client=$2; shift 2
log=$(mktemp)
dir=$(mktemp -d)
pid=""
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"; rm -rf "$dir"' EXIT
if [ "${ECHO_UNIX:-0}" = 1 ]; then
    where=(--unix "$dir/echo.sock")
    pattern='s/^listening on unix:\([^ ]*\).*/\1/p'
else
    where=(127.0.0.1 0)
    pattern='s/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p'
fi
# shellcheck disable=SC2086
"$server" ${SERVER_ARGS:-} "${where[@]}" >"$log" 2>&1 &
pid=$!
at=""
for _ in $(seq 1 200); do
    at=$(sed -n "$pattern" "$log")
    [ -n "$at" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "server exited early" >&2; exit 1; }
    sleep 0.05
done
[ -n "$at" ] || { cat "$log"; echo "server did not start" >&2; exit 1; }
echo "server: $(head -n 1 "$log")"
if [ "${ECHO_UNIX:-0}" = 1 ]; then
    "$client" "$@" --unix "$at" | sed 's/^/client: /'
else
    "$client" "$@" 127.0.0.1 "$at" | sed 's/^/client: /'
fi
kill -TERM "$pid"
wait "$pid"
echo "server: $(tail -n 1 "$log")"
if [ "${ECHO_UNIX:-0}" = 1 ] && [ -e "$at" ]; then
    echo "the server left its socket file $at behind" >&2
    exit 1
fi
