#!/usr/bin/env bash
# dist.sh: installs what `make dist` wrote the way users do, with no Rust toolchain on PATH,
# and uses each: the wheel into a fresh venv, the npm tarballs into a fresh project with
# `npm install --offline` (no registry, no cache: the tarballs alone), the C tarball under a
# prefix, built against with pkg-config and with CMake, dynamically and statically. Each runs
# an echo and checks its version. The sdist is installed with pip too; that one compiles, so
# it alone keeps cargo on PATH.
#
#   tests/dist.sh DIST WORKDIR     (WORKDIR is emptied first)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dist=$(cd "${1:?usage: dist.sh DIST WORKDIR}" && pwd)
work=${2:?usage: dist.sh DIST WORKDIR}
rm -rf "$work" && mkdir -p "$work"
work=$(cd "$work" && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
major=${version%%.*}
export VERSION=$version

# PATH without any directory that holds cargo or rustc.
no_rust=""
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  [ -n "$d" ] || continue
  [ -x "$d/cargo" ] || [ -x "$d/rustc" ] || no_rust="${no_rust:+$no_rust:}$d"
done
rust_less() { env PATH="$no_rust" "$@"; }
if rust_less bash -c 'command -v cargo || command -v rustc' >/dev/null; then
  echo "dist.sh: could not build a PATH without cargo and rustc" >&2; exit 1
fi
echo "== PATH without a Rust toolchain: $no_rust"

one() {  # the one file in DIST matching a glob
  local m=("$dist"/$1)
  [ ${#m[@]} = 1 ] && [ -e "${m[0]}" ] || { echo "dist.sh: want one $1 in $dist, found: ${m[*]}" >&2; exit 1; }
  echo "${m[0]}"
}
wheel=$(one "polyio-$version-cp39-abi3-manylinux_*_x86_64.whl")
sdist=$(one "polyio-$version.tar.gz")
npm_main=$(one "polyio-$version.tgz")
npm_platform=$(one "polyio-linux-x64-gnu-$version.tgz")
ctar=$(one "libpolyio-$version-linux-x86_64.tar.gz")

echo "== versions: Cargo.toml, header, package.json files, loader, and every artifact say $version"
python3 "$root/tests/versions.py" --dist "$dist"

# ---- Python ---------------------------------------------------------------------------
echo "== wheel: $(basename "$wheel")"
tag=$(basename "$wheel" .whl); tag=${tag##*-}
[ -x "$root/.venv/bin/auditwheel" ] || { echo "dist.sh: .venv/bin/auditwheel is missing: make dist installs it" >&2; exit 1; }
audit=$(rust_less "$root/.venv/bin/auditwheel" show "$wheel" | tr -s ' \n' '  ')
grep -q "is consistent with the following platform tag: \"$tag\"" <<<"$audit" \
  || { echo "$audit"; echo "auditwheel does not accept the tag $tag" >&2; exit 1; }
echo "auditwheel: $(basename "$wheel") is consistent with $tag"
rust_less python3 -m venv "$work/wheel-venv"
rust_less "$work/wheel-venv/bin/python" -m pip install -q --no-index --disable-pip-version-check "$wheel"
(cd "$work" && rust_less "$work/wheel-venv/bin/python" "$root/tests/dist/check.py")
py=$work/wheel-venv/bin/python
SERVER_ARGS=$root/examples/python/echo_server.py rust_less bash "$root/tests/echo_pair.sh" \
  "$py" "$py" "$root/examples/python/echo_client.py" --conns 4 --size 1024 --count 100

echo "== sdist: pip install $(basename "$sdist") (builds from source: the one step with cargo)"
python3 -m venv "$work/sdist-venv"
CARGO_TARGET_DIR=${SDIST_TARGET_DIR:-$work/sdist-target} \
  "$work/sdist-venv/bin/python" -m pip install -q --disable-pip-version-check "$sdist"
(cd "$work" && rust_less "$work/sdist-venv/bin/python" "$root/tests/dist/check.py")

# ---- Node -----------------------------------------------------------------------------
echo "== npm install --offline $(basename "$npm_main") $(basename "$npm_platform")"
mkdir -p "$work/npm"
cp "$npm_main" "$npm_platform" "$work/npm/"
(
  cd "$work/npm"
  rust_less npm init -y >/dev/null
  rust_less npm install --offline --cache "$work/npm-cache" --no-audit --no-fund --loglevel=error \
    "./$(basename "$npm_main")" "./$(basename "$npm_platform")"
  cp "$root/tests/dist/check.mjs" .
  rust_less node check.mjs
  for e in echo_server echo_client; do
    sed "s|require('../../bindings-node')|require('polyio')|" "$root/examples/node/$e.js" > "$e.js"
    chmod +x "$e.js"
  done
  rust_less bash "$root/tests/echo_pair.sh" ./echo_server.js ./echo_client.js --conns 4 --size 1024 --count 100
)

# ---- C --------------------------------------------------------------------------------
prefix=$work/prefix
echo "== C: $(basename "$ctar") unpacked under $prefix"
mkdir -p "$prefix"
tar -C "$prefix" --strip-components=1 -xzf "$ctar"
lib=$prefix/lib
[ "$(readlink "$lib/libpolyio.so")" = "libpolyio.so.$major" ] || { echo "libpolyio.so does not point at libpolyio.so.$major" >&2; exit 1; }
[ "$(readlink "$lib/libpolyio.so.$major")" = "libpolyio.so.$version" ] || { echo "libpolyio.so.$major does not point at libpolyio.so.$version" >&2; exit 1; }
soname=$(objdump -p "$lib/libpolyio.so.$version" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = "libpolyio.so.$major" ] || { echo "SONAME is '$soname'" >&2; exit 1; }
echo "libpolyio.so -> libpolyio.so.$major -> libpolyio.so.$version (SONAME $soname), libpolyio.a"

needs_polyio() { objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }' | grep -qx "libpolyio.so.$major"; }
cbuild=$work/c
mkdir -p "$cbuild"
export PKG_CONFIG_PATH=$lib/pkgconfig
for kind in polyio polyio-static; do
  echo "== cc \$(pkg-config --cflags --libs $kind)"
  for e in echo_server echo_client; do
    rust_less cc -std=c11 -Wall -Wextra -Werror "$root/examples/c/$e.c" $(pkg-config --cflags --libs "$kind") -o "$cbuild/$e-$kind"
  done
  rust_less cc -std=c11 -Wall -Wextra -Werror "$root/tests/dist/version.c" $(pkg-config --cflags --libs "$kind") -o "$cbuild/version-$kind"
  if [ "$kind" = polyio ]; then
    needs_polyio "$cbuild/echo_server-$kind" || { echo "the dynamic build does not load libpolyio.so.$major" >&2; exit 1; }
  else
    ! needs_polyio "$cbuild/echo_server-$kind" || { echo "the static build loads libpolyio.so.$major" >&2; exit 1; }
  fi
  rust_less "$cbuild/version-$kind" "$version"
  rust_less bash "$root/tests/echo_pair.sh" "$cbuild/echo_server-$kind" "$cbuild/echo_client-$kind" --conns 4 --size 4096 --count 200
done

minor=${version#*.}; minor=${minor%%.*}
echo "== CMake: find_package(polyio $major.$minor) with CMAKE_PREFIX_PATH=$prefix"
rust_less cmake -S "$root/tests/dist" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DEXAMPLES="$root/examples/c" \
  -DPOLYIO_WANT="$major.$minor" >"$work/cmake.log" \
  || { cat "$work/cmake.log"; exit 1; }
grep -- "found polyio" "$work/cmake.log"
rust_less cmake --build "$work/cmake" -j 2 >"$work/cmake-build.log" || { cat "$work/cmake-build.log"; exit 1; }
needs_polyio "$work/cmake/echo_server_shared" || { echo "polyio::polyio does not load libpolyio.so.$major" >&2; exit 1; }
! needs_polyio "$work/cmake/echo_server_static" || { echo "polyio::polyio_static loads libpolyio.so.$major" >&2; exit 1; }
for kind in shared static; do
  echo "-- the $kind build"
  rust_less bash "$root/tests/echo_pair.sh" "$work/cmake/echo_server_$kind" "$work/cmake/echo_client_$kind" --conns 4 --size 4096 --count 200
done
if rust_less cmake -S "$root/tests/dist" -B "$work/cmake-too-new" -DCMAKE_PREFIX_PATH="$prefix" -DEXAMPLES="$root/examples/c" \
  -DPOLYIO_WANT="$((major + 1)).0" >/dev/null 2>&1; then
  echo "find_package(polyio $((major + 1)).0) accepted polyio $version" >&2; exit 1
fi
echo "find_package(polyio $((major + 1)).0) rejects polyio $version"

echo "dist: wheel, sdist, npm tarballs and the C tarball install without a Rust toolchain and echo"
