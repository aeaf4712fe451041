'use strict';
// Unix domain sockets: connect({ path }) and listen({ path }), compared with `net` on a path.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { polyio, readAll, sha256, pattern } = require('./helpers.js');

/** A fresh directory for socket files, removed after the test. */
function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyio-node-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let abstractN = 0;
const abstractName = () => `\0polyio-node-${process.pid}-${abstractN++}`;

/** A `net` echo server on `where` (a path), closed after the test. */
async function netEcho(t, where) {
  const server = net.createServer((s) => s.pipe(s));
  server.listen({ path: where });
  await once(server, 'listening');
  t.after(() => server.close());
  return server;
}

/** A polyio echo server on `where`; `done` settles once it is closed. */
async function polyioEcho(where) {
  const server = await polyio.listen({ path: where });
  const done = (async () => {
    for await (const conn of server) {
      (async () => {
        for await (const chunk of conn) await conn.write(chunk);
        await conn.end();
        await conn.close();
      })();
    }
  })();
  return { server, done };
}

/** Sends `data` over a net client on `where` and returns what came back. */
async function netRoundTrip(where, data) {
  const c = net.connect({ path: where });
  await once(c, 'connect');
  const chunks = [];
  c.on('data', (d) => chunks.push(d));
  c.end(data);
  await once(c, 'close');
  return Buffer.concat(chunks);
}

test('a polyio client echoes through a net server, a net client through a polyio server', async (t) => {
  const dir = tempDir(t);
  const data = pattern(1 << 20, 9);
  const viaNet = path.join(dir, 'net.sock');
  await netEcho(t, viaNet);
  const conn = await polyio.connect({ path: viaNet });
  const [got] = await Promise.all([readAll(conn), conn.write(data).then(() => conn.end())]);
  assert.equal(sha256(got), sha256(data));
  await conn.close();

  const viaPolyio = path.join(dir, 'polyio.sock');
  const { server, done } = await polyioEcho(viaPolyio);
  assert.equal(sha256(await netRoundTrip(viaPolyio, data)), sha256(data));
  await server.close();
  await done;
});

// Node 20's net binds and connects an abstract name padded with NULs to all 108 bytes of
// sun_path (libuv before uv_pipe_bind2), so it cannot meet a peer that uses the name's own
// length (polyio, Python, Rust's std, libuv's uv_pipe_connect2): polyio meets polyio here.
test('abstract names: echo, the name as the address, refused once closed', async () => {
  const name = abstractName();
  const { server, done } = await polyioEcho(name);
  assert.equal(server.address(), name);
  const data = pattern(256 << 10, 3);
  const conn = await polyio.connect({ path: name });
  const [got] = await Promise.all([readAll(conn), conn.write(data).then(() => conn.end())]);
  assert.equal(sha256(got), sha256(data));
  await conn.close();
  await server.close();
  await done;
  await assert.rejects(polyio.connect({ path: name }), { code: 'ECONNREFUSED', syscall: 'connect' });
});

test('addresses are what net gives for pipes', async (t) => {
  const where = path.join(tempDir(t), 'addr.sock');
  const netServer = net.createServer();
  netServer.listen({ path: where });
  await once(netServer, 'listening');
  const expected = netServer.address();
  netServer.close();
  await once(netServer, 'close');

  const server = await polyio.listen({ path: where });
  assert.equal(server.address(), expected);
  assert.equal(server.address(), where);
  const accepted = server.accept();
  const client = await polyio.connect({ path: where });
  const peer = await accepted;
  for (const c of [client, peer]) {
    assert.equal(c.remoteAddress, undefined);
    assert.equal(c.remotePort, undefined);
    assert.equal(c.remoteFamily, undefined);
    assert.equal(c.localAddress, undefined);
    assert.equal(c.localPort, undefined);
    // TCP options are no-ops on a pipe, as in net.
    c.setNoDelay(true);
    c.setKeepAlive(true, 1000);
  }
  await Promise.all([client.close(), peer.close(), server.close()]);
  assert.equal(server.address(), null);
});

