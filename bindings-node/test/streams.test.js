'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { pipeline } = require('node:stream/promises');
const { Transform, Readable } = require('node:stream');
const { polyio, pair, readAll, sha256, pattern, settledWithin } = require('./helpers.js');

test('backpressure: writes wait while the peer does not read, then resume', async () => {
  const { server, client, peer } = await pair();
  const chunk = Buffer.alloc(64 << 10, 7);
  let written = 0;
  let blocked = null;
  for (let i = 0; i < 1000; i++) {
    const w = client.write(chunk);
    if ((await settledWithin(w, 50)) === 'pending') {
      blocked = w;
      break;
    }
    written += chunk.length;
  }
  assert.ok(blocked, 'a write promise should wait once the kernel buffers are full');
  assert.ok(client.writeQueueSize >= 64 << 10, `queue ${client.writeQueueSize}`);
  assert.equal(await settledWithin(blocked, 100), 'pending');
  // The peer starts reading: the waiting write resumes.
  const reading = readAll(peer);
  await blocked;
  written += chunk.length;
  await client.end();
  const got = await reading;
  assert.equal(got.length, written);
  await Promise.all([client.close(), peer.close(), server.close()]);
});

test('pipeline() through toDuplex(): an uppercasing echo server', async () => {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const serving = (async () => {
    const conn = await server.accept();
    const d = conn.toDuplex();
    await pipeline(
      d,
      new Transform({
        transform(chunk, _enc, cb) {
          cb(null, Buffer.from(chunk.toString('latin1').toUpperCase(), 'latin1'));
        },
      }),
      d,
    );
  })();
  const client = await polyio.connect({ host: '127.0.0.1', port: server.address().port });
  const cd = client.toDuplex();
  const text = 'abc'.repeat(200_000);
  const out = [];
  await pipeline(Readable.from([Buffer.from(text)]), cd);
  for await (const chunk of cd) out.push(chunk);
  assert.equal(Buffer.concat(out).toString(), text.toUpperCase());
  await serving;
  await server.close();
});

test('pipeline() of 8 MiB through a polyio echo, checksummed', async () => {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const serving = (async () => {
    const conn = await server.accept();
    const d = conn.toDuplex();
    await pipeline(d, d);
  })();
  const client = await polyio.connect({ host: '127.0.0.1', port: server.address().port });
  const data = pattern(8 << 20, 3);
  const [, got] = await Promise.all([
    (async () => {
      for (let i = 0; i < data.length; i += 1 << 20) await client.write(data.subarray(i, i + (1 << 20)));
      await client.end();
    })(),
    readAll(client),
  ]);
  assert.equal(sha256(got), sha256(data));
  await serving;
  await client.close();
  await server.close();
});
