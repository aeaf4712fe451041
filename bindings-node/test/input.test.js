'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { polyio, pair } = require('./helpers.js');

test('connect: bad options reject with TypeError / RangeError', async () => {
  await assert.rejects(polyio.connect(), TypeError);
  await assert.rejects(polyio.connect(42), TypeError);
  await assert.rejects(polyio.connect({}), TypeError);
  await assert.rejects(polyio.connect({ port: {} }), TypeError);
  await assert.rejects(polyio.connect({ port: -1 }), { name: 'RangeError', code: 'ERR_SOCKET_BAD_PORT' });
  await assert.rejects(polyio.connect({ port: 0 }), RangeError);
  await assert.rejects(polyio.connect({ port: 65536 }), RangeError);
  await assert.rejects(polyio.connect({ port: 1.5 }), RangeError);
  await assert.rejects(polyio.connect({ port: NaN }), RangeError);
  await assert.rejects(polyio.connect({ port: 'http' }), RangeError);
  await assert.rejects(polyio.connect({ port: 80, host: 7 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(polyio.connect({ port: 80, host: '' }), TypeError);
  await assert.rejects(polyio.connect({ port: 80, host: 'a\0b' }), TypeError);
  await assert.rejects(polyio.connect({ port: 80, noDelay: 'yes' }), TypeError);
  await assert.rejects(polyio.connect({ port: 80, timeout: -1 }), RangeError);
  await assert.rejects(polyio.connect({ port: 80, timeout: Infinity }), RangeError);
  await assert.rejects(polyio.connect({ port: 80, signal: {} }), TypeError);
  await assert.rejects(polyio.connect({ port: 80, signal: 'abort' }), TypeError);
});

test('connect: an unknown host rejects with ENOTFOUND', async () => {
  await assert.rejects(polyio.connect({ host: 'no-such-host.invalid', port: 80 }), { code: 'ENOTFOUND' });
});

test('listen: bad options reject with TypeError / RangeError', async () => {
  await assert.rejects(polyio.listen('x'), TypeError);
  await assert.rejects(polyio.listen({ port: 70000 }), RangeError);
  await assert.rejects(polyio.listen({ port: -5 }), RangeError);
  await assert.rejects(polyio.listen({ backlog: -1 }), RangeError);
  await assert.rejects(polyio.listen({ reusePort: 1 }), TypeError);
  await assert.rejects(polyio.listen({ host: null, port: 'x' }), RangeError);
});

test('sleep: bad input', async () => {
  await assert.rejects(polyio.sleep(), TypeError);
  await assert.rejects(polyio.sleep('10'), TypeError);
  await assert.rejects(polyio.sleep(-1), RangeError);
  await assert.rejects(polyio.sleep(NaN), RangeError);
  await assert.rejects(polyio.sleep(10, 'x'), TypeError);
  await assert.rejects(polyio.sleep(10, { signal: 1 }), TypeError);
});

test('connection methods: bad input gives TypeError / RangeError, never a crash', async () => {
  const { server, client, peer } = await pair();
  for (const bad of [undefined, null, 42, {}, [1, 2], Symbol('x'), () => {}]) {
    await assert.rejects(client.write(bad), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  }
  await assert.rejects(client.read(5), TypeError);
  await assert.rejects(client.read({ signal: 5 }), TypeError);
  await assert.rejects(server.accept('x'), TypeError);
  assert.throws(() => client.setNoDelay('yes'), TypeError);
  assert.throws(() => client.setKeepAlive('yes'), TypeError);
  assert.throws(() => client.setKeepAlive(true, -1), RangeError);
  assert.throws(() => client.setKeepAlive(true, 'x'), TypeError);
  assert.throws(() => new polyio.Connection(), Error);
  assert.throws(() => new polyio.Server(), Error);
  // Methods called on the wrong receiver throw instead of crashing.
  assert.throws(() => polyio.Connection.prototype.read.call({}), Error);
  assert.throws(() => polyio.Server.prototype.accept.call(client), Error);
  // Still usable after all that.
  await client.write('ok');
  assert.equal((await peer.read()).toString(), 'ok');
  await Promise.all([client.close(), peer.close(), server.close()]);
});
