'use strict';
// Run by faults.test.js under tests/faults/inject.c (LD_PRELOAD), which fails every send to
// port argv[2] with ENOBUFS: what a polyio TCP write and UDP send to that port end in, while
// a connection made before keeps echoing. Prints one JSON line.
const net = require('node:net');
const dgram = require('node:dgram');
const { polyio, pair } = require('./helpers');

const PORT = Number(process.argv[2]);
const code = (p) => p.then(() => 'ok', (e) => e.code);

async function main() {
  const out = {};
  const other = await pair();
  const stillEchoes = async () => {
    await other.client.write(Buffer.alloc(1024, 7));
    let n = 0;
    while (n < 1024) n += (await other.peer.read()).length;
    return n === 1024;
  };
  // TCP: the peer is Node's own net (its socket sends nothing to PORT).
  const srv = net.createServer((s) => s.resume());
  await new Promise((r) => srv.listen(PORT, '127.0.0.1', r));
  const conn = await polyio.connect({ host: '127.0.0.1', port: PORT });
  // The failure rejects this write or the next one; then the connection is closed.
  out.writes = [await code(conn.write(Buffer.alloc(1000, 1)))];
  if (out.writes[0] === 'ok') out.writes.push(await code(conn.write(Buffer.alloc(1000, 2))));
  out.readAfter = await code(conn.read());
  out.echoAfterTcp = await stillEchoes();
  conn.destroy();
  srv.close();
  // UDP: each send rejects; the socket stays usable for other destinations.
  const rx = dgram.createSocket('udp4');
  await new Promise((r) => rx.bind(PORT, '127.0.0.1', r));
  const rx2 = dgram.createSocket('udp4');
  await new Promise((r) => rx2.bind(0, '127.0.0.1', r));
  const got = new Promise((r) => rx2.once('message', (m) => r(m.toString())));
  const u = await polyio.bindUdp({ type: 'udp4', address: '127.0.0.1' });
  out.sends = [];
  for (let i = 0; i < 3; i++) out.sends.push(await code(u.send(Buffer.from(`d${i}`), PORT, '127.0.0.1')));
  out.sendElsewhere = await code(u.send(Buffer.from('elsewhere'), rx2.address().port, '127.0.0.1'));
  out.received = await got;
  out.echoAfterUdp = await stillEchoes();
  await u.close();
  rx.close();
  rx2.close();
  other.client.destroy();
  other.peer.destroy();
  await other.server.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
