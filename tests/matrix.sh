#!/usr/bin/env bash
# Cross-language echo matrix: every client (C, Python, Node) against every server, over TCP
# (each on a free port), over a Unix socket (each in a fresh temp directory) and over UDP
# (the udp_echo_* programs, one datagram per message), all sending the same messages and
# verifying every echoed byte (the clients check each echo against what they sent). Prints a
# table per transport; fails if any pair fails.
#   tests/matrix.sh [--release]     (uses build/examples, or build/release/examples)
# The Python programs run on the first `python3` on PATH, which must import polyio (the
# Makefile puts .venv/bin first). MATRIX_REQUIRE_ALL=1 turns a skipped language into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/examples
[ "${1:-}" = "--release" ] && bin=build/release/examples

# name|server program|client program|UDP server|UDP client (a missing program skips that
# language)
langs=(
    "C|$bin/echo_server|$bin/echo_client|$bin/udp_echo_server|$bin/udp_echo_client"
    "Node|examples/node/echo_server.js|examples/node/echo_client.js|examples/node/udp_echo_server.js|examples/node/udp_echo_client.js"
    "Python|examples/python/echo_server.py|examples/python/echo_client.py|examples/python/udp_echo_server.py|examples/python/udp_echo_client.py"
)
present=()
skipped=0
for l in "${langs[@]}"; do
    IFS='|' read -r name srv cli usrv ucli <<<"$l"
    if ! [ -x "$srv" ] || ! [ -x "$cli" ] || ! [ -x "$usrv" ] || ! [ -x "$ucli" ]; then
        echo "matrix: skipping $name (no $srv / $cli / $usrv / $ucli yet)"
        skipped=1
    elif [ "$name" = Python ] && ! python3 -c "import polyio" 2>/dev/null; then
        echo "matrix: skipping $name (python3 cannot import polyio: build and install bindings-python first)"
        skipped=1
    else
        present+=("$l")
    fi
done

if [ "$skipped" = 1 ] && [ "${MATRIX_REQUIRE_ALL:-0}" = 1 ]; then
    echo "matrix: every language is required here (MATRIX_REQUIRE_ALL=1)" >&2
    exit 1
fi

args=(--conns 4 --size 4099 --count 100)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
for transport in tcp unix udp; do
    echo "== over $transport"
    printf '%-18s' "client \\ server"
    for s in "${present[@]}"; do printf '%-10s' "${s%%|*}"; done
    echo
    for c in "${present[@]}"; do
        IFS='|' read -r cname _ cli _ ucli <<<"$c"
        [ "$transport" = udp ] && cli=$ucli
        printf '%-18s' "$cname"
        for s in "${present[@]}"; do
            IFS='|' read -r _ srv _ usrv _ <<<"$s"
            [ "$transport" = udp ] && srv=$usrv
            # The clients exit non-zero on any mismatch, short echo or error; echo_pair.sh
            # fails when either side does (over unix, also when the socket file is left).
            unix=0
            [ "$transport" = unix ] && unix=1
            if ECHO_UNIX=$unix bash tests/echo_pair.sh "$srv" "$cli" "${args[@]}" >"$log" 2>&1; then
                printf '%-10s' "ok"
            else
                printf '%-10s' "FAIL"
                failed=1
                sed 's/^/    | /' "$log" >&2
            fi
        done
        echo
    done
done
echo "(each cell: ${args[*]}, every echoed byte verified)"
exit $failed
