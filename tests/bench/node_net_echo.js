#!/usr/bin/env node
// node_net_echo.js: the `node-net` benchmark peer — a plain node:net echo server, as a Node
// user would write it: setNoDelay, socket.on('data', d => socket.write(d)).
//   node tests/bench/node_net_echo.js HOST PORT
//   node tests/bench/node_net_echo.js --unix PATH     (server.listen(PATH): a Unix socket)
//   node tests/bench/node_net_echo.js --udp HOST PORT (node:dgram, as a Node user would write
//                      it: socket.on('message', (m, r) => socket.send(m, r.port, r.address)))
'use strict';
const net = require('node:net');
const dgram = require('node:dgram');

const udp = process.argv[2] === '--udp';
const [host = '127.0.0.1', port = '7000'] = process.argv.slice(udp ? 3 : 2);
const unixPath = host === '--unix' ? port : null;
if (udp) {
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  sock.on('message', (m, r) => sock.send(m, r.port, r.address));
  sock.on('error', () => {});
  sock.bind(Number(port), host, () => {
    const a = sock.address();
    console.log(`listening on ${a.address}:${a.port} (node:dgram, node ${process.version})`);
  });
} else {
  const server = net.createServer((socket) => {
    if (unixPath === null) socket.setNoDelay(true);
    socket.on('data', (d) => socket.write(d));
    socket.on('error', () => socket.destroy());
  });
  if (unixPath !== null) {
    server.listen(unixPath, () => {
      console.log(`listening on ${unixPath} (node:net, node ${process.version})`);
    });
  } else {
    server.listen(Number(port), host, () => {
      const a = /** @type {import('node:net').AddressInfo} */ (server.address());
      console.log(`listening on ${a.address}:${a.port} (node:net, node ${process.version})`);
    });
  }
}
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
