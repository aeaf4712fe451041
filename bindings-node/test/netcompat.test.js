'use strict';
// What real programs lean on in `net`, compared with `net` itself on this Node: socket
// options at accept, the net.Socket surface of toDuplex(), end() after a reset, a failed
// connection destroying itself, and connect errors' fields and message.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { spawnSync } = require('node:child_process');
const { polyio, pair } = require('./helpers.js');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const once = (emitter, event) => new Promise((r) => emitter.once(event, r));

/** A net server with `options`, and the server side of one connection to it. */
async function netAccepted(options) {
  const server = net.createServer(options);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const accepted = once(server, 'connection');
  const client = net.connect(server.address().port, '127.0.0.1');
  await once(client, 'connect');
  const socket = await accepted;
  return { socket, client, close: () => (client.destroy(), socket.destroy(), server.close()) };
}

/** A polyio server with `options`, and the server side of one connection to it. */
async function polyioAccepted(options) {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0, ...options });
  const accepted = server.accept();
  const client = net.connect(server.address().port, '127.0.0.1');
  const conn = await accepted;
  return { conn, close: () => (client.destroy(), conn.destroy(), server.close()) };
}

const netOpts = (socket) => polyio.__sockoptsOfFd(socket._handle.fd);

test('listen() sets noDelay and keepAlive on accepted connections as net.createServer does', async () => {
  for (const options of [
    {},
    { noDelay: true },
    { keepAlive: true },
    { keepAlive: true, keepAliveInitialDelay: 5000 },
    { noDelay: true, keepAlive: true, keepAliveInitialDelay: 500 },
  ]) {
    const n = await netAccepted(options);
    const p = await polyioAccepted(options);
    const want = netOpts(n.socket);
    assert.deepEqual(p.conn.__sockopts(), want, JSON.stringify(options));
    n.close();
    p.close();
  }
});

test('the Duplex forwards setNoDelay and setKeepAlive as a net.Socket applies them', async () => {
  const n = await netAccepted();
  const p = await polyioAccepted();
  const d = p.conn.toDuplex();
  for (const [method, args] of [
    ['setNoDelay', []],
    ['setKeepAlive', [true, 3000]],
    ['setNoDelay', [false]],
    ['setKeepAlive', [true]],
    ['setKeepAlive', [false]],
  ]) {
    assert.equal(n.socket[method](...args), n.socket);
    assert.equal(d[method](...args), d);
    assert.deepEqual(p.conn.__sockopts(), netOpts(n.socket), `${method}(${args})`);
  }
  n.close();
  p.close();
});

/** A net.Socket and a polyio Duplex, each the server side of a connection from `net`. */
async function bothSockets() {
  const n = await netAccepted();
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const accepted = server.accept();
  const client = net.connect(server.address().port, '127.0.0.1');
  await once(client, 'connect');
  const d = (await accepted).toDuplex({ allowHalfOpen: false });
  return {
    n: n.socket,
    nClient: n.client,
    d,
    dClient: client,
    close: () => (n.close(), client.destroy(), d.destroy(), server.close()),
  };
}

test('the Duplex carries the net.Socket surface: addresses, byte counts, readyState', async () => {
  const { n, nClient, d, dClient, close } = await bothSockets();
  for (const [s, peer] of [
    [n, nClient],
    [d, dClient],
  ]) {
    assert.equal(s.remoteAddress, '127.0.0.1');
    assert.equal(s.remoteFamily, 'IPv4');
    assert.equal(s.remotePort, peer.localPort);
    assert.equal(s.localAddress, '127.0.0.1');
    assert.equal(s.localPort, peer.remotePort);
    assert.deepEqual(s.address(), { address: '127.0.0.1', family: 'IPv4', port: s.localPort });
    assert.equal(s.readyState, 'open');
    assert.equal(s.connecting, false);
    assert.equal(s.pending, false);
    assert.equal(s.bytesRead, 0);
    assert.equal(s.bytesWritten, 0);
    // 5 bytes each way.
    const got = once(peer, 'data');
    s.write('hello');
    assert.equal((await got).toString(), 'hello');
    const read = once(s, 'data');
    peer.write('world!');
    assert.equal((await read).toString(), 'world!');
    assert.equal(s.bytesWritten, 5);
    assert.equal(s.bytesRead, 6);
    // The peer ends: the readable side ends, the writable stays (allowHalfOpen: true).
    s.allowHalfOpen = true;
    peer.end();
    s.resume();
    await once(s, 'end');
    assert.equal(s.readyState, 'writeOnly');
    s.destroy();
    await once(s, 'close');
    assert.equal(s.readyState, 'closed');
    assert.equal(s.remoteAddress, '127.0.0.1', 'the peer address is kept after close');
    assert.equal(s.pending, true);
  }
  close();
});

