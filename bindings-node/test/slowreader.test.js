'use strict';
// Slow readers: a writer that ignores backpressure against a peer that accepts and does not
// read (a net server with pauseOnConnect), side by side with net: write()'s return value,
// writableNeedDrain and 'drain' on polyio's Duplex as on a net.Socket; polyio's write
// promises wait once the backlog passes the high-water mark; every byte arrives, in order,
// once the peer reads.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { once } = require('node:events');
const { polyio } = require('./helpers.js');

const CHUNK = 4 << 10;
const COUNT = 4096; // 16 MiB: far more than the kernel buffers hold

/** The i-th chunk: its bytes name its place, so reordering shows. */
const chunk = (i) => Buffer.alloc(CHUNK, i % 251);
const expected = () => Buffer.concat(Array.from({ length: COUNT }, (_, i) => chunk(i)));
const turns = async (n) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 10));
};

/** A net server whose accepted socket reads nothing until `resume()`; collects bytes. */
async function stillPeer() {
  let accepted;
  const got = new Promise((r) => (accepted = r));
  const server = net.createServer({ pauseOnConnect: true }, (s) => accepted(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    async socket() {
      return got;
    },
    /** Starts reading; resolves with every byte once the writer ends. */
    async drain() {
      const s = await got;
      const chunks = [];
      s.on('data', (c) => chunks.push(c));
      s.resume();
      await new Promise((r) => s.on('end', r));
      s.destroy();
      return Buffer.concat(chunks);
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

/** What a stream writer shows when it ignores write()'s return value. */
async function ignoreBackpressure(socket, peer) {
  let drains = 0;
  socket.on('drain', () => drains++);
  const returned = [];
  for (let i = 0; i < COUNT; i++) returned.push(socket.write(chunk(i)));
  const firstFalse = returned.indexOf(false);
  await turns(5);
  const facts = {
    // true while what waits is below the high-water mark, then false from the first
    // false on (nothing was read, so nothing drained).
    returnsTrueThenFalse: firstFalse > 0 && returned.slice(firstFalse).every((r) => r === false),
    needDrainWhileStill: socket.writableNeedDrain,
    drainsWhileStill: drains,
    bufferedWhileStill: socket.writableLength > 0,
  };
  const reading = peer.drain();
  await new Promise((r) => socket.once('drain', r));
  facts.needDrainAfterDrain = socket.writableNeedDrain;
  facts.writableLengthAfterDrain = socket.writableLength;
  socket.end();
  facts.everyByteInOrder = (await reading).equals(expected());
  facts.drains = drains;
  return facts;
}

test('a Duplex that ignores write() returning false behaves as a net.Socket: needDrain, one drain, nothing lost', async () => {
  const results = {};
  for (const kind of ['net', 'polyio']) {
    const peer = await stillPeer();
    const socket =
      kind === 'net'
        ? await new Promise((r) => {
            const s = net.connect(peer.port, '127.0.0.1', () => r(s));
          })
        : (await polyio.connect({ host: '127.0.0.1', port: peer.port })).toDuplex();
    await peer.socket();
    results[kind] = await ignoreBackpressure(socket, peer);
    socket.destroy();
    await peer.close();
  }
  assert.deepEqual(results.polyio, results.net);
  assert.deepEqual(results.net, {
    returnsTrueThenFalse: true,
    needDrainWhileStill: true,
    drainsWhileStill: 0,
    bufferedWhileStill: true,
    needDrainAfterDrain: false,
    writableLengthAfterDrain: 0,
    everyByteInOrder: true,
    drains: 1,
  });
});

test('write promises resolve at once below the high-water mark and wait above it until the peer reads', async () => {
  const peer = await stillPeer();
  const conn = await polyio.connect({ host: '127.0.0.1', port: peer.port });
  await peer.socket();
  const settled = new Array(COUNT).fill(false);
  const writes = [];
  for (let i = 0; i < COUNT; i++) {
    writes.push(conn.write(chunk(i)).then(() => (settled[i] = true)));
  }
  await turns(5);
  const firstPending = settled.indexOf(false);
  assert.ok(firstPending > 0, 'the first writes, taken by the kernel, resolve at once');
  assert.ok(
    settled.slice(firstPending).every((s) => !s),
    'from the first waiting write on, every later one waits too',
  );
  // The backlog: what the kernel did not take, every byte of every waiting write.
  assert.ok(conn.writeQueueSize >= (COUNT - firstPending) * CHUNK, `queue ${conn.writeQueueSize}`);
  const reading = peer.drain();
  await Promise.all(writes);
  assert.ok(conn.writeQueueSize <= 16 << 10, 'the last write resolves at the low-water mark');
  await conn.end();
  assert.ok((await reading).equals(expected()), 'every byte, in order');
  await conn.close();
  await peer.close();
});

test('writeQueueSize counts what the kernel has not taken of a large queued write', async () => {
  const peer = await stillPeer();
  const conn = await polyio.connect({ host: '127.0.0.1', port: peer.port });
  const s = await peer.socket();
  const big = Buffer.alloc(32 << 20, 3);
  const written = conn.write(big);
  await turns(3);
  const before = conn.writeQueueSize;
  assert.ok(before > 0 && before < big.length, `queue ${before}`);
  // The peer reads 2 MiB and stops: the kernel takes that much more of the one queued
  // write, which has not completed.
  let got = 0;
  let stopAt = 2 << 20;
  await new Promise((resolve) => {
    s.on('data', (c) => {
      got += c.length;
      if (got >= stopAt) {
        stopAt = Infinity;
        s.pause();
        resolve();
      }
    });
    s.resume();
  });
  let after = before;
  for (let i = 0; i < 100 && after >= before; i++) {
    await turns(1);
    after = conn.writeQueueSize;
  }
  assert.ok(after < before, `${after} after the peer read, ${before} before`);
  s.resume();
  await written;
  assert.equal(conn.writeQueueSize, 0);
  await conn.end();
  await new Promise((r) => s.on('end', r));
  assert.equal(got, big.length);
  conn.destroy();
  s.destroy();
  await peer.close();
});

test('the pages of a drained write backlog go back to the system', async () => {
  // The writer is a fresh process (nothing freed earlier to reuse), writing the same Buffer
  // 512 times (no garbage of its own): its RSS grows by the backlog's copies, then falls
  // back once the peer (this process) has read them.
  const { spawn } = require('node:child_process');
  const peer = await stillPeer();
  const writerSrc = `
    const polyio = require(${JSON.stringify(require.resolve('..'))});
    const turns = (n) => new Promise((r) => setTimeout(r, 10 * n));
    (async () => {
      const conn = await polyio.connect({ host: '127.0.0.1', port: ${peer.port} });
      const buf = Buffer.alloc(64 << 10, 5);
      await turns(2);
      const before = process.memoryUsage().rss;
      const writes = [];
      for (let i = 0; i < 512; i++) writes.push(conn.write(buf));
      const held = process.memoryUsage().rss - before;
      console.log('held');
      await Promise.all(writes);
      while (conn.writeQueueSize > 0) await turns(1);
      await turns(2);
      const kept = process.memoryUsage().rss - before;
      await conn.end();
      await conn.close();
      console.log(JSON.stringify({ held, kept }));
    })();`;
  const child = spawn(process.execPath, ['-e', writerSrc], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  while (!out.includes('held')) await turns(1);
  const reading = peer.drain();
  assert.equal((await reading).length, 512 * (64 << 10));
  await once(child, 'exit');
  const { held, kept } = JSON.parse(out.split('\n')[1]);
  assert.ok(held > 16 << 20, `the backlog's copies: ${held} bytes`);
  assert.ok(kept < held / 4, `kept ${kept} of ${held} bytes after the backlog drained`);
  await peer.close();
});
