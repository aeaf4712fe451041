'use strict';
// One writer of tests/bench/slow_reader.py: serves one connection on 127.0.0.1 and writes
// MIB MiB to it in CHUNK KiB chunks, each a fresh Buffer. Mode 'ignore' writes them all
// without waiting; 'drain' awaits each write promise (polyio) or 'drain' after a false
// write() (net). Prints `port P`, `handed BYTES T` per MiB handed over, `handed_all T`,
// `drained T` once nothing waits to be sent, and exits once the client closes. T is
// CLOCK_MONOTONIC in seconds (process.hrtime), which the harness shares.
// Usage: node writer.js polyio|net ignore|drain MIB CHUNK_KIB
const net = require('node:net');
const { once } = require('node:events');

const [impl, mode, mib, chunkKiB] = process.argv.slice(2);
const size = Number(chunkKiB) << 10;
const count = (Number(mib) << 20) / size;
const perMib = Math.max(1, (1 << 20) / size);
const now = () => Number(process.hrtime.bigint()) / 1e9;
const say = (line) => process.stdout.write(`${line}\n`); // a pipe: synchronous on Linux
const chunk = (i) => Buffer.alloc(size, i % 251);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function writePolyio(conn) {
  let last;
  for (let i = 0; i < count; i++) {
    last = conn.write(chunk(i));
    if (mode === 'drain') await last;
    if ((i + 1) % perMib === 0) say(`handed ${(i + 1) * size} ${now()}`);
  }
  say(`handed_all ${now()}`);
  await last;
  while (conn.writeQueueSize > 0) await sleep(10);
  say(`drained ${now()}`);
  while ((await conn.read()) !== null);
  await conn.close();
}

async function writeNet(sock) {
  let last;
  const flushed = new Promise((r) => {
    last = r;
  });
  for (let i = 0; i < count; i++) {
    const last_i = i === count - 1;
    const ok = last_i ? sock.write(chunk(i), () => last()) : sock.write(chunk(i));
    if (mode === 'drain' && !ok) await once(sock, 'drain');
    if ((i + 1) % perMib === 0) say(`handed ${(i + 1) * size} ${now()}`);
  }
  say(`handed_all ${now()}`);
  await flushed;
  while (sock.writableLength > 0 || sock._handle?.writeQueueSize > 0) await sleep(10);
  say(`drained ${now()}`);
  sock.resume();
  await once(sock, 'end');
  sock.destroy();
}

async function main() {
  if (impl === 'polyio') {
    const polyio = require('../../../bindings-node');
    const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
    say(`port ${server.address().port}`);
    const conn = await server.accept();
    await writePolyio(conn);
    await server.close();
  } else {
    const server = net.createServer();
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    say(`port ${server.address().port}`);
    const [sock] = await once(server, 'connection');
    await writeNet(sock);
    server.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