test('setTimeout emits timeout after idleness, as a net.Socket does, and 0 turns it off', async () => {
  const { n, d, close } = await bothSockets();
  for (const s of [n, d]) {
    let fired = 0;
    const cb = () => fired++;
    assert.equal(s.setTimeout(30, cb), s);
    assert.equal(s.timeout, 30);
    await once(s, 'timeout');
    assert.equal(fired, 1);
    // Off, then on again with the same delay (as http does per request): it fires again;
    // and once more after activity re-arms it.
    s.setTimeout(0, cb);
    assert.equal(s.listenerCount('timeout'), 0);
    s.setTimeout(30);
    await once(s, 'timeout');
    s.write('x');
    await once(s, 'timeout');
    s.setTimeout(0);
    assert.throws(() => s.setTimeout(-1), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => s.setTimeout('1'), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  close();
});

test('destroySoon() ends, then closes once written, as on a net.Socket', async () => {
  const { n, d, dClient, close } = await bothSockets();
  const clientGot = [];
  dClient.on('data', (c) => clientGot.push(c));
  const ended = once(dClient, 'end');
  for (const s of [n, d]) {
    s.write('bye');
    s.destroySoon();
    assert.equal(s.writable, false);
    assert.equal(s.readyState, 'readOnly');
    await once(s, 'close');
    assert.equal(s.destroyed, true);
  }
  await ended;
  assert.equal(Buffer.concat(clientGot).toString(), 'bye');
  close();
});

/** Runs `code` in a child Node process; resolves to how it ended. */
function runChild(code, timeout = 30000) {
  const r = spawnSync(process.execPath, ['-e', code], {
    cwd: __dirname,
    encoding: 'utf8',
    timeout,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

test('unref() lets the process exit with the connection open, as with net', () => {
  const script = (useNet) => `
    const net = require('node:net');
    const polyio = require('..');
    const server = net.createServer((s) => s.unref()).listen(0, '127.0.0.1', async () => {
      server.unref();
      const { port } = server.address();
      const s = ${useNet} ? net.connect(port, '127.0.0.1') : (await polyio.connect({ host: '127.0.0.1', port })).toDuplex();
      s.on('error', () => {});
      s.unref();
      console.log('unrefd');
    });`;
  for (const useNet of [true, false]) {
    const r = runChild(script(useNet));
    assert.equal(r.signal, null, `${useNet ? 'net' : 'polyio'}: the process did not exit`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /unrefd/);
  }
});

test('end() after the peer reset resolves, as net ends a socket after ENOTCONN', async () => {
  // net: a paused socket (reads nothing) whose peer reset ends without error.
  const nServer = net.createServer({ pauseOnConnect: true });
  await new Promise((r) => nServer.listen(0, '127.0.0.1', r));
  const nAccepted = once(nServer, 'connection');
  const nClient = net.connect(nServer.address().port, '127.0.0.1');
  await once(nClient, 'connect');
  const nSocket = await nAccepted;
  let netError = null;
  nSocket.on('error', (e) => (netError = e));
  nClient.resetAndDestroy();
  await sleep(50);
  await new Promise((r) => nSocket.end(r));
  assert.equal(netError, null);
  nServer.close();

  for (const duplex of [false, true]) {
    const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
    const accepted = server.accept();
    const client = net.connect(server.address().port, '127.0.0.1');
    await once(client, 'connect');
    const conn = await accepted;
    client.resetAndDestroy();
    await sleep(50);
    if (duplex) {
      // The Duplex reads at once, as a net.Socket that is not paused: it may see the reset
      // (ECONNRESET, as net would), but its end() never fails with ENOTCONN.
      const d = conn.toDuplex();
      let err = null;
      d.on('error', (e) => (err = e));
      await new Promise((r) => d.end(r));
      assert.ok(err === null || (err.code === 'ECONNRESET' && err.syscall === 'read'), String(err));
      d.destroy();
    } else {
      await conn.end(); // resolves, not ENOTCONN
      await assert.rejects(conn.read(), { code: 'ECONNRESET', message: 'read ECONNRESET', syscall: 'read' });
    }
    await server.close();
  }
});

test('a connection whose read or write failed destroys itself: the process exits, as with net', () => {
  // The peer resets; the client's read (or write) fails with a caught error and nothing else
  // is done: a net.Socket destroys itself, so the process exits; so must polyio's connection.
  const script = (kind) => `
    const net = require('node:net');
    const polyio = require('..');
    const server = net.createServer((s) => {
      s.resetAndDestroy();
      server.close();
    }).listen(0, '127.0.0.1', async () => {
      const { port } = server.address();
      const report = (e) => console.log('caught', e.code);
      if ('${kind}' === 'net') {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', report);
      } else if ('${kind}' === 'read') {
        const conn = await polyio.connect({ host: '127.0.0.1', port });
        await conn.read().catch(report);
      } else if ('${kind}' === 'write') {
        const conn = await polyio.connect({ host: '127.0.0.1', port });
        await new Promise((r) => setTimeout(r, 100));
        const big = Buffer.alloc(1 << 20);
        for (let i = 0; i < 64; i++) {
          try { await conn.write(big); } catch (e) { report(e); break; }
        }
      } else {
        const conn = await polyio.connect({ host: '127.0.0.1', port });
        conn.toDuplex().on('error', report).resume();
      }
    });`;
  for (const kind of ['net', 'read', 'write', 'duplex']) {
    const r = runChild(script(kind));
    assert.equal(r.signal, null, `${kind}: the process did not exit after the error`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /caught (ECONNRESET|EPIPE)/, kind);
  }
});

test('connect errors carry code, errno, syscall, address, port and the message as net builds them', async () => {
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address();
  await new Promise((r) => probe.close(r));
  const fields = (e) => ({
    name: e.name,
    message: e.message,
    code: e.code,
    errno: e.errno,
    syscall: e.syscall,
    address: e.address,
    port: e.port,
  });
  for (const host of ['127.0.0.1', '::1']) {
    const want = await new Promise((resolve) => {
      net.connect(port, host).on('error', (e) => resolve(fields(e)));
    });
    const got = await polyio.connect({ host, port }).then(
      () => assert.fail('connected'),
      (e) => fields(e),
    );
    assert.deepEqual(got, want, host);
    assert.equal(got.message, `connect ECONNREFUSED ${host}:${port}`);
  }
});

test('a read error closes the connection and later calls reject with it', async () => {
  const nServer = net.createServer((s) => s.resetAndDestroy());
  await new Promise((r) => nServer.listen(0, '127.0.0.1', r));
  const conn = await polyio.connect({ host: '127.0.0.1', port: nServer.address().port });
  await assert.rejects(conn.read(), { code: 'ECONNRESET', message: 'read ECONNRESET' });
  assert.equal(conn.closed, true);
  await assert.rejects(conn.read(), { code: 'ECONNRESET' });
  await assert.rejects(conn.write('x'), { code: 'ECONNRESET' });
  nServer.close();
});
