'use strict';
// UDP: bindUdp() and UdpSocket, compared with Node's own dgram doing the same.
const test = require('node:test');
const assert = require('node:assert/strict');
const dgram = require('node:dgram');
const { once } = require('node:events');
const { polyio } = require('./helpers.js');

/** A dgram socket bound on 127.0.0.1 (or ::1), with its messages queued. */
async function dgramPeer(type = 'udp4') {
  const s = dgram.createSocket(type);
  const queue = [];
  const waiters = [];
  s.on('message', (data, rinfo) => {
    const m = { data, ...rinfo };
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1');
  await once(s, 'listening');
  const next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
  const send = (data, port, address) =>
    new Promise((resolve, reject) => s.send(data, port, address, (err, n) => (err ? reject(err) : resolve(n))));
  return { s, next, send, port: s.address().port, close: () => new Promise((r) => s.close(r)) };
}

/** The error a synchronous call throws (or a promise rejects with), as `{ name, code }`. */
async function errorOf(fn) {
  try {
    await fn();
  } catch (e) {
    return { name: e.name, code: e.code };
  }
  return null;
}

test('datagrams both ways carry the sender address, as dgram reports it', async () => {
  const sock = await polyio.bindUdp({ type: 'udp4', address: '127.0.0.1' });
  const peer = await dgramPeer();
  const me = sock.address();
  assert.deepEqual(Object.keys(me).sort(), ['address', 'family', 'port']);
  assert.equal(me.address, '127.0.0.1');
  assert.equal(me.family, 'IPv4');
  assert.equal(await peer.send('hello', me.port, '127.0.0.1'), 5);
  const m = await sock.recv();
  assert.ok(Buffer.isBuffer(m.data));
  assert.equal(m.data.toString(), 'hello');
  assert.deepEqual({ address: m.address, family: m.family, port: m.port, size: m.size }, {
    address: '127.0.0.1',
    family: 'IPv4',
    port: peer.port,
    size: 5,
  });
  assert.equal(await sock.send(Buffer.from('back'), peer.port, '127.0.0.1'), 4);
  assert.equal(await sock.send('str', peer.port), 3); // address defaults to loopback
  assert.equal(await sock.send(new Uint8Array([1, 2]), peer.port, 'localhost'), 2);
  const back = await peer.next();
  assert.equal(back.data.toString(), 'back');
  // What dgram's rinfo says about us is what address() says.
  assert.deepEqual({ address: back.address, family: back.family, port: back.port }, me);
  assert.equal((await peer.next()).data.toString(), 'str');
  assert.deepEqual([...(await peer.next()).data], [1, 2]);
  await sock.close();
  await peer.close();
});

test('the async iterator yields every datagram of one sender in order and ends at close', async () => {
  const sock = await polyio.bindUdp({ type: 'udp4', address: '127.0.0.1' });
  const peer = await dgramPeer();
  const { port } = sock.address();
  const got = [];
  const reading = (async () => {
    for await (const { data, port: from } of sock) {
      assert.equal(from, peer.port);
      got.push(data.toString());
    }
  })();
  for (let i = 0; i < 50; i++) {
    await peer.send(`m${i}`, port, '127.0.0.1');
    if (i % 10 === 9) await new Promise((r) => setImmediate(r));
  }
  while (got.length < 50) await new Promise((r) => setTimeout(r, 5));
  await sock.close();
  await reading;
  assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `m${i}`));
  await peer.close();
});

test('an aborted receive takes no datagram; close rejects pending receives', async () => {
  const sock = await polyio.bindUdp({ type: 'udp4', address: '127.0.0.1' });
  const peer = await dgramPeer();
  const ac = new AbortController();
  const first = sock.recv({ signal: ac.signal });
  ac.abort();
  await assert.rejects(first, (e) => e.name === 'AbortError' && e.code === 'ABORT_ERR');
  await assert.rejects(sock.recv({ signal: AbortSignal.abort() }), (e) => e.code === 'ABORT_ERR');
  await peer.send('kept', sock.address().port, '127.0.0.1');
  assert.equal((await sock.recv()).data.toString(), 'kept');
  const pending = sock.recv();
  await sock.close();
  await assert.rejects(pending, (e) => e.code === 'ERR_SOCKET_DGRAM_NOT_RUNNING');
  assert.equal(sock.closed, true);
  await sock.close(); // twice is harmless
  await peer.close();
});

test('errors match dgram: closed, connected twice, not connected, bad type, address in use', async () => {
  // dgram's answers.
  const d = dgram.createSocket('udp4');
  d.bind(0, '127.0.0.1');
  await once(d, 'listening');
  const dport = d.address().port;
  const theirs = {
    notConnected: await errorOf(() => d.remoteAddress()),
    ttl0: await errorOf(() => d.setTTL(0)),
  };
  d.connect(9, '127.0.0.1');
  await once(d, 'connect');
  theirs.connectTwice = await errorOf(() => d.connect(9, '127.0.0.1'));
  const d2 = dgram.createSocket('udp4');
  d2.bind(dport, '127.0.0.1');
  const [inUse] = await once(d2, 'error');
  theirs.inUse = inUse.code;
  theirs.badType = await errorOf(() => dgram.createSocket('udp5'));
  await new Promise((r) => d.close(r));
  theirs.closed = await errorOf(() => d.send('x', 9, '127.0.0.1'));

  // Ours.
  const p = await polyio.bindUdp({ type: 'udp4', address: '127.0.0.1' });
  const pport = p.address().port;
  const ours = {
    notConnected: await errorOf(() => p.remoteAddress()),
    ttl0: await errorOf(() => p.setTTL(0)),
  };
  await p.connect(9, '127.0.0.1');
  assert.deepEqual(p.remoteAddress(), { address: '127.0.0.1', family: 'IPv4', port: 9 });
  ours.connectTwice = await errorOf(() => p.connect(9, '127.0.0.1'));
  ours.inUse = (await errorOf(() => polyio.bindUdp({ type: 'udp4', address: '127.0.0.1', port: pport }))).code;
  ours.badType = await errorOf(() => polyio.bindUdp({ type: 'udp5' }));
  await p.close();
  ours.closed = await errorOf(() => p.send('x', 9, '127.0.0.1'));
  assert.deepEqual(ours, theirs);
  assert.equal(ours.inUse, 'EADDRINUSE');
  assert.throws(() => p.address(), (e) => e.code === 'ERR_SOCKET_DGRAM_NOT_RUNNING');
});

