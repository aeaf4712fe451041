#!/usr/bin/env node
// echo_client.js: a polyio echo client for Node.
//
//   node examples/node/echo_client.js [--conns C] [--size BYTES] [--count N] [--show] HOST PORT
//   node examples/node/echo_client.js [options] --unix PATH      (a Unix socket instead of TCP)
//
// Each of C connections sends N messages of BYTES bytes, one at a time, and checks that
// every echoed byte matches, with the same messages as examples/c/echo_client.c. Prints the round-trip rate.
'use strict';
const polyio = require('../../bindings-node');

/** @param {string[]} argv */
function parseArgs(argv) {
  const o = { conns: 1, size: 64, count: 1000, show: false, host: '', port: 0, unix: '' };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--show') o.show = true;
    else if (a === '--unix') o.unix = argv[++i] ?? '';
    else if (a === '--conns' || a === '--size' || a === '--count') o[/** @type {'conns' | 'size' | 'count'} */ (a.slice(2))] = Number(argv[++i]);
    else rest.push(a);
  }
  if (rest.length !== (o.unix ? 0 : 2) || !(o.conns > 0 && o.size > 0 && o.count >= 0)) {
    console.error('usage: echo_client [--conns C] [--size BYTES] [--count N] [--show] HOST PORT | --unix PATH');
    process.exit(2);
  }
  if (!o.unix) [o.host, o.port] = [rest[0], Number(rest[1])];
  return o;
}

/**
 * Reads exactly `n` bytes (the echo may arrive in pieces).
 * @param {import('polyio').Connection} conn
 * @param {number} n
 */
async function readExactly(conn, n) {
  const parts = [];
  let got = 0;
  while (got < n) {
    const chunk = await conn.read();
    if (chunk === null) throw new Error(`EOF after ${got} of ${n} bytes`);
    parts.push(chunk);
    got += chunk.length;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/**
 * @param {ReturnType<typeof parseArgs>} o
 * @param {number} idx
 */
async function client(o, idx) {
  const conn = await polyio.connect(o.unix ? { path: o.unix } : { host: o.host, port: o.port, noDelay: true });
  const msg = Buffer.alloc(o.size);
  for (let n = 0; n < o.count; n++) {
    // The same bytes examples/c/echo_client.c sends: 'a' + (idx*7 + n*13 + i) % 26.
    for (let i = 0; i < o.size; i++) msg[i] = 0x61 + ((idx * 7 + n * 13 + i) % 26);
    await conn.write(msg);
    const echo = await readExactly(conn, o.size);
    if (!echo.equals(msg)) throw new Error(`conn ${idx}: echo mismatch`);
    if (o.show && n < 3) {
      const text = msg.subarray(0, 24).toString();
      console.log(`  conn ${idx}: sent ${o.size} bytes "${text}${o.size > 24 ? '...' : ''}", got the same back`);
    }
  }
  await conn.end();
  await conn.close();
  return o.count;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const t0 = process.hrtime.bigint();
  const counts = await Promise.all(Array.from({ length: o.conns }, (_, i) => client(o, i)));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const total = counts.reduce((a, b) => a + b, 0);
  const s = o.conns === 1 ? '' : 's';
  console.log(
    `${total} round trips of ${o.size} bytes over ${o.conns} connection${s} in ${secs.toFixed(3)} s: ` +
      `${(total / secs).toFixed(0)} req/s, every byte verified`,
  );
}

main().catch((err) => {
  console.error('echo_client:', err instanceof Error ? err.message : err);
  process.exit(1);
});
