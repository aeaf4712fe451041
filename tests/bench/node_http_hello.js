#!/usr/bin/env node
// node_http_hello.js: the http benchmark's server — a plain `http.createServer` answering
// "hello" (keep-alive), listening through `net` (server.listen) or fed by polyio
// (polyio.serve): the same server object either way, so the difference is the sockets.
//   node tests/bench/node_http_hello.js net|polyio HOST PORT
'use strict';
const http = require('node:http');

const [via = 'polyio', host = '127.0.0.1', port = '8080'] = process.argv.slice(2);
const body = Buffer.from('hello\n');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
const listening = () => {
  const a = server.address();
  console.log(`listening on ${a.address}:${a.port} (http via ${via}, node ${process.version})`);
};
process.on('SIGTERM', () => process.exit(0));
if (via === 'net') {
  server.listen(Number(port), host, listening);
} else if (via === 'polyio') {
  const polyio = require('../../bindings-node');
  polyio.serve(server, { host, port: Number(port) }).then(listening, (err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  console.error('usage: node_http_hello.js net|polyio HOST PORT');
  process.exit(2);
}
