'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { polyio, pair, readAll, sha256, pattern } = require('./helpers.js');

test('echo of 1 B to 16 MiB arrives intact (sha256)', async () => {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.address();
  const serving = (async () => {
    for await (const conn of server) {
      (async () => {
        for await (const chunk of conn) await conn.write(chunk);
        await conn.end();
        await conn.close();
      })();
    }
  })();
  for (const size of [1, 100, 1024, 65536, 65537, 1 << 20, 16 << 20]) {
    const data = pattern(size, size);
    const conn = await polyio.connect({ host: '127.0.0.1', port, noDelay: true });
    const [got] = await Promise.all([
      readAll(conn),
      (async () => {
        for (let i = 0; i < data.length; i += 256 << 10) await conn.write(data.subarray(i, i + (256 << 10)));
        await conn.end();
      })(),
    ]);
    assert.equal(got.length, size);
    assert.equal(sha256(got), sha256(data), `echo of ${size} bytes`);
    await conn.close();
  }
  await server.close();
  await serving;
});

test('strings and Uint8Arrays are written as bytes', async () => {
  const { server, client, peer } = await pair();
  await client.write('héllo ');
  await client.write(new Uint8Array([119, 111, 114, 108, 100]));
  await client.end();
  assert.equal((await readAll(peer)).toString(), 'héllo world');
  await Promise.all([client.close(), peer.close(), server.close()]);
});

test('half-close: the peer reads EOF and can still answer', async () => {
  const { server, client, peer } = await pair();
  await client.write('question');
  await client.end();
  assert.equal((await readAll(peer)).toString(), 'question');
  await peer.write('answer');
  await peer.end();
  assert.equal((await readAll(client)).toString(), 'answer');
  // Both directions ended: each side closed itself (it no longer keeps the process alive).
  assert.equal(client.closed, true);
  assert.equal(peer.closed, true);
  await assert.rejects(client.write('more'), { code: 'ERR_STREAM_WRITE_AFTER_END' });
  await Promise.all([client.close(), peer.close(), server.close()]);
});

test('addresses, setNoDelay, setKeepAlive', async () => {
  const { server, port, client, peer } = await pair({ keepAlive: true });
  assert.deepEqual(server.address(), { address: '127.0.0.1', family: 'IPv4', port });
  assert.equal(client.remoteAddress, '127.0.0.1');
  assert.equal(client.remotePort, port);
  assert.equal(client.remoteFamily, 'IPv4');
  assert.equal(peer.localPort, port);
  assert.equal(peer.remotePort, client.localPort);
  assert.equal(client.localAddress, '127.0.0.1');
  client.setNoDelay();
  client.setNoDelay(false);
  client.setKeepAlive(true, 5000);
  client.setKeepAlive(false);
  client.destroy();
  assert.equal(client.closed, true);
  assert.equal(client.remoteAddress, undefined);
  await assert.rejects(client.read(), { code: 'ERR_SOCKET_CLOSED' });
  await assert.rejects(client.write('x'), { code: 'ERR_SOCKET_CLOSED' });
  await peer.close();
  await server.close();
  assert.equal(server.address(), null);
});

test('refused connect rejects with ECONNREFUSED', async () => {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.address();
  await server.close();
  await assert.rejects(polyio.connect({ host: '127.0.0.1', port }), (err) => {
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal(err.errno, -111);
    assert.equal(err.syscall, 'connect');
    return true;
  });
});

test('listen on a port in use rejects with EADDRINUSE', async () => {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  await assert.rejects(polyio.listen({ host: '127.0.0.1', port: server.address().port }), { code: 'EADDRINUSE' });
  await server.close();
});

test('a peer that resets gives ECONNRESET', async () => {
  const { server, client, peer } = await pair();
  // Unread data at close makes the kernel send RST.
  await peer.write('x');
  await client.write('unread');
  await new Promise((r) => setTimeout(r, 20));
  peer.destroy();
  await new Promise((r) => setTimeout(r, 20));
  await assert.rejects(
    (async () => {
      for (;;) if ((await client.read()) === null) throw new Error('EOF instead of a reset');
    })(),
    { code: 'ECONNRESET' },
  );
  client.destroy();
  await server.close();
});

test('interoperates with node:net both ways', async () => {
  const netServer = net.createServer((s) => s.pipe(s));
  await new Promise((r) => netServer.listen(0, '127.0.0.1', r));
  const conn = await polyio.connect({ host: '127.0.0.1', port: netServer.address().port });
  await conn.write('via net');
  await conn.end();
  assert.equal((await readAll(conn)).toString(), 'via net');
  await conn.close();
  await new Promise((r) => netServer.close(r));

  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const sock = net.connect(server.address().port, '127.0.0.1');
  const peer = await server.accept();
  sock.end('from net');
  assert.equal((await readAll(peer)).toString(), 'from net');
  await peer.close();
  await server.close();
});

test('pending accepts reject with ERR_SERVER_NOT_RUNNING on close and the iterator ends', async () => {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const pending = server.accept();
  const iterated = (async () => {
    const got = [];
    for await (const c of server) got.push(c);
    return got;
  })();
  await server.close();
  await assert.rejects(pending, { code: 'ERR_SERVER_NOT_RUNNING' });
  assert.deepEqual(await iterated, []);
  await assert.rejects(server.accept(), { code: 'ERR_SERVER_NOT_RUNNING' });
});

