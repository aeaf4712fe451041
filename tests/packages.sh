#!/usr/bin/env bash
# packages.sh: installs the Python and Node packages the way a user does, into places of
# their own, and uses them: `pip install ./bindings-python` into a fresh venv, and
# `npm install ./bindings-node` into a fresh npm project (require and import).
#
#   tests/packages.sh WORKDIR     (WORKDIR is emptied first; the Node binding must be built)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: packages.sh WORKDIR}
rm -rf "$work" && mkdir -p "$work"

echo "== pip install ./bindings-python into a fresh venv"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$root/bindings-python"
"$work/venv/bin/python" - <<'PY'
import asyncio
import polyio

async def main() -> None:
    async def echo(r: polyio.StreamReader, w: polyio.StreamWriter) -> None:
        w.write(await r.readline())
        await w.drain()
        w.close()

    server = await polyio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r, w = await polyio.open_connection("127.0.0.1", port)
    w.write(b"installed\n")
    line = await r.readline()
    assert line == b"installed\n", line
    w.close()
    server.close()
    await server.wait_closed()
    print(f"pip package: polyio {polyio.__version__} echoed {line!r}")

asyncio.run(main())
PY

echo "== npm install ./bindings-node into a fresh project"
mkdir -p "$work/npm"
cd "$work/npm"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error "$root/bindings-node"
cat > check.mjs <<'JS'
import { createRequire } from 'node:module';
import * as esm from 'polyio';
const polyio = createRequire(import.meta.url)('polyio');
if (esm.connect !== polyio.connect) throw new Error('import and require give different modules');
const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
const accepted = server.accept();
const conn = await polyio.connect({ host: '127.0.0.1', port: server.address().port });
const peer = await accepted;
await conn.write('installed');
const got = String(await peer.read());
if (got !== 'installed') throw new Error(`got ${got}`);
await Promise.all([conn.close(), peer.close(), server.close()]);
console.log(`npm package: require and import load polyio; echoed '${got}'`);
JS
node check.mjs
