#!/usr/bin/env node
// udp_echo_server.js: a polyio UDP echo server for Node.
//
//   node examples/node/udp_echo_server.js HOST PORT      (PORT 0: an ephemeral port)
//
// Prints "listening on HOST:PORT", sends every datagram back to its sender with
// `for await` over the socket, and on SIGTERM or SIGINT prints what it echoed and exits.
'use strict';
const polyio = require('../../bindings-node');

async function main() {
  const [host = '127.0.0.1', portArg = '7000'] = process.argv.slice(2);
  const type = host.includes(':') ? 'udp6' : 'udp4';
  const sock = await polyio.bindUdp({ type, address: host, port: Number(portArg) });
  const addr = sock.address();
  console.log(`listening on ${addr.address}:${addr.port} (udp, polyio, node ${process.version})`);
  const stats = { datagrams: 0, bytes: 0, failed: 0 };
  const stop = () => void sock.close();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  for await (const { data, address, port } of sock) {
    stats.datagrams++;
    stats.bytes += data.length;
    sock.send(data, port, address).catch((err) => {
      stats.failed++;
      console.error('udp_echo_server:', err);
    });
  }
  console.log(`echoed ${stats.datagrams} datagrams, ${stats.bytes} bytes, ${stats.failed} failed`);
  process.exit(0);
}

main().catch((err) => {
  console.error('udp_echo_server:', err);
  process.exit(1);
});