test('close() waits for queued writes; pending reads reject with ERR_SOCKET_CLOSED', async () => {
  const { server, client, peer } = await pair();
  const reading = assert.rejects(client.read(), { code: 'ERR_SOCKET_CLOSED' });
  const big = pattern(4 << 20);
  const w = client.write(big);
  const closing = client.close();
  const got = await readAll(peer);
  await reading;
  await closing;
  await w;
  assert.equal(sha256(got), sha256(big));
  await peer.close();
  await server.close();
});

test('Symbol.asyncDispose closes connections and servers', async () => {
  const { server, client, peer } = await pair();
  await client[Symbol.asyncDispose]();
  assert.equal(client.closed, true);
  assert.equal(await peer.read(), null);
  await peer[Symbol.asyncDispose]();
  await server[Symbol.asyncDispose]();
  assert.equal(server.closed, true);
});

test('sleep waits about as long as asked', async () => {
  const t0 = Date.now();
  await polyio.sleep(30);
  assert.ok(Date.now() - t0 >= 29);
  await polyio.sleep(0);
});

test('a write the kernel takes at once settles at once, with no operation and no loop turn', async () => {
  const { server, client, peer } = await pair();
  await client.write('x'); // the first write learns that the socket is writable
  const before = polyio.__stats();
  for (let i = 0; i < 9; i++) await client.write('x');
  const after = polyio.__stats();
  assert.equal(after.completions, before.completions, JSON.stringify({ before, after }));
  assert.equal(after.turns, before.turns, 'no turn was needed to settle them');
  assert.equal((await readAll((await client.end(), peer))).toString(), 'x'.repeat(10));
  await Promise.all([client.close(), peer.close(), server.close()]);
});

test('async iteration: chunks until EOF; break leaves the connection open; ends once closed', async () => {
  const { server, client, peer } = await pair();
  await client.write('one');
  const it = peer[Symbol.asyncIterator]();
  assert.equal(it[Symbol.asyncIterator](), it);
  const first = await it.next();
  assert.equal(first.done, false);
  assert.equal(first.value.toString(), 'one');
  // Leaving a for-await early calls return(): the connection stays usable.
  await client.write('two');
  for await (const chunk of peer) {
    assert.equal(chunk.toString(), 'two');
    break;
  }
  assert.equal(peer.closed, false);
  await client.write('2');
  assert.equal((await peer.read()).toString(), '2');
  await client.write('three');
  await client.end();
  const rest = [];
  for await (const chunk of peer) rest.push(chunk.toString());
  assert.deepEqual(rest, ['three']);
  assert.deepEqual(await it.next(), { value: undefined, done: true });
  // A closed connection ends iteration rather than throwing, and so does a read pending at close.
  const { client: c2, peer: p2, server: s2 } = await pair();
  const pending = p2[Symbol.asyncIterator]().next();
  await p2.close();
  assert.deepEqual(await pending, { value: undefined, done: true });
  assert.deepEqual(await p2[Symbol.asyncIterator]().next(), { value: undefined, done: true });
  await Promise.all([client.close(), peer.close(), server.close(), c2.close(), s2.close()]);
});

test('listen without a host takes every address, IPv4 and IPv6, as net does', async () => {
  const server = await polyio.listen({ port: 0 });
  const { address, port, family } = server.address();
  assert.ok(address === '::' || address === '0.0.0.0', address);
  const accepted = server.accept();
  const client = await polyio.connect({ host: '127.0.0.1', port });
  const peer = await accepted;
  await client.write('v4');
  assert.equal((await peer.read()).toString(), 'v4');
  await Promise.all([client.close(), peer.close()]);
  if (family === 'IPv6') {
    const accepted6 = server.accept();
    const c6 = await polyio.connect({ host: '::1', port });
    const p6 = await accepted6;
    assert.equal(c6.remoteFamily, 'IPv6');
    await Promise.all([c6.close(), p6.close()]);
  }
  await server.close();
});

test('small reads are views into a shared pool; earlier chunks keep their bytes; a detached pool is replaced', async () => {
  const { server, client, peer } = await pair();
  const chunks = [];
  for (let i = 0; i < 40; i++) {
    await client.write(Buffer.alloc(100 + i, i));
    const c = await peer.read();
    chunks.push(c);
  }
  // Several small chunks share one ArrayBuffer (as Buffer.allocUnsafe's pool), and none was
  // overwritten by a later read.
  assert.ok(new Set(chunks.map((c) => c.buffer)).size < chunks.length);
  chunks.forEach((c, i) => assert.ok(c.length === 100 + i && c.every((b) => b === i), `chunk ${i}`));
  // A user may transfer (detach) the pool's ArrayBuffer: later reads must still arrive intact.
  structuredClone(chunks[chunks.length - 1].buffer, { transfer: [chunks[chunks.length - 1].buffer] });
  await client.write('after');
  assert.equal((await peer.read()).toString(), 'after');
  // Large reads get a Buffer of their own.
  const big = Buffer.alloc(60000, 9);
  await client.write(big);
  let got = 0;
  while (got < big.length) {
    const c = await peer.read();
    assert.ok(c.every((b) => b === 9));
    got += c.length;
  }
  await Promise.all([client.close(), peer.close(), server.close()]);
});