test('a connected socket sends to its peer, ignores other senders, and gets ECONNREFUSED as dgram does', async () => {
  const peer = await dgramPeer();
  const other = await dgramPeer();
  const sock = await polyio.bindUdp({ type: 'udp4', address: '127.0.0.1' });
  await sock.connect(peer.port, '127.0.0.1');
  const { port } = sock.address();
  await other.send('stranger', port, '127.0.0.1');
  await peer.send('friend', port, '127.0.0.1');
  const m = await sock.recv();
  assert.equal(m.data.toString(), 'friend');
  assert.equal(await sock.send('reply'), 5);
  assert.equal((await peer.next()).data.toString(), 'reply');
  await assert.rejects(sock.send('x', peer.port), (e) => e.code === 'ERR_SOCKET_DGRAM_IS_CONNECTED');
  sock.disconnect();
  assert.throws(() => sock.disconnect(), (e) => e.code === 'ERR_SOCKET_DGRAM_NOT_CONNECTED');

  // A port nobody listens on: dgram's connected socket emits ECONNREFUSED from recvmsg.
  const deadPort = await (async () => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    const p = s.address().port;
    await new Promise((r) => s.close(r));
    return p;
  })();
  const d = dgram.createSocket('udp4');
  d.connect(deadPort, '127.0.0.1');
  await once(d, 'connect');
  d.send('anyone?');
  const [theirs] = await once(d, 'error');
  d.close();
  await sock.connect(deadPort, '127.0.0.1');
  const receiving = sock.recv();
  await sock.send('anyone?');
  const ours = await errorOf(() => receiving);
  assert.equal(theirs.code, 'ECONNREFUSED');
  assert.deepEqual(ours, { name: 'Error', code: theirs.code });
  await sock.close();
  await peer.close();
  await other.close();
});

test('broadcast needs setBroadcast, as in dgram; the options return what they set', async () => {
  const d = dgram.createSocket('udp4');
  d.bind(0, '0.0.0.0');
  await once(d, 'listening');
  const theirs = await new Promise((r) => d.send('b', 9, '255.255.255.255', (e) => r(e && e.code)));
  d.close();
  const sock = await polyio.bindUdp({ type: 'udp4' });
  const ours = await errorOf(() => sock.send('b', 9, '255.255.255.255'));
  assert.equal(ours.code, theirs);
  sock.setBroadcast(true);
  assert.equal(sock.setTTL(17), 17);
  assert.equal(sock.setMulticastTTL(3), 3);
  assert.equal(sock.setMulticastLoopback(false), false);
  // Joining needs a multicast route, which some sandboxes lack; when it works, so does leaving.
  try {
    sock.addMembership('239.255.0.11', '127.0.0.1');
    sock.dropMembership('239.255.0.11', '127.0.0.1');
  } catch (e) {
    assert.ok(typeof e.code === 'string');
  }
  assert.throws(() => sock.addMembership('not an address'), (e) => e.code === 'EINVAL');
  await sock.close();
});

test('IPv6 datagrams carry IPv6 addresses', async (t) => {
  let peer;
  try {
    peer = await dgramPeer('udp6');
  } catch {
    t.skip('no IPv6 loopback');
    return;
  }
  const sock = await polyio.bindUdp({ type: 'udp6', address: '::1', ipv6Only: true });
  const me = sock.address();
  assert.deepEqual({ address: me.address, family: me.family }, { address: '::1', family: 'IPv6' });
  await peer.send('six', me.port, '::1');
  const m = await sock.recv();
  assert.deepEqual({ data: m.data.toString(), address: m.address, family: m.family, port: m.port }, {
    data: 'six',
    address: '::1',
    family: 'IPv6',
    port: peer.port,
  });
  await sock.send('back', peer.port);
  const back = await peer.next();
  assert.deepEqual({ address: back.address, family: back.family, port: back.port }, me);
  await sock[Symbol.asyncDispose]();
  assert.equal(sock.closed, true);
  await peer.close();
});

test('an open socket keeps the process alive; a closed one lets it exit', async () => {
  const { execFileSync } = require('node:child_process');
  const script = `
    const polyio = require(${JSON.stringify(require.resolve('..'))});
    (async () => {
      const s = await polyio.bindUdp({ type: 'udp4', address: '127.0.0.1' });
      setTimeout(() => s.close(), 50);
      for await (const _ of s) {}
      console.log('ended');
    })();`;
  const out = execFileSync(process.execPath, ['-e', script], { timeout: 20000 }).toString();
  assert.equal(out.trim(), 'ended');
});
