'use strict';
// Node's own http server fed by polyio.serve(), against real clients (fetch/undici, Node's
// http client, curl), beside the same server listening through `net`.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const crypto = require('node:crypto');
const events = require('node:events');
const { execFile } = require('node:child_process');
const { polyio, sha256, pattern } = require('./helpers.js');

const once = (emitter, event) => new Promise((r) => emitter.once(event, r));

/** `server` listening on 127.0.0.1 through polyio (`via` 'polyio') or net ('net'). */
async function start(server, via, options = {}) {
  if (via === 'polyio') {
    assert.equal(await polyio.serve(server, { host: '127.0.0.1', port: 0, ...options }), server);
  } else {
    await new Promise((r) => server.listen({ host: '127.0.0.1', port: 0, ...options }, r));
  }
  return server.address().port;
}

function stop(server) {
  server.closeAllConnections?.();
  return new Promise((r) => server.close(() => r()));
}

/** GET (or `method` with `body`) through Node's http client; resolves to { status, headers, body, socket }. */
function request(port, { method = 'GET', path = '/', body, agent, headers } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), socket: req.socket }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** An http server answering `hello <n>` (n: this connection's request count) and echoing POST bodies. */
function helloServer(options) {
  return http.createServer(options, (req, res) => {
    if (req.method === 'POST') {
      req.pipe(res);
      return;
    }
    req.socket.requests = (req.socket.requests ?? 0) + 1;
    res.setHeader('content-type', 'text/plain');
    res.end(`hello ${req.socket.requests} from ${req.socket.remoteAddress}`);
  });
}

for (const via of ['polyio', 'net']) {
  test(`${via}: keep-alive requests from Node's http client and fetch share one connection`, async () => {
    const server = helloServer();
    let connections = 0;
    server.on('connection', () => connections++);
    const port = await start(server, via);
    assert.equal(server.listening, true);
    assert.deepEqual(server.address(), { address: '127.0.0.1', family: 'IPv4', port });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 1; i <= 3; i++) {
      const r = await request(port, { agent });
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `hello ${i} from 127.0.0.1`);
    }
    assert.equal(connections, 1);
    agent.destroy();
    // undici opens a second connection for the second request (with net too), then reuses.
    const bodies = [];
    for (let i = 1; i <= 3; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(r.status, 200);
      bodies.push(await r.text());
    }
    assert.ok(bodies.includes('hello 2 from 127.0.0.1'), `no connection was reused: ${bodies}`);
    assert.ok(connections <= 3, `${connections} connections`);
    await stop(server);
  });

  test(`${via}: curl, two requests on one connection`, async (t) => {
    const server = helloServer();
    const port = await start(server, via);
    const url = `http://127.0.0.1:${port}/`;
    const out = await new Promise((resolve, reject) => {
      execFile('curl', ['-sS', '-v', url, url], (err, stdout, stderr) => {
        if (err && err.code === 'ENOENT') resolve(null);
        else if (err) reject(err);
        else resolve({ stdout, stderr });
      });
    });
    await stop(server);
    if (out === null) return t.skip('no curl');
    assert.equal(out.stdout, 'hello 1 from 127.0.0.1hello 2 from 127.0.0.1');
    assert.match(out.stderr, /Re-using existing connection/);
  });

  test(`${via}: 10 MB bodies both ways (POST echoed), through fetch and Node's http client`, async () => {
    const server = helloServer();
    const port = await start(server, via);
    const data = pattern(10 << 20, 7);
    const r1 = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'POST', body: data });
    const got1 = Buffer.from(await r1.arrayBuffer());
    assert.equal(got1.length, data.length);
    assert.equal(sha256(got1), sha256(data));
    const r2 = await request(port, { method: 'POST', body: data });
    assert.equal(sha256(r2.body), sha256(data));
    await stop(server);
  });

  test(`${via}: keepAliveTimeout closes an idle keep-alive connection`, async () => {
    const server = helloServer();
    server.keepAliveTimeout = 100;
    const port = await start(server, via);
    const agent = new http.Agent({ keepAlive: true });
    const r = await request(port, { agent });
    assert.equal(r.status, 200);
    // The server closes the idle connection: the client's socket sees the end.
    await once(r.socket, 'close');
    agent.destroy();
    await stop(server);
  });

  test(`${via}: headersTimeout answers 408 to a client that never finishes its headers`, async () => {
    const server = helloServer({ headersTimeout: 200, requestTimeout: 400, connectionsCheckingInterval: 50 });
    const port = await start(server, via);
    const c = net.connect(port, '127.0.0.1');
    c.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const chunks = [];
    c.on('data', (d) => chunks.push(d));
    await once(c, 'close');
    assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 408 Request Timeout/);
    await stop(server);
  });

  test(`${via}: pipelined requests in one packet get answers in order`, async () => {
    const server = helloServer();
    const port = await start(server, via);
    const c = net.connect(port, '127.0.0.1');
    const req = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
    c.end(req + req + req.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
    const chunks = [];
    c.on('data', (d) => chunks.push(d));
    await once(c, 'close');
    const text = Buffer.concat(chunks).toString();
    assert.deepEqual(text.match(/hello \d/g), ['hello 1', 'hello 2', 'hello 3']);
    await stop(server);
  });

  test(`${via}: 'upgrade' with a WebSocket handshake, then raw bytes both ways`, async () => {
    const server = helloServer();
    server.on('upgrade', (req, socket, head) => {
      assert.equal(head.length, 0);
      const accept = crypto
        .createHash('sha1')
        .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
        .digest('base64');
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      // A text frame "hi" (unmasked, server to client), then echo what the client sends.
      socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
      socket.on('data', (d) => socket.write(d));
      socket.on('end', () => socket.end());
    });
    const port = await start(server, via);
    const key = crypto.randomBytes(16).toString('base64');
    const req = http.request({
      host: '127.0.0.1',
      port,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13' },
    });
    req.end();
    const [res, socket, head] = await events.once(req, 'upgrade');
    assert.equal(res.statusCode, 101);
    const want = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    assert.equal(res.headers['sec-websocket-accept'], want);
    const received = [head];
    socket.on('data', (d) => received.push(d));
    const bytes = async (n) => {
      while (Buffer.concat(received).length < n) await once(socket, 'data');
      return Buffer.concat(received);
    };
    assert.deepEqual([...(await bytes(4))], [0x81, 0x02, 0x68, 0x69]);
    socket.write('ping');
    assert.equal((await bytes(8)).subarray(4).toString(), 'ping');
    socket.destroy();
    await stop(server);
  });

  test(`${via}: close() stops accepting, closeAllConnections() ends the rest, then 'close'`, async () => {
    const server = helloServer();
    const port = await start(server, via);
    const agent = new http.Agent({ keepAlive: true });
    await request(port, { agent });
    // A request in progress keeps its connection past close() until closeAllConnections().
    const hanging = net.connect(port, '127.0.0.1');
    hanging.on('error', () => {});
    hanging.write('GET / HTTP/1.1\r\nHost: x\r\n');
    await once(server, 'connection');
    let closed = false;
    const serverClosed = new Promise((r) => server.close(r)).then(() => (closed = true));
    assert.equal(server.listening, false);
    assert.equal(server.address(), null);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`), (e) => e.cause?.code === 'ECONNREFUSED');
    await new Promise((r) => setImmediate(r));
    assert.equal(closed, false, "'close' waits for the open connection");
    server.closeAllConnections();
    await once(hanging, 'close');
    await serverClosed;
    agent.destroy();
  });

  test(`${via}: accepted connections have TCP_NODELAY, as http.createServer asks`, async () => {
    const server = http.createServer((req, res) => {
      const s = req.socket;
      const conn = s[Object.getOwnPropertySymbols(s).find((k) => k.description === 'polyio.connection')];
      res.end(JSON.stringify(conn ? conn.__sockopts() : polyio.__sockoptsOfFd(s._handle.fd)));
    });
    const port = await start(server, via);
    const r = await request(port);
    assert.equal(JSON.parse(r.body).noDelay, true);
    await stop(server);
  });

  test(`${via}: an Express-style middleware chain (body parsing, routing, errors)`, async () => {
    const chain = [
      (req, res, next) => {
        const parts = [];
        req.on('data', (c) => parts.push(c));
        req.on('end', () => {
          req.body = parts.length ? JSON.parse(Buffer.concat(parts)) : undefined;
          next();
        });
      },
      (req, res, next) => {
        if (req.method === 'POST' && req.url === '/sum') {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ sum: req.body.reduce((a, b) => a + b, 0) }));
        } else next();
      },
      (req, res, next) => next(Object.assign(new Error('not found'), { status: 404 })),
    ];
    const server = http.createServer((req, res) => {
      let i = 0;
      const next = (err) => {
        if (err) {
          res.statusCode = err.status ?? 500;
          res.end(err.message);
        } else chain[i++](req, res, next);
      };
      next();
    });
    const port = await start(server, via);
    const sum = await fetch(`http://127.0.0.1:${port}/sum`, { method: 'POST', body: JSON.stringify([1, 2, 39]) });
    assert.deepEqual(await sum.json(), { sum: 42 });
    const missing = await fetch(`http://127.0.0.1:${port}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), 'not found');
    await stop(server);
  });
}

test('serve(): over a Unix socket, with the path as address()', async () => {
  const path = require('node:path').join(require('node:os').tmpdir(), `polyio-http-${process.pid}.sock`);
  const server = helloServer();
  await polyio.serve(server, { path });
  assert.equal(server.address(), path);
  const r = await new Promise((resolve, reject) => {
    http.get({ socketPath: path, path: '/' }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    }).on('error', reject);
  });
  assert.equal(r, 'hello 1 from undefined');
  await stop(server);
});

test('serve(): signal closes the server; listening twice throws; bad arguments reject', async () => {
  const ac = new AbortController();
  const server = helloServer();
  await polyio.serve(server, { host: '127.0.0.1', port: 0, signal: ac.signal });
  await assert.rejects(polyio.serve(server, { port: 0 }), { code: 'ERR_SERVER_ALREADY_LISTEN' });
  const closing = once(server, 'close');
  ac.abort();
  await closing;
  assert.equal(server.listening, false);
  await assert.rejects(polyio.serve(null), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(polyio.serve(helloServer(), 5), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(polyio.serve(helloServer(), { signal: AbortSignal.abort() }), { code: 'ABORT_ERR' });
});

test("serve(): a listen error rejects with net's code", async () => {
  const taken = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const { port } = taken.address();
  await assert.rejects(polyio.serve(helloServer(), { host: '127.0.0.1', port }), { code: 'EADDRINUSE' });
  await taken.close();
});

test('serve(): a net.Server gets connections with its own noDelay and keepAlive', async () => {
  const server = net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 4000 }, (s) => {
    const conn = s[Object.getOwnPropertySymbols(s).find((k) => k.description === 'polyio.connection')];
    s.end(JSON.stringify(conn.__sockopts()));
  });
  await polyio.serve(server, { host: '127.0.0.1', port: 0 });
  const c = net.connect(server.address().port, '127.0.0.1');
  const chunks = [];
  c.on('data', (d) => chunks.push(d));
  await once(c, 'end');
  assert.deepEqual(JSON.parse(Buffer.concat(chunks)), { noDelay: true, keepAlive: true, keepIdle: 4 });
  c.destroy();
  await stop(server);
});
