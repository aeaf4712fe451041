'use strict';
// Argument checks the argument fuzzer (tests/fuzz-args/args_node.js) found missing or
// different from Node's own (fs/promises, dns, dgram) for the same input: each test is the
// regression test of a fixed finding, and compares with Node where Node has the call.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const fsp = require('node:fs/promises');
const dns = require('node:dns');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { polyio, pair } = require('./helpers.js');

const codeOf = (p) => Promise.resolve().then(p).then(() => 'ok', (e) => e.code);

/** Both reject (or resolve) alike: polyio's code is Node's. */
async function sameAsNode(polyioCall, nodeCall) {
  const [p, n] = await Promise.all([codeOf(polyioCall), codeOf(nodeCall)]);
  assert.equal(p, n);
  return p;
}

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'polyio-args-'));
}

test('lookup: options checked as dns.promises.lookup checks them', async () => {
  // Were accepted (hints, verbatim, order) or ERR_INVALID_ARG_VALUE (a string options).
  for (const options of ['r+', true, { hints: 'x' }, { hints: 1 }, { verbatim: 'yes' }, { order: 'first' }, { all: 1 }]) {
    const code = await sameAsNode(() => polyio.lookup('localhost', options), () => dns.promises.lookup('localhost', options));
    assert.match(code, /^ERR_INVALID_ARG_(TYPE|VALUE)$/);
  }
  await sameAsNode(() => polyio.lookup('localhost', { hints: dns.ADDRCONFIG | dns.V4MAPPED }), () => dns.promises.lookup('localhost', { hints: dns.ADDRCONFIG | dns.V4MAPPED }));
});

test('lookup: a falsy hostname finds no address, as in dns', async () => {
  // Was ERR_INVALID_ARG_TYPE for undefined, null and 0.
  for (const host of [undefined, null, 0, '']) {
    assert.deepEqual(await polyio.lookup(host), { address: null, family: 4 });
    assert.deepEqual(await polyio.lookup(host, { all: true }), []);
  }
});

test('lookup: a name starting with a NUL is EINVAL, as dns says', async () => {
  // Was ENOTFOUND.
  assert.equal(await sameAsNode(() => polyio.lookup('\0x'), () => dns.promises.lookup('\0x')), 'EINVAL');
  assert.equal(await sameAsNode(() => polyio.lookup('a\0b'), () => dns.promises.lookup('a\0b')), 'ENOTFOUND');
  // And a name past 255 bytes (was ENOTFOUND).
  const long = 'a'.repeat(256);
  assert.equal(await sameAsNode(() => polyio.lookup(long), () => dns.promises.lookup(long)), 'EINVAL');
});

test('lookup: an options getter that throws rejects with its error', async () => {
  const boom = new Error('getter');
  const options = { get family() { throw boom; } };
  await assert.rejects(polyio.lookup('localhost', options), (e) => e === boom);
});

