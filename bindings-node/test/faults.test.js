'use strict';
// Faults from outside (docs/reliability.md): a peer that trickles a byte at a time, and sends
// the kernel refuses (ENOBUFS, forced by tests/faults/inject.c under LD_PRELOAD in a child).
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const { polyio, pair } = require('./helpers');

const TRICKLE = Buffer.from('trickle!');
// Milliseconds between the trickled bytes (POLYIO_TRICKLE_MS=1000: one a second).
const GAP = Number(process.env.POLYIO_TRICKLE_MS || 100);

test('a trickling peer: every byte in order, timed-out reads lose none, others keep serving', async () => {
  let start;
  const started = new Promise((r) => { start = r; });
  const srv = net.createServer(async (s) => {
    await started;
    for (const b of TRICKLE) {
      await new Promise((r) => setTimeout(r, GAP));
      s.write(Buffer.from([b]));
    }
    s.end();
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const other = await pair();
  const conn = await polyio.connect({ host: '127.0.0.1', port: srv.address().port });
  // Nothing sent yet: an abort rejects with Node's AbortError, the idle timeout with ETIMEDOUT.
  await assert.rejects(conn.read({ signal: AbortSignal.timeout(GAP / 4) }), { code: 'ABORT_ERR', name: 'AbortError' });
  conn.setTimeout(GAP / 4);
  await assert.rejects(conn.read(), { code: 'ETIMEDOUT' });
  conn.setTimeout(0);
  start();
  const got = [];
  let aborted = 0;
  for (let i = 0; ; i++) {
    // Every other read gives up after GAP / 2: it rejects between bytes, or takes one.
    const read = conn.read(i % 2 ? { signal: AbortSignal.timeout(GAP / 2) } : undefined);
    await other.client.write(Buffer.from('ping'));
    assert.deepEqual(await other.peer.read(), Buffer.from('ping'));
    let chunk;
    try {
      chunk = await read;
    } catch (e) {
      assert.equal(e.code, 'ABORT_ERR');
      aborted++;
      continue;
    }
    if (chunk === null) break;
    got.push(chunk);
  }
  assert.deepEqual(Buffer.concat(got), TRICKLE);
  assert.ok(aborted > 0, 'some reads gave up between bytes');
  await conn.close();
  other.client.destroy();
  other.peer.destroy();
  await other.server.close();
  srv.close();
});

/** The interposer: POLYIO_INJECT_SO (the Makefile builds it), else built here. */
function injectLibrary() {
  if (process.env.POLYIO_INJECT_SO) return process.env.POLYIO_INJECT_SO;
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'polyio-inject-')), 'libpolyio_inject.so');
  const src = path.join(__dirname, '..', '..', 'tests', 'faults', 'inject.c');
  execFileSync('cc', ['-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-o', out, src, '-ldl']);
  return out;
}

test('ENOBUFS on a write and a send rejects with code ENOBUFS; others keep serving', async () => {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const port = srv.address().port;
  await new Promise((r) => srv.close(r));
  const p = spawnSync(process.execPath, [path.join(__dirname, 'send_errors_child.js'), String(port)], {
    env: { ...process.env, LD_PRELOAD: injectLibrary(), POLYIO_INJECT_ERRNO: 'ENOBUFS', POLYIO_INJECT_PORT: String(port) },
    encoding: 'utf8',
    timeout: 60000,
  });
  assert.equal(p.status, 0, p.stderr.slice(-4000));
  assert.match(p.stderr, /inject: /, 'the interposer failed no send');
  const out = JSON.parse(p.stdout.trim().split('\n').pop());
  // The write that failed, or the one after it, rejects; the connection is then closed
  // (as a net.Socket destroys itself on a write error) and a read rejects with the same.
  assert.equal(out.writes.at(-1), 'ENOBUFS', JSON.stringify(out));
  assert.equal(out.readAfter, 'ENOBUFS', JSON.stringify(out));
  assert.deepEqual(out.sends, ['ENOBUFS', 'ENOBUFS', 'ENOBUFS']);
  assert.equal(out.sendElsewhere, 'ok');
  assert.equal(out.received, 'elsewhere');
  assert.equal(out.echoAfterTcp, true);
  assert.equal(out.echoAfterUdp, true);
});
