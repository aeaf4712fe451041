#!/usr/bin/env bash
# npm.sh: packs the Node binding as napi-rs publishes it: the `polyio` package (index.js,
# index.d.ts, no binary; optionalDependencies on each platform package) and one platform
# package, `polyio-linux-x64-gnu`, holding the .node that index.js requires on that platform.
#
#   packaging/npm.sh STAGE OUTDIR   (the release .node must be built: make node-build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stage=${1:?usage: npm.sh STAGE OUTDIR}
out=${2:?usage: npm.sh STAGE OUTDIR}
node_pkg=$root/bindings-node
platform=linux-x64-gnu
binary=polyio.$platform.node

[ -f "$node_pkg/$binary" ] || { echo "npm.sh: $node_pkg/$binary is missing: run make node-build" >&2; exit 1; }
rm -rf "$stage" && mkdir -p "$stage/polyio" "$out"

# The platform package: its committed package.json (napi create-npm-dirs) and the binary.
cp -r "$node_pkg/npm/$platform" "$stage/$platform"
strip --strip-debug -o "$stage/$platform/$binary" "$node_pkg/$binary"

# The main package: the loader and types, with optionalDependencies on the platform
# packages at its own version (what `napi pre-publish` adds) and no dev-only fields.
cp "$node_pkg/index.js" "$node_pkg/index.d.ts" "$stage/polyio/"
node - "$node_pkg/package.json" "$stage/polyio/package.json" "$stage/$platform/package.json" <<'JS'
const fs = require('node:fs');
const [src, dst, platformJson] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync(src, 'utf8'));
const platform = JSON.parse(fs.readFileSync(platformJson, 'utf8'));
if (platform.version !== pkg.version) {
  throw new Error(`${platform.name} is ${platform.version} but polyio is ${pkg.version}`);
}
delete pkg.scripts;
delete pkg.devDependencies;
pkg.optionalDependencies = { [platform.name]: pkg.version };
fs.writeFileSync(dst, JSON.stringify(pkg, null, 2) + '\n');
JS

for p in polyio "$platform"; do
  (cd "$stage/$p" && npm pack --silent --pack-destination "$out" >/dev/null)
done
ls "$out"/polyio-*.tgz