test('readFile / writeFile / open: arguments checked as fs/promises checks them', async () => {
  const dir = tmpdir();
  const file = path.join(dir, 'f');
  fs.writeFileSync(file, 'data');
  // Each was accepted, or had another code (ERR_UNKNOWN_ENCODING, EINVAL for a NUL,
  // ERR_INVALID_ARG_TYPE for a non-integer flags, a plain TypeError for a detached array).
  const cases = [
    [(f) => f.readFile(file, { flag: 'nope' })],
    [(f) => f.readFile(file, { flag: Buffer.from('r') })],
    [(f) => f.readFile(file, -1)],
    [(f) => f.readFile(file, { encoding: 'nope-enc' })],
    [(f) => f.readFile(file, new Date(0))],
    [(f) => f.readFile(file, { flag: fs.constants.O_DIRECTORY })],
    [(f) => f.writeFile(path.join(dir, 'w'), 'x', { encoding: '::1' })],
    [(f) => f.writeFile(path.join(dir, 'w'), 'x', { mode: '999.1.1.1' })],
    [(f) => f.writeFile(path.join(dir, 'w'), 'x', { mode: 1.5 })],
    [(f) => f.writeFile(path.join(dir, 'w'), 5)],
    [(f) => f.writeFile(path.join(dir, 'w'), 'x', { flag: '' })],
    [(f) => f.writeFile(path.join(dir, 'w'), new DataView(new ArrayBuffer(4)))],
    [(f) => f.writeFile(path.join(dir, 'w'), new Float64Array([1.5]))],
    [(f) => f.open(path.join(dir, 'a\0b'))],
    [(f) => f.open(file, Infinity)],
    [(f) => f.open(file, 1.5)],
    [(f) => f.open(file, 'r', 'x')],
    [(f) => f.open(file, {})],
    [(f) => f.stat(42)],
    [(f) => f.stat(new URL('http://127.0.0.1/'))],
  ];
  for (const [call] of cases) {
    const code = await sameAsNode(() => call(polyio), () => call(fsp));
    assert.notEqual(code, undefined, String(call));
  }
  // Iterables of chunks, as fs/promises writeFile takes them (were ERR_INVALID_ARG_TYPE).
  async function* gen() {
    yield 'a';
    yield Buffer.from('b');
  }
  for (const data of [[], ['x', Buffer.from('y')], gen()]) {
    await polyio.writeFile(path.join(dir, 'it'), data);
  }
  assert.equal(fs.readFileSync(path.join(dir, 'it'), 'utf8'), 'ab');
  await assert.rejects(polyio.writeFile(path.join(dir, 'it'), [1]), { code: 'ERR_INVALID_ARG_TYPE' });
  // A flag that creates: 'a+' makes the file, as open(2) with it does.
  assert.equal((await polyio.readFile(path.join(dir, 'new'), { flag: 'a+' })).length, 0);
  assert.ok(fs.existsSync(path.join(dir, 'new')));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('open: a Unix socket file is ENXIO, as open(2) says', async () => {
  // Was EIO: ENXIO had no row in polyio's status table.
  const dir = tmpdir();
  const sock = path.join(dir, 's');
  const server = net.createServer().listen(sock);
  await new Promise((r) => server.once('listening', r));
  try {
    assert.equal(await sameAsNode(() => polyio.readFile(sock), () => fsp.readFile(sock)), 'ENXIO');
    assert.equal(await sameAsNode(() => polyio.open(sock), () => fsp.open(sock)), 'ENXIO');
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('FileHandle: read / write arguments checked as fs checks them', async () => {
  const dir = tmpdir();
  const file = path.join(dir, 'f');
  fs.writeFileSync(file, 'data');
  const p = await polyio.open(file, 'r+');
  const n = await fsp.open(file, 'r+');
  try {
    // A BigInt offset threw "Cannot mix BigInt and other types"; offsets past the buffer
    // were not checked.
    for (const [call, want] of [
      [(h) => h.write(Buffer.from('x'), 1n), 'ERR_INVALID_ARG_TYPE'],
      [(h) => h.write(Buffer.from('x'), 5), 'ERR_OUT_OF_RANGE'],
      [(h) => h.write(42), 'ERR_INVALID_ARG_TYPE'],
      [(h) => h.read(Buffer.alloc(4), 0, 8), 'ERR_OUT_OF_RANGE'],
      [(h) => h.read(Buffer.alloc(4), 'x'), 'ERR_INVALID_ARG_TYPE'],
      // A position that is not a safe integer >= 0 is the file's own, as in fs.
      [(h) => h.write(Buffer.from('x'), 0, 1, -2), 'ok'],
      [(h) => h.read(Buffer.alloc(4), 0, 4, 1.5), 'ok'],
    ]) {
      assert.equal(await sameAsNode(() => call(p), () => call(n)), want);
    }
    assert.equal((await p.write('é', 0, 'latin1')).bytesWritten, 1);
  } finally {
    await p.close();
    await n.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the classes polyio hands out are not constructed: ERR_ILLEGAL_CONSTRUCTOR', async () => {
  // Were napi-rs's "Class contains no constructor" Error, without a code.
  for (const C of [polyio.Connection, polyio.Server, polyio.UdpSocket, polyio.FileHandle]) {
    assert.throws(() => new C(), { name: 'TypeError', code: 'ERR_ILLEGAL_CONSTRUCTOR' });
  }
  const { server, client, peer } = await pair();
  try {
    assert.ok(client instanceof polyio.Connection);
    assert.ok(server instanceof polyio.Server);
  } finally {
    client.destroy();
    peer.destroy();
    await server.close();
  }
});

test('UdpSocket: option setters take what dgram takes, with its codes', async () => {
  const s = await polyio.bindUdp({ type: 'udp4', address: '127.0.0.1' });
  try {
    // Were napi-rs's 'NumberExpected' / 'BooleanExpected' / 'StringExpected' errors, and a
    // BigInt group threw "Do not know how to serialize a BigInt".
    assert.throws(() => s.setTTL('x'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => s.setMulticastTTL({}), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => s.setTTL(0), { code: 'EINVAL' });
    assert.throws(() => s.setTTL(NaN), { code: 'EINVAL' });
    assert.equal(s.setTTL(64), 64);
    s.setBroadcast(1);
    assert.equal(s.setMulticastLoopback(0), 0);
    assert.throws(() => s.addMembership(), { code: 'ERR_MISSING_ARGS' });
    assert.throws(() => s.addMembership(''), { code: 'ERR_MISSING_ARGS' });
    assert.throws(() => s.addMembership(1n), { code: 'EINVAL' });
    assert.throws(() => s.dropMembership({}), { code: 'EINVAL' });
    assert.throws(() => s.addMembership(Symbol('x')), { code: 'ERR_INVALID_ARG_TYPE' });
  } finally {
    await s.close();
  }
});

test('a signal without removeEventListener is refused up front, not a crash later', async () => {
  // Such an object passed the check, then a write's settling called
  // signal.removeEventListener: an uncaught TypeError that ended the process.
  const fake = { aborted: false, addEventListener() {} };
  const { server, client, peer } = await pair();
  try {
    await assert.rejects(client.write(Buffer.from('x'), { signal: fake }), { code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(client.read({ signal: fake }), { code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(polyio.sleep(1, { signal: fake }), { code: 'ERR_INVALID_ARG_TYPE' });
    // serve() checked its signal only after it listened: the listener stayed open.
    const httpish = net.createServer();
    await assert.rejects(polyio.serve(httpish, { host: '127.0.0.1', port: 0, signal: fake }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.equal(httpish.listening, false);
  } finally {
    client.destroy();
    peer.destroy();
    await server.close();
  }
});

test('listen / connect: an options getter that throws rejects with its error, opening nothing', async () => {
  // listen() read the options past a throwing getter (as undefined), bound a listener, and
  // the caller got the getter's exception instead of the server: the socket leaked.
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  const boom = new Error('getter');
  const bad = new Proxy({ host: '127.0.0.1', port: 0 }, {
    get(t, k) {
      if (k === 'backlog' || k === 'timeout') throw boom;
      return t[k];
    },
  });
  const before = fds();
  await assert.rejects(polyio.listen(bad), (e) => e === boom);
  await assert.rejects(polyio.bindUdp(new Proxy({ type: 'udp4' }, { get(t, k) { if (k === 'port') throw boom; return t[k]; } })), (e) => e === boom);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(fds(), before);
});
