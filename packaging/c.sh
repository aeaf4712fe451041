#!/usr/bin/env bash
# c.sh: lays out the C library as a prefix: include/polyio.h; lib/libpolyio.so.X.Y.Z (SONAME
# libpolyio.so.X) with its libpolyio.so.X and libpolyio.so symlinks; lib/libpolyio.a;
# lib/pkgconfig/polyio.pc and polyio-static.pc; lib/cmake/polyio/ (find_package(polyio)).
#
#   packaging/c.sh DEST [PREFIX]   (the release library must be built: make lib-release)
#
# Without PREFIX the .pc files locate the prefix from their own directory (${pcfiledir}), so
# the tree can be unpacked anywhere; the CMake files always do (CMAKE_CURRENT_LIST_DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: c.sh DEST [PREFIX]}
prefix=${2:-'${pcfiledir}/../..'}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
major=${version%%.*}
release=$root/target/release

for f in libpolyio.so libpolyio.a; do
  [ -f "$release/$f" ] || { echo "c.sh: $release/$f is missing: run make lib-release" >&2; exit 1; }
done
soname=$(objdump -p "$release/libpolyio.so" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = "libpolyio.so.$major" ] || { echo "c.sh: libpolyio.so has SONAME '$soname', not libpolyio.so.$major" >&2; exit 1; }

install -d "$dest/include" "$dest/lib/pkgconfig" "$dest/lib/cmake/polyio"
install -m 644 "$root/include/polyio.h" "$dest/include/polyio.h"
strip --strip-debug -o "$dest/lib/libpolyio.so.$version" "$release/libpolyio.so"
chmod 755 "$dest/lib/libpolyio.so.$version"
ln -sfn "libpolyio.so.$version" "$dest/lib/libpolyio.so.$major"
ln -sfn "libpolyio.so.$major" "$dest/lib/libpolyio.so"
strip --strip-debug -o "$dest/lib/libpolyio.a" "$release/libpolyio.a"
chmod 644 "$dest/lib/libpolyio.a"

subst() {
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" "$1" > "$2"
}
subst "$root/bindings-c/polyio.pc.in" "$dest/lib/pkgconfig/polyio.pc"
subst "$root/bindings-c/polyio-static.pc.in" "$dest/lib/pkgconfig/polyio-static.pc"
subst "$root/bindings-c/cmake/polyioConfig.cmake.in" "$dest/lib/cmake/polyio/polyioConfig.cmake"
subst "$root/bindings-c/cmake/polyioConfigVersion.cmake.in" "$dest/lib/cmake/polyio/polyioConfigVersion.cmake"
