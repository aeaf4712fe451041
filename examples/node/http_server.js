// Node's own http server, fed by polyio: `node http_server.js [PORT]` serves "hello" on
// 127.0.0.1 (default port 8080) until Ctrl-C. The same server object would run on `net`
// with `server.listen(PORT)`; `polyio.serve(server, ...)` accepts with polyio instead.
// Checked by `tsc --strict` in `make test-node`.
'use strict';
const http = require('node:http');
const polyio = require('../../bindings-node');

async function main() {
  const port = Number(process.argv[2] ?? 8080);
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end('hello\n');
  });
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  await polyio.serve(server, { host: '127.0.0.1', port, signal: ac.signal });
  const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
  console.log(`http://${addr.address}:${addr.port}/`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