test('errors carry the codes net gives: ENOENT, ECONNREFUSED, EADDRINUSE', async (t) => {
  const dir = tempDir(t);
  const netError = async (start) => {
    const [err] = await once(start(), 'error');
    return { code: err.code, errno: err.errno, syscall: err.syscall, address: err.address };
  };
  const missing = path.join(dir, 'missing.sock');
  const plain = path.join(dir, 'plain');
  fs.writeFileSync(plain, 'x');
  const dead = path.join(dir, 'dead.sock');
  // A socket file nobody listens on: a second name for a net server's socket, which stays
  // when the server closes (and removes its own name).
  const s = net.createServer();
  s.listen({ path: path.join(dir, 'live.sock') });
  await once(s, 'listening');
  fs.linkSync(path.join(dir, 'live.sock'), dead);
  s.close();
  await once(s, 'close');
  assert.ok(fs.statSync(dead).isSocket());
  for (const where of [missing, plain, dead]) {
    const expected = await netError(() => net.connect({ path: where }));
    await assert.rejects(polyio.connect({ path: where }), (err) => {
      assert.deepEqual({ code: err.code, errno: err.errno, syscall: err.syscall, address: err.address }, {
        code: expected.code,
        errno: expected.errno,
        syscall: expected.syscall,
        address: where,
      });
      assert.equal(expected.address, where);
      assert.ok(err instanceof Error);
      return true;
    });
  }
  const busy = await netError(() => net.createServer().listen({ path: plain }));
  await assert.rejects(polyio.listen({ path: plain }), (err) => {
    assert.equal(err.code, busy.code);
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.errno, busy.errno);
    assert.equal(err.syscall, 'listen');
    assert.equal(err.address, plain);
    return true;
  });
  // A file that is not ours is never removed.
  assert.equal(fs.readFileSync(plain, 'utf8'), 'x');
  await assert.rejects(polyio.connect({ path: 42 }), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(polyio.listen({ path: {} }), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(polyio.connect({ path: '/tmp/' + 'a'.repeat(200) }), { code: 'EINVAL' });
});

test('closing the server removes its socket file, as net does', async (t) => {
  const dir = tempDir(t);
  const netPath = path.join(dir, 'net.sock');
  const netServer = net.createServer();
  netServer.listen({ path: netPath });
  await once(netServer, 'listening');
  netServer.close();
  await once(netServer, 'close');

  const where = path.join(dir, 'gone.sock');
  const server = await polyio.listen({ path: where });
  assert.ok(fs.statSync(where).isSocket());
  await server.close();
  assert.equal(fs.existsSync(where), fs.existsSync(netPath));
  assert.equal(fs.existsSync(where), false);
  // Listening again on the same path works.
  const again = await polyio.listen({ path: where });
  await again.close();
});

test('a port wins over a path in listen(), a path over a port in connect(), as in net', async (t) => {
  const where = path.join(tempDir(t), 'both.sock');
  const server = await polyio.listen({ host: '127.0.0.1', port: 0, path: where });
  assert.equal(typeof server.address(), 'object');
  assert.equal(fs.existsSync(where), false);
  await server.close();
  const unix = await polyio.listen({ path: where });
  const accepted = unix.accept();
  const conn = await polyio.connect({ path: where, host: '127.0.0.1', port: 1 });
  const peer = await accepted;
  await conn.write('via path');
  await conn.end();
  assert.equal((await readAll(peer)).toString(), 'via path');
  await Promise.all([conn.close(), peer.close(), unix.close()]);
});

test('an aborted signal rejects a path connect and listen with ABORT_ERR', async (t) => {
  const where = path.join(tempDir(t), 'abort.sock');
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(polyio.connect({ path: where, signal: ac.signal }), { code: 'ABORT_ERR' });
  await assert.rejects(polyio.listen({ path: where, signal: ac.signal }), { code: 'ABORT_ERR' });
  assert.equal(fs.existsSync(where), false);
  const live = new AbortController();
  const server = await polyio.listen({ path: where, signal: live.signal });
  live.abort();
  await assert.rejects(server.accept(), { code: 'ERR_SERVER_NOT_RUNNING' });
  assert.equal(fs.existsSync(where), false);
});
