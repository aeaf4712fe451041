#!/usr/bin/env node
// echo_server.js: a polyio echo server for Node.
//
//   node examples/node/echo_server.js HOST PORT      (PORT 0: an ephemeral port)
//   node examples/node/echo_server.js --unix PATH    (a Unix socket; its file goes on close)
//
// Prints "listening on HOST:PORT" (or "listening on unix:PATH"), serves each connection
// with `for await` over its chunks and `await conn.write(chunk)` (awaiting gives
// backpressure), and on SIGTERM or SIGINT prints what it served and exits. The polyio
// runtime is driven from this process's own libuv loop: no extra thread, no per-operation
// hop.
'use strict';
const polyio = require('../../bindings-node');

/**
 * @param {import('polyio').Connection} conn
 * @param {{ conns: number, bytes: number, failed: number }} stats
 */
async function serve(conn, stats) {
  conn.setNoDelay(true);
  try {
    for await (const chunk of conn) {
      stats.bytes += chunk.length;
      await conn.write(chunk);
    }
    await conn.end();
  } catch (err) {
    // A peer that resets the connection just went away; anything else is a failure.
    const code = /** @type {NodeJS.ErrnoException} */ (err).code;
    if (code !== 'ECONNRESET' && code !== 'EPIPE') {
      stats.failed++;
      console.error('echo_server:', err);
    }
  } finally {
    await conn.close();
  }
}

async function main() {
  const args = process.argv.slice(2);
  const unixPath = args[0] === '--unix' ? args[1] : undefined;
  const [host = '127.0.0.1', portArg = '7000'] = args;
  const server = await polyio.listen(unixPath ? { path: unixPath } : { host, port: Number(portArg) });
  const addr = server.address();
  const where = typeof addr === 'string' ? `unix:${addr}` : `${addr?.address}:${addr?.port}`;
  console.log(`listening on ${where} (polyio, node ${process.version})`);
  const stats = { conns: 0, bytes: 0, failed: 0 };
  const stop = () => void server.close();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  for await (const conn of server) {
    stats.conns++;
    void serve(conn, stats);
  }
  console.log(`served ${stats.conns} connections, echoed ${stats.bytes} bytes, ${stats.failed} failed`);
  process.exit(0);
}

main().catch((err) => {
  console.error('echo_server:', err);
  process.exit(1);
});
