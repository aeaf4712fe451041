// check.mjs: loads the installed npm package with both `import` and `require`, checks that its
// binary came from the platform package and that its version is VERSION, and echoes a line.
import { createRequire } from 'node:module';
import * as esm from 'polyio';
const require = createRequire(import.meta.url);
const polyio = require('polyio');
const want = process.env.VERSION;
if (esm.connect !== polyio.connect) throw new Error('import and require give different modules');
const version = require('polyio/package.json').version;
if (version !== want) throw new Error(`polyio's package.json says ${version}, want ${want}`);
const platform = require('polyio-linux-x64-gnu/package.json').version;
if (platform !== want) throw new Error(`polyio-linux-x64-gnu is ${platform}, want ${want}`);
const binary = require.resolve('polyio-linux-x64-gnu');
const loaded = Object.keys(require.cache).filter((p) => p.endsWith('.node'));
if (!loaded.includes(binary)) throw new Error(`loaded ${loaded}, not ${binary}`);
const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
const accepted = server.accept();
const conn = await polyio.connect({ host: '127.0.0.1', port: server.address().port });
const peer = await accepted;
await conn.write('installed');
const got = String(await peer.read());
if (got !== 'installed') throw new Error(`got ${got}`);
await Promise.all([conn.close(), peer.close(), server.close()]);
console.log(`npm: polyio ${version} (binary from polyio-linux-x64-gnu) loads with require and import; echoed '${got}'`);
