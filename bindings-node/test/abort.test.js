'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { polyio, pair, readAll, settledWithin } = require('./helpers.js');

const isAbortError = (err) => {
  assert.equal(err.name, 'AbortError');
  assert.equal(err.code, 'ABORT_ERR');
  return true;
};

test('abort of a pending read rejects with AbortError and loses no bytes', async () => {
  const { server, client, peer } = await pair();
  const ac = new AbortController();
  const reading = client.read({ signal: ac.signal });
  assert.equal(await settledWithin(reading, 20), 'pending');
  ac.abort(new Error('changed my mind'));
  await assert.rejects(reading, (err) => isAbortError(err) && err.cause.message === 'changed my mind');
  await peer.write('still here');
  await peer.end();
  assert.equal((await readAll(client)).toString(), 'still here');
  await Promise.all([client.close(), peer.close(), server.close()]);
});

test('an already aborted signal rejects at once, and the data stays for the next read', async () => {
  const { server, client, peer } = await pair();
  await peer.write('kept');
  await assert.rejects(client.read({ signal: AbortSignal.abort() }), isAbortError);
  assert.equal((await client.read()).toString(), 'kept');
  await Promise.all([client.close(), peer.close(), server.close()]);
});

test('a read that completes before the abort is not affected', async () => {
  const { server, client, peer } = await pair();
  const ac = new AbortController();
  await peer.write('first');
  await new Promise((r) => setTimeout(r, 10));
  const chunk = await client.read({ signal: ac.signal });
  ac.abort();
  assert.equal(chunk.toString(), 'first');
  await Promise.all([client.close(), peer.close(), server.close()]);
});

test('abort of accept', async () => {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const ac = new AbortController();
  const accepting = server.accept({ signal: ac.signal });
  ac.abort();
  await assert.rejects(accepting, isAbortError);
  // The server still works.
  const c = polyio.connect({ host: '127.0.0.1', port: server.address().port });
  const peer = await server.accept();
  await (await c).close();
  await peer.close();
  await server.close();
});

test('abort of sleep', async () => {
  const ac = new AbortController();
  const t0 = Date.now();
  const sleeping = polyio.sleep(10_000, { signal: ac.signal });
  setTimeout(() => ac.abort(), 10);
  await assert.rejects(sleeping, isAbortError);
  assert.ok(Date.now() - t0 < 5000);
  await assert.rejects(polyio.sleep(10, { signal: AbortSignal.abort() }), isAbortError);
});

test('abort of connect', async () => {
  // A server whose accept queue is full: a further connect stays pending (SYN dropped).
  const server = await polyio.listen({ host: '127.0.0.1', port: 0, backlog: 1 });
  const { port } = server.address();
  const fill = [];
  let pending = null;
  for (let i = 0; i < 16 && !pending; i++) {
    const ac = new AbortController();
    const p = polyio.connect({ host: '127.0.0.1', port, signal: ac.signal });
    if ((await settledWithin(p, 50)) === 'pending') pending = { p, ac };
    else fill.push(await p);
  }
  if (!pending) {
    await assert.rejects(polyio.connect({ host: '127.0.0.1', port, signal: AbortSignal.abort() }), isAbortError);
  } else {
    pending.ac.abort();
    await assert.rejects(pending.p, isAbortError);
  }
  await assert.rejects(polyio.connect({ host: '127.0.0.1', port, signal: AbortSignal.abort() }), isAbortError);
  for (const c of fill) c.destroy();
  await server.close();
});

test('connect timeout rejects with ETIMEDOUT', async (t) => {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0, backlog: 1 });
  const { port } = server.address();
  const fill = [];
  let timedOut = false;
  for (let i = 0; i < 16 && !timedOut; i++) {
    try {
      fill.push(await polyio.connect({ host: '127.0.0.1', port, timeout: 100 }));
    } catch (err) {
      assert.equal(err.code, 'ETIMEDOUT');
      timedOut = true;
    }
  }
  for (const c of fill) c.destroy();
  await server.close();
  if (!timedOut) t.skip('the kernel accepted every connect; no pending connect to time out');
});

test('listen with a signal: aborting closes the server', async () => {
  const ac = new AbortController();
  const server = await polyio.listen({ host: '127.0.0.1', port: 0, signal: ac.signal });
  const accepting = server.accept();
  ac.abort();
  await assert.rejects(accepting, { code: 'ERR_SERVER_NOT_RUNNING' });
  assert.equal(server.closed, true);
  await assert.rejects(polyio.listen({ port: 0, signal: AbortSignal.abort() }), isAbortError);
});

test('abort of a waiting write destroys the connection and rejects with AbortError', async () => {
  const { server, client, peer } = await pair();
  const chunk = Buffer.alloc(64 << 10, 1);
  const ac = new AbortController();
  let waiting = null;
  for (let i = 0; i < 1000 && !waiting; i++) {
    const w = client.write(chunk, { signal: ac.signal });
    if ((await settledWithin(w, 50)) === 'pending') waiting = w;
  }
  assert.ok(waiting, 'a write should wait once the kernel buffers are full');
  ac.abort();
  await assert.rejects(waiting, isAbortError);
  assert.equal(client.closed, true);
  await assert.rejects(client.write('more'), { code: 'ERR_SOCKET_CLOSED' });
  await Promise.all([peer.close(), server.close()]);
});

test('write and end with an aborted signal reject at once and send nothing', async () => {
  const { server, client, peer } = await pair();
  await assert.rejects(client.write('lost', { signal: AbortSignal.abort() }), isAbortError);
  await assert.rejects(client.end({ signal: AbortSignal.abort() }), isAbortError);
  // A write whose signal never fires behaves as a plain one.
  await client.write('kept', { signal: new AbortController().signal });
  await client.end({ signal: new AbortController().signal });
  assert.equal((await readAll(peer)).toString(), 'kept');
  await assert.rejects(client.write('x', { signal: 'nope' }), TypeError);
  await Promise.all([client.close(), peer.close(), server.close()]);
});

test('idle timeout: a read that waits longer rejects with ETIMEDOUT, loses nothing, and the connection stays open', async () => {
  const { server, client, peer } = await pair({ timeout: 80 });
  assert.equal(client.timeout, 80);
  const t0 = Date.now();
  await assert.rejects(client.read(), { code: 'ETIMEDOUT' });
  assert.ok(Date.now() - t0 >= 70, `timed out after ${Date.now() - t0} ms`);
  assert.equal(client.closed, false);
  await peer.write('late');
  assert.equal((await client.read()).toString(), 'late');
  client.setTimeout(0);
  assert.equal(await settledWithin(client.read(), 150), 'pending');
  assert.throws(() => client.setTimeout(-1), RangeError);
  assert.throws(() => client.setTimeout('1'), TypeError);
  await Promise.all([client.close(), peer.close(), server.close()]);
});
