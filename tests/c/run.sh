#!/usr/bin/env bash
# Builds and runs the C test suite (tests/c/test_polyio.c) against target/debug/libpolyio.a.
#
#   bash tests/c/run.sh plain|asan|valgrind [TEST-NAME-FILTER]
#
#   plain     gcc -Wall -Wextra -Werror, run as is
#   asan      plus AddressSanitizer and UBSan; LeakSanitizer on, any report fails the run
#   valgrind  the plain build under memcheck; a definite leak or memory error fails the run.
#             Sets POLYIO_TEST_QUICK=1: the largest echo is capped at 1 MiB and the
#             1,000-op tests use 200 ops (everything else runs unchanged).
#
# Builds libpolyio first (`cargo build -p polyio`, a no-op when it is up to date); set
# POLYIO_NO_BUILD=1 to test the library as it is. Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

mode="${1:-}"
filter=("${@:2}")
case "$mode" in
    plain | asan | valgrind) ;;
    *)
        echo "usage: $0 plain|asan|valgrind [TEST-NAME-FILTER]" >&2
        exit 2
        ;;
esac

if [[ "${POLYIO_NO_BUILD:-0}" != 1 ]]; then
    "${CARGO:-cargo}" build -p polyio --quiet
fi
lib=target/debug/libpolyio.a
[[ -f "$lib" ]] || { echo "$0: $lib is missing (cargo build -p polyio)" >&2; exit 1; }

mkdir -p build/tests
cc="${CC:-gcc}"
cflags=(-std=c11 -Wall -Wextra -Werror -g -Iinclude)
libs=("$lib" -lpthread -ldl -lm)

case "$mode" in
    plain | valgrind)
        bin=build/tests/test_polyio
        "$cc" "${cflags[@]}" tests/c/test_polyio.c "${libs[@]}" -o "$bin"
        ;;
    asan)
        bin=build/tests/test_polyio_asan
        "$cc" "${cflags[@]}" -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
            tests/c/test_polyio.c "${libs[@]}" -o "$bin"
        ;;
esac

echo "== tests/c ($mode): $bin ${filter[*]}"
case "$mode" in
    plain)
        "$bin" "${filter[@]}"
        ;;
    asan)
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "$bin" "${filter[@]}"
        ;;
    valgrind)
        POLYIO_TEST_QUICK=1 valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
            --suppressions=tests/c/valgrind.supp \
            --show-leak-kinds=definite -q "$bin" "${filter[@]}"
        ;;
esac
