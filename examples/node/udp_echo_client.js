#!/usr/bin/env node
// udp_echo_client.js: a polyio UDP echo client for Node, the twin of udp_echo_client.c.
//
//   node examples/node/udp_echo_client.js [--conns C] [--size BYTES] [--count N] [--show] HOST PORT
//
// Each of C sockets (connected to HOST:PORT) sends N datagrams of BYTES bytes, one at a
// time, and checks that each comes back unchanged within 5 s (a `recv({ signal })` that
// an `AbortSignal.timeout` ends). Prints the round-trip rate; exits 1 on any failure.
'use strict';
const polyio = require('../../bindings-node');

/** @param {string[]} argv */
function parse(argv) {
  const o = { conns: 1, size: 64, count: 1000, show: false, host: '', port: 0 };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--show') o.show = true;
    else if (a === '--conns') o.conns = Number(argv[++i]);
    else if (a === '--size') o.size = Number(argv[++i]);
    else if (a === '--count') o.count = Number(argv[++i]);
    else rest.push(a);
  }
  if (rest.length !== 2) throw new Error('usage: udp_echo_client.js [--conns C] [--size BYTES] [--count N] [--show] HOST PORT');
  o.host = rest[0];
  o.port = Number(rest[1]);
  return o;
}

/**
 * @param {number} idx
 * @param {ReturnType<typeof parse>} o
 */
async function client(idx, o) {
  const sock = await polyio.bindUdp({ type: o.host.includes(':') ? 'udp6' : 'udp4' });
  await sock.connect(o.port, o.host);
  const msg = Buffer.alloc(o.size);
  try {
    for (let n = 0; n < o.count; n++) {
      for (let i = 0; i < o.size; i++) msg[i] = 97 + ((idx * 7 + n * 13 + i) % 26); // the C client's pattern
      const echo = sock.recv({ signal: AbortSignal.timeout(5000) });
      await sock.send(msg);
      const { data } = await echo;
      if (!data.equals(msg)) throw new Error(`socket ${idx}: datagram ${n} came back different`);
      if (o.show) console.log(`sent ${JSON.stringify(msg.toString())}, got it back`);
    }
  } finally {
    await sock.close();
  }
}

async function main() {
  const o = parse(process.argv.slice(2));
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: o.conns }, (_, i) => client(i, o)));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const total = o.conns * o.count;
  console.log(`${o.conns} sockets x ${o.count} datagrams x ${o.size} bytes echoed intact: ${(total / secs).toFixed(0)} round trips/s`);
}

main().catch((err) => {
  console.error('udp_echo_client:', err);
  process.exit(1);
});
