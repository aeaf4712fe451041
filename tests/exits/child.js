// One Node process that exits with polyio work pending; run by exits.py.
//
//   node child.js MODE SEED
//
// MODE: fall (main returns; what is pending finishes soon and the process exits by itself),
// exit (process.exit(3)), raise (an uncaught exception), reject (an unhandled rejection),
// sigterm, sigint (the process signals itself). SEED varies how many ticks pass first.
'use strict';
const polyio = require('../../bindings-node');

async function pendingWork(seed, mode) {
  const keep = [];
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  keep.push(server);
  const port = server.address().port;
  (async () => {
    for await (const conn of server) {
      keep.push(conn);
      // The peer never writes: this read waits (fall: until the peer closes).
      conn.read().then(() => conn.close(), () => {});
    }
  })().catch(() => {});
  for (let i = 0; i < 4; i++) {
    const conn = await polyio.connect({ host: '127.0.0.1', port });
    keep.push(conn);
    conn.read().catch(() => {});
    if (i === 0 && mode !== 'fall') {
      // Far more than the socket buffers take: the write stays pending.
      conn.write(Buffer.alloc(8 << 20, 120)).catch(() => {});
    }
  }
  keep.push(polyio.sleep(mode === 'fall' ? 20 : 3_600_000).catch(() => {}));
  keep.push(polyio.readFile(__filename).catch(() => {}));
  for (let i = 0; i < seed % 7; i++) {
    await new Promise((r) => setImmediate(r));
  }
  return keep;
}

async function main() {
  const [mode, seedArg] = process.argv.slice(2);
  const seed = Number(seedArg);
  const keep = await pendingWork(seed, mode);
  process.stdout.write('work pending\n');
  if (mode === 'exit') process.exit(3);
  if (mode === 'raise') setImmediate(() => { throw new Error('uncaught, on purpose'); });
  if (mode === 'reject') Promise.reject(new Error('unhandled, on purpose'));
  if (mode === 'sigterm') process.kill(process.pid, 'SIGTERM');
  if (mode === 'sigint') process.kill(process.pid, 'SIGINT');
  if (mode === 'fall') {
    // Close what would keep the loop alive forever; the reads and the sleep still pend.
    const [server, ...rest] = keep;
    await server.close();
    for (const c of rest) if (c && typeof c.close === 'function') c.close().catch(() => {});
  }
}

main().catch((err) => {
  console.error('child:', err);
  process.exit(1);
});
