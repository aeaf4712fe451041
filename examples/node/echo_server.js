#!/usr/bin/env node
// echo_server.js: a polyio echo server for Node.
//
//   node examples/node/echo_server.js HOST PORT      (PORT 0: an ephemeral port)
//
// Prints "listening on HOST:PORT", serves each connection with `for await` over its
// chunks and `await conn.write(chunk)` (awaiting gives backpressure), and on SIGTERM or
// SIGINT prints what it served and exits. The polyio runtime is driven from this
// process's own libuv loop: no extra thread, no per-operation hop.
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
  const [host = '127.0.0.1', portArg = '7000'] = process.argv.slice(2);
  const server = await polyio.listen({ host, port: Number(portArg) });
  const addr = server.address();
  console.log(`listening on ${addr?.address}:${addr?.port} (polyio, node ${process.version})`);
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
