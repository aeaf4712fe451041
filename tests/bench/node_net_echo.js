#!/usr/bin/env node
// node_net_echo.js: the `node-net` benchmark peer — a plain node:net echo server, as a Node
// user would write it: setNoDelay, socket.on('data', d => socket.write(d)).
//   node tests/bench/node_net_echo.js HOST PORT
//   node tests/bench/node_net_echo.js --unix PATH     (server.listen(PATH): a Unix socket)
'use strict';
const net = require('node:net');

const [host = '127.0.0.1', port = '7000'] = process.argv.slice(2);
const unixPath = host === '--unix' ? port : null;
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
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
