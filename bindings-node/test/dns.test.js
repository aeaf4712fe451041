'use strict';
// Name lookups: polyio.lookup against dns.promises.lookup (results, errors, options),
// aborting a slow lookup (the POLYIO_TEST_LOOKUP_DELAY_MS hook, in a child process), and
// connect({ host }) by name with autoSelectFamily, against net.connect.
const test = require('node:test');
const assert = require('node:assert/strict');
const dns = require('node:dns');
const net = require('node:net');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { polyio } = require('./helpers.js');

const pkg = JSON.stringify(path.resolve(__dirname, '..'));

/** The outcome of a promise, for comparing results and errors alike. */
async function outcome(p) {
  try {
    return { value: await p };
  } catch (e) {
    return { error: { name: e.name, code: e.code, syscall: e.syscall, hostname: e.hostname, errno: e.errno, message: e.message } };
  }
}

const CASES = [
  ['localhost'],
  ['localhost', { all: true }],
  ['localhost', { family: 4 }],
  ['localhost', { family: 4, all: true }],
  ['localhost', 4],
  ['localhost', 0],
  ['127.0.0.1'],
  ['127.0.0.1', { all: true }],
  ['::1', { family: 4 }],
  ['::1', { all: true }],
  [''],
  ['', { all: true }],
  ['', { family: 6 }],
  ['no-such-host.invalid'],
  ['no-such-host.invalid', { all: true }],
];

for (const args of CASES) {
  test(`lookup(${args.map((a) => JSON.stringify(a)).join(', ')}) as dns.promises.lookup`, async () => {
    const want = await outcome(dns.promises.lookup(...args));
    const got = await outcome(polyio.lookup(...args));
    assert.deepEqual(got, want);
  });
}

test('a malformed name is ENOTFOUND, as Node reports it', async () => {
  for (const host of ['a..b', 'x'.repeat(64) + '.com', 'has space']) {
    const got = await outcome(polyio.lookup(host));
    assert.equal(got.error?.code, 'ENOTFOUND', host);
    assert.equal(got.error.syscall, 'getaddrinfo');
    assert.equal(got.error.hostname, host);
    assert.equal(got.error.message, `getaddrinfo ENOTFOUND ${host}`);
  }
});

test('bad arguments throw as dns.promises.lookup does', async () => {
  for (const [args, name, code] of [
    [[42], 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [['localhost', { family: 5 }], 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    [['localhost', { family: 'IPv4' }], 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    [['localhost', 7], 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    [['localhost', { signal: {} }], 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  ]) {
    await assert.rejects(polyio.lookup(...args), { name, code }, JSON.stringify(args));
  }
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(polyio.lookup('localhost', { signal: ac.signal }), { name: 'AbortError', code: 'ABORT_ERR' });
});

function runScript(src, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', src], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill(), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test('an abort cancels a slow lookup and a slow connect by name; exit does not wait for lookups', async () => {
  const r = await runScript(`
    const p = require(${pkg});
    (async () => {
      const ac = new AbortController();
      const l = p.lookup('localhost', { signal: ac.signal });
      const c = p.connect({ host: 'localhost', port: 9, signal: ac.signal });
      setTimeout(() => ac.abort(), 20);
      for (const x of [l, c]) {
        try { await x; console.log('settled?'); } catch (e) { console.log(e.name, e.code); }
      }
      console.log('in flight', p.__stats().inFlight);
      // 100 more, left pending: the process must still exit when the loop is otherwise done.
      for (let i = 0; i < 100; i++) p.lookup('localhost').catch(() => {});
      setTimeout(() => { console.log('done'); process.exit(0); }, 20);
    })();
  `, { POLYIO_TEST_LOOKUP_DELAY_MS: '60000' });
  assert.equal(r.code, 0, r.out);
  assert.equal(r.out, 'AbortError ABORT_ERR\nAbortError ABORT_ERR\nin flight 0\ndone\n');
});

async function serve() {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

for (const opts of [{}, { autoSelectFamily: true }, { autoSelectFamily: false }, { autoSelectFamilyAttemptTimeout: 10 }, { family: 4 }]) {
  test(`connect({ host: 'localhost', ...${JSON.stringify(opts)} }) reaches the server as net.connect`, async () => {
    const server = await serve();
    const { port } = server.address();
    const ref = net.connect({ host: 'localhost', port, ...opts });
    await new Promise((r, j) => ref.once('connect', r).once('error', j));
    const want = ref.remoteAddress;
    ref.destroy();
    const conn = await polyio.connect({ host: 'localhost', port, ...opts });
    await conn.write('hi');
    assert.equal(String(await conn.read()), 'hi');
    assert.equal(conn.remoteAddress, want);
    await conn.close();
    server.close();
  });
}

test('connect to a name that does not resolve fails as net.connect does', async () => {
  const ref = net.connect({ host: 'no-such-host.invalid', port: 80 });
  const want = await new Promise((r) => ref.once('error', r));
  const got = await polyio.connect({ host: 'no-such-host.invalid', port: 80 }).catch((e) => e);
  for (const k of ['code', 'syscall', 'hostname', 'message']) assert.equal(got[k], want[k], k);
});

test('listen({ host }) by name binds the first address, as net does', async () => {
  const os = require('node:os');
  const name = os.hostname();
  const found = await dns.promises.lookup(name).catch(() => null);
  if (found === null) return; // this machine cannot resolve its own name without DNS
  const ref = net.createServer();
  await new Promise((r) => ref.listen(0, name, r));
  const want = ref.address().address;
  ref.close();
  const server = await polyio.listen({ host: name, port: 0 });
  assert.equal(server.address().address, want);
  await server.close();

  const err = await new Promise((r) => net.createServer().once('error', r).listen(0, 'no-such-host.invalid'));
  const got = await polyio.listen({ host: 'no-such-host.invalid', port: 0 }).catch((e) => e);
  for (const k of ['code', 'syscall', 'hostname']) assert.equal(got[k], err[k], k);
  const ac = new AbortController();
  const pending = polyio.listen({ host: name, port: 0, signal: ac.signal });
  const s2 = await pending;
  ac.abort();
  await assert.rejects(s2.accept(), { code: 'ERR_SERVER_NOT_RUNNING' });
});
