#!/usr/bin/env node
// echo_server_workers.js: one worker thread per core, each with its own polyio runtime (on
// the worker's own libuv loop) and its own listener on the same port (reusePort: the kernel
// spreads connections across them). How polyio uses many cores from one Node process.
//
//   node examples/node/echo_server_workers.js [--threads N] HOST PORT   (PORT 0: a free port)
//
// Prints "listening on HOST:PORT (N threads)", echoes every byte back, and on SIGTERM or
// SIGINT stops every worker and prints what it served.
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const polyio = require('../../bindings-node');

/** A worker: listen on workerData's host and port, echo until told to stop. */
async function worker() {
  const { host, port } = workerData;
  const server = await polyio.listen({ host, port, reusePort: true });
  const addr = server.address();
  const stats = { conns: 0, bytes: 0 };
  parentPort?.on('message', (msg) => {
    if (msg === 'stop') void server.close();
  });
  parentPort?.postMessage({ port: typeof addr === 'string' ? 0 : addr?.port });
  for await (const conn of server) {
    stats.conns++;
    void (async () => {
      try {
        for await (const chunk of conn) {
          stats.bytes += chunk.length;
          await conn.write(chunk);
        }
      } catch {
        // a peer that resets just went away
      } finally {
        await conn.close();
      }
    })();
  }
  parentPort?.postMessage({ stats });
}

/**
 * Starts one worker on `port` and resolves with it and the port it bound.
 * @param {string} host
 * @param {number} port
 * @returns {Promise<{ w: Worker, port: number }>}
 */
function start(host, port) {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { host, port } });
    w.once('error', reject);
    w.once('message', (msg) => resolve({ w, port: msg.port }));
  });
}

async function main() {
  let args = process.argv.slice(2);
  let threads = 2;
  if (args[0] === '--threads') {
    threads = Number(args[1]);
    args = args.slice(2);
  }
  const [host = '127.0.0.1', portArg = '7000'] = args;
  // The first binds (port 0 picks one); the others bind its port.
  let port = Number(portArg);
  /** @type {Worker[]} */
  const workers = [];
  for (let i = 0; i < threads; i++) {
    const started = await start(host, port);
    port = started.port;
    workers.push(started.w);
  }
  console.log(`listening on ${host}:${port} (${threads} thread${threads > 1 ? 's' : ''})`);
  /** @type {Promise<{ conns: number, bytes: number }>[]} */
  const done = workers.map(
    (w) => new Promise((resolve) => w.on('message', (msg) => msg.stats && resolve(msg.stats))),
  );
  const stop = () => workers.forEach((w) => w.postMessage('stop'));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const stats = await Promise.all(done);
  const conns = stats.reduce((n, s) => n + s.conns, 0);
  const bytes = stats.reduce((n, s) => n + s.bytes, 0);
  console.log(
    `served ${conns} connections, echoed ${bytes} bytes (connections per thread: ${stats.map((s) => s.conns).join(' ')})`,
  );
  process.exit(0);
}

(isMainThread ? main() : worker()).catch((err) => {
  console.error('echo_server_workers:', err);
  process.exit(1);
});
