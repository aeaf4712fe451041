'use strict';
// Fuzzes the argument conversion of every export of the polyio Node package and of the
// methods of the objects it returns (Connection, Server, UdpSocket, FileHandle), enumerated
// from the module object and the classes' prototypes, so a new export is fuzzed without a
// change here. Each call gets one hostile argument (or one hostile option field), the rest
// sane: undefined, null, NaN, Infinity, -0, 2**53, BigInt, Symbol, strings with NUL, huge
// strings, Buffers and TypedArrays of other kinds, detached ArrayBuffers, SharedArrayBuffer,
// Proxies whose getters throw, objects whose toString throws, misspelt option names.
//
// The oracle: a call returns, or throws / rejects with an Error that carries a Node `code`
// string ('ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE', 'ERR_SOCKET_BAD_PORT', 'ENOENT', ...);
// readFile / writeFile / stat / open / lookup reject with the code fs/promises and dns give
// for the same arguments; no fd is left open once everything is closed. The parent runs the
// calls in a child process, so that an abort (a napi fatal error, a Rust panic) or a hang
// is seen. A crash, a hang or a leaked fd fails the run; a code that differs from Node's
// fails it only with --strict (the known differences are listed in docs/reliability.md).
// Usage: node args_node.js [--strict] [--seed N] [--runs N] [--replay FILE...]
const fs = require('node:fs');
const fsp = require('node:fs/promises');
const dns = require('node:dns');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { inspect } = require('node:util');
const { spawnSync } = require('node:child_process');

const CORPUS = path.join(__dirname, '..', '..', 'fuzz', 'corpus', 'node_args');
const CALL_TIMEOUT_MS = 500;

// ---- the byte source ------------------------------------------------------------------

class Src {
  constructor(data) {
    this.data = data;
    this.pos = 0;
  }
  byte() {
    return this.pos < this.data.length ? this.data[this.pos++] : 0;
  }
  below(n) {
    return n ? this.byte() % n : 0;
  }
  left() {
    return this.pos < this.data.length;
  }
}

// ---- hostile values -------------------------------------------------------------------

/** What the hostile objects throw: the caller's own error, which may pass through. */
class HostileError extends Error {}

function detached() {
  const ab = new ArrayBuffer(8);
  structuredClone(ab, { transfer: [ab] });
  return ab;
}

function throwingProxy() {
  return new Proxy({}, {
    get() {
      throw new HostileError('proxy getter');
    },
    has() {
      throw new HostileError('proxy has');
    },
    ownKeys() {
      throw new HostileError('proxy ownKeys');
    },
  });
}

const HOSTILE = {
  'undefined': () => undefined,
  'null': () => null,
  'true': () => true,
  '0': () => 0,
  '-0': () => -0,
  '1': () => 1,
  '-1': () => -1,
  '1.5': () => 1.5,
  'NaN': () => NaN,
  'Infinity': () => Infinity,
  '-Infinity': () => -Infinity,
  '2**31': () => 2 ** 31,
  '2**32': () => 2 ** 32,
  '2**53': () => 2 ** 53,
  '-2**53': () => -(2 ** 53),
  '65536': () => 65536,
  '1e308': () => 1e308,
  '1n': () => 1n,
  '2n**64n': () => 2n ** 64n,
  'Symbol()': () => Symbol('fuzz'),
  "''": () => '',
  "'a'": () => 'a',
  "'\\0'": () => '\0',
  "'a\\0b'": () => 'a\0b',
  "'\\ud800'": () => '\ud800',
  "'x'.repeat(1e6)": () => 'x'.repeat(1e6),
  "'127.0.0.1'": () => '127.0.0.1',
  "'::1'": () => '::1',
  "'localhost'": () => 'localhost',
  "'999.1.1.1'": () => '999.1.1.1',
  "'80'": () => '80',
  "'utf8'": () => 'utf8',
  "'base64'": () => 'base64',
  "'nope-enc'": () => 'nope-enc',
  "'r+'": () => 'r+',
  "'zz'": () => 'zz',
  'Buffer.from("ab")': () => Buffer.from('ab'),
  'Buffer.alloc(0)': () => Buffer.alloc(0),
  'Buffer.alloc(1<<20)': () => Buffer.alloc(1 << 20),
  'Uint16Array': () => new Uint16Array([1, 2]),
  'Float64Array': () => new Float64Array([1.5]),
  'BigInt64Array': () => new BigInt64Array([1n]),
  'DataView': () => new DataView(new ArrayBuffer(4)),
  'Uint8Array(detached)': () => {
    const u = new Uint8Array(8);
    structuredClone(u.buffer, { transfer: [u.buffer] });
    return u;
  },
  'detached ArrayBuffer': () => detached(),
  'SharedArrayBuffer': () => new SharedArrayBuffer(8),
  'Uint8Array(SharedArrayBuffer)': () => new Uint8Array(new SharedArrayBuffer(8)),
  'ArrayBuffer': () => new ArrayBuffer(4),
  '[]': () => [],
  '[1,2]': () => [1, 2],
  '{}': () => ({}),
  'throwing Proxy': throwingProxy,
  'toString throws': () => ({ toString() { throw new HostileError('toString'); }, valueOf() { throw new HostileError('valueOf'); } }),
  'Symbol.toPrimitive throws': () => ({ [Symbol.toPrimitive]() { throw new HostileError('toPrimitive'); } }),
  'function': () => () => {},
  'Date': () => new Date(0),
  'URL file': (c) => new URL(`file://${c.file}`),
  'URL http': () => new URL('http://127.0.0.1/'),
  'AbortSignal.abort()': () => AbortSignal.abort(),
  'signal-like {}': () => ({ aborted: false, addEventListener() {} }),
  'path: file': (c) => c.file,
  'path: Buffer file': (c) => Buffer.from(c.file),
  'path: missing': (c) => path.join(c.dir, 'missing', 'x'),
  'path: dir': (c) => c.dir,
  'path: unix peer': (c) => c.unixPath,
  'path: long': (c) => path.join(c.dir, 'a'.repeat(5000)),
  'path: \\0abstract': () => `\0polyio-node-fuzz-${process.pid}`,
  'port: peer': (c) => c.port,
  'port: udp peer': (c) => c.udpPort,
};
const HOSTILE_NAMES = Object.keys(HOSTILE).sort();

// ---- targets ----------------------------------------------------------------------------

// Sane arguments by target (functions: argument lists; the options object is the one a
// field of which may be made hostile).
const SANE = {
  connect: (c) => [{ host: '127.0.0.1', port: c.port }],
  listen: () => [{ host: '127.0.0.1', port: 0 }],
  bindUdp: () => [{ type: 'udp4', address: '127.0.0.1', port: 0 }],
  sleep: () => [1, {}],
  lookup: () => ['localhost', {}],
  serve: () => [net.createServer(), { host: '127.0.0.1', port: 0 }],
  open: (c) => [c.file, 'r+', 0o666],
  readFile: (c) => [c.file, {}],
  writeFile: (c) => [path.join(c.dir, 'w.bin'), 'data', {}],
  stat: (c) => [c.file],
  'Connection.write': () => [Buffer.from('x'), {}],
  'Connection.read': () => [{}],
  'Connection.end': () => [{}],
  'Connection.setNoDelay': () => [true],
  'Connection.setTimeout': () => [1000],
  'Connection.setKeepAlive': () => [true, 1000],
  'Connection.toDuplex': () => [{}],
  'Server.accept': () => [{}],
  'UdpSocket.send': (c) => [Buffer.from('x'), c.udpPort, '127.0.0.1'],
  'UdpSocket.recv': () => [{}],
  'UdpSocket.connect': (c) => [c.udpPort, '127.0.0.1'],
  'UdpSocket.setBroadcast': () => [true],
  'UdpSocket.setTTL': () => [64],
  'UdpSocket.setMulticastTTL': () => [1],
  'UdpSocket.setMulticastLoopback': () => [true],
  'UdpSocket.addMembership': () => ['239.1.1.1', '127.0.0.1'],
  'UdpSocket.dropMembership': () => ['239.1.1.1', '127.0.0.1'],
  'FileHandle.read': () => [Buffer.alloc(8), 0, 8, 0],
  'FileHandle.write': () => [Buffer.from('x'), 0, 1, 0],
  'FileHandle.readFile': () => [{}],
  'FileHandle.writeFile': () => ['data', {}],
  'FileHandle.truncate': () => [4],
};

// Option fields worth a hostile value, by target (plus a misspelt one each time).
const FIELDS = {
  connect: ['host', 'port', 'path', 'noDelay', 'keepAlive', 'keepAliveInitialDelay', 'timeout', 'signal', 'family', 'localAddress', 'autoSelectFamily', 'autoSelectFamilyAttemptTimeout'],
  listen: ['host', 'port', 'path', 'backlog', 'reusePort', 'ipv6Only', 'signal', 'exclusive', 'readableAll', 'writableAll'],
  bindUdp: ['address', 'port', 'type', 'reuseAddr', 'reusePort', 'ipv6Only', 'recvBufferSize', 'sendBufferSize', 'signal'],
  sleep: ['signal'],
  lookup: ['family', 'all', 'hints', 'order', 'verbatim'],
  serve: ['host', 'port', 'backlog', 'signal', 'path'],
  readFile: ['encoding', 'flag', 'signal'],
  writeFile: ['encoding', 'flag', 'mode', 'signal'],
  'Connection.write': ['signal'],
  'Connection.read': ['signal'],
  'Connection.end': ['signal'],
  'Server.accept': ['signal'],
  'UdpSocket.recv': ['signal'],
  'FileHandle.readFile': ['encoding', 'signal'],
  'FileHandle.writeFile': ['encoding'],
};

const SKIP_METHODS = new Set(['constructor', 'close', 'destroy', 'ref', 'unref', 'disconnect']);
const FIXTURES = { Connection: 'conn', Server: 'server', UdpSocket: 'udp', FileHandle: 'file' };
const REFERENCE = {
  readFile: fsp.readFile,
  writeFile: fsp.writeFile,
  stat: fsp.stat,
  open: fsp.open,
  lookup: dns.promises.lookup,
};

function targets(polyio) {
  const out = [];
  for (const name of Object.keys(polyio).sort()) {
    const v = polyio[name];
    if (name.startsWith('__') || typeof v !== 'function') continue;
    if (FIXTURES[name]) {
      out.push({ name: `new ${name}`, ctor: v, arity: 1 });
      for (const m of Object.getOwnPropertyNames(v.prototype).sort()) {
        const d = Object.getOwnPropertyDescriptor(v.prototype, m);
        if (SKIP_METHODS.has(m) || m.startsWith('__') || typeof d.value !== 'function') continue;
        out.push({ name: `${name}.${m}`, fixture: FIXTURES[name], method: m, arity: Math.max(d.value.length, (SANE[`${name}.${m}`] || (() => []))({}).length) });
      }
      continue;
    }
    out.push({ name, fn: v, arity: Math.max(v.length, (SANE[name] || (() => []))({ dir: '', file: '' }).length) });
  }
  return out;
}

// ---- one input --------------------------------------------------------------------------

function plan(data, tgts) {
  const src = new Src(data);
  const calls = [];
  const n = 1 + src.below(5);
  for (let i = 0; i < n; i++) {
    const t = tgts[((src.byte() << 8) | src.byte()) % tgts.length];
    const fields = FIELDS[t.name] || [];
    // Which argument (or option field, or misspelt option) is hostile, and with what.
    const which = src.below(t.arity + fields.length + 2);
    const value = HOSTILE_NAMES[src.byte() % HOSTILE_NAMES.length];
    calls.push({ t, which, value });
    if (!src.left()) break;
  }
  return calls;
}

function describe(calls) {
  return calls.map(({ t, which, value }) => {
    const fields = FIELDS[t.name] || [];
    const at = which < t.arity ? `arg ${which}` : which - t.arity < fields.length ? `option ${fields[which - t.arity]}` : which === t.arity + fields.length ? 'misspelt option' : 'extra arg';
    return `${t.name}(${at} = ${value})`;
  }).join('; ');
}

function args(c, call) {
  const { t, which, value } = call;
  const sane = SANE[t.name] ? SANE[t.name](c) : [];
  const a = sane.slice();
  while (a.length < t.arity) a.push(undefined);
  const fields = FIELDS[t.name] || [];
  const v = HOSTILE[value](c);
  if (which < t.arity) {
    a[which] = v;
  } else if (which - t.arity < fields.length) {
    const idx = a.findIndex((x) => x !== null && typeof x === 'object' && !Buffer.isBuffer(x) && !(x instanceof net.Server));
    if (idx >= 0) a[idx] = { ...a[idx], [fields[which - t.arity]]: v };
  } else if (which === t.arity + fields.length) {
    const idx = a.findIndex((x) => x !== null && typeof x === 'object' && !Buffer.isBuffer(x) && !(x instanceof net.Server));
    if (idx >= 0) a[idx] = { ...a[idx], porrt: v, hots: v };
  } else {
    a.push(v);
  }
  return a;
}

function withTimeout(p) {
  let timer;
  return Promise.race([
    Promise.resolve(p).then((v) => ({ ok: v }), (e) => ({ err: e })),
    new Promise((resolve) => { timer = setTimeout(() => resolve({ waited: true }), CALL_TIMEOUT_MS); }),
  ]).finally(() => clearTimeout(timer));
}

async function invoke(fn) {
  try {
    return await withTimeout(fn());
  } catch (e) {
    return { err: e };
  }
}

function coded(e) {
  // A Node code, or the caller's own error (a getter or toString that throws) passing through.
  // Node's codes: 'ERR_*', an errno name ('ENOENT', 'ECONNREFUSED', ...), 'ABORT_ERR'.
  return e instanceof HostileError || (e instanceof Error && typeof e.code === 'string' && /^(ERR_[A-Z0-9_]+|E[A-Z0-9]+|ABORT_ERR)$/.test(e.code));
}

class Session {
  constructor(polyio, peer) {
    this.polyio = polyio;
    this.peer = peer;
    this.owned = [];
    this.fixtures = {};
  }

  async fixture(kind) {
    if (this.fixtures[kind]) return this.fixtures[kind];
    const p = this.polyio;
    const c = this.ctx;
    let f;
    if (kind === 'conn') f = await p.connect({ host: '127.0.0.1', port: c.port });
    else if (kind === 'server') f = await p.listen({ host: '127.0.0.1', port: 0 });
    else if (kind === 'udp') f = await p.bindUdp({ type: 'udp4', address: '127.0.0.1', port: 0 });
    else if (kind === 'file') f = await p.open(c.file, 'r+');
    this.owned.push(f);
    this.fixtures[kind] = f;
    return f;
  }

  own(v) {
    if (v && typeof v === 'object' && (typeof v.close === 'function' || typeof v.destroy === 'function')) this.owned.push(v);
  }

  async cleanup() {
    for (const o of this.owned.reverse()) {
      try {
        if (typeof o.destroy === 'function' && !(o instanceof net.Server)) o.destroy();
        const r = o.close && o.close();
        if (r && typeof r.then === 'function') await withTimeout(r.catch(() => {}));
      } catch { /* closing what a hostile call left behind */ }
    }
  }
}

async function oneInput(polyio, peer, tgts, data, stats) {
  const calls = plan(data, tgts);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pfn-'));
  const file = path.join(dir, 'data.bin');
  fs.writeFileSync(file, 'line one\nline two\n');
  const c = { dir, file, port: peer.port, udpPort: peer.udpPort, unixPath: peer.unixPath };
  // The reference calls get a directory of their own, laid out alike (what polyio's call
  // created must not change what fs finds).
  const refDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pfn-ref-'));
  fs.writeFileSync(path.join(refDir, 'data.bin'), 'line one\nline two\n');
  const cRef = { ...c, dir: refDir, file: path.join(refDir, 'data.bin') };
  const s = new Session(polyio, peer);
  s.ctx = c;
  const findings = [];
  const cwd = process.cwd();
  process.chdir(dir); // a relative path a call gets names a file in the input's own dir
  try {
    for (const call of calls) {
      const { t } = call;
      stats.calls++;
      let target;
      if (t.fixture) {
        const obj = await s.fixture(t.fixture);
        target = (a) => obj[t.method](...a);
      } else if (t.ctor) {
        target = (a) => new t.ctor(...a);
      } else {
        target = (a) => t.fn(...a);
      }
      const a = args(c, call);
      if (process.env.FUZZ_TRACE) process.stderr.write(`call ${describe([call])}\n`);
      const r = await invoke(() => target(a));
      if (r.ok !== undefined) s.own(r.ok);
      if (t.name === 'serve' && a[0] instanceof net.Server) s.owned.push(a[0]);
      if (r.err !== undefined && !coded(r.err) && !UNCODED_LISTED.some(([, test]) => test(t.name, r.err))) {
        stats.uncoded++;
        const e = r.err;
        const msg = e instanceof Error ? `${e.name}: ${e.message}` : `a non-Error ${typeof e}: ${String(e).slice(0, 100)}`;
        const key = `${t.name}: ${msg.slice(0, 120)}`;
        if (!stats.uncodedSeen.has(key)) {
          stats.uncodedSeen.add(key);
          findings.push(`uncoded: ${t.name} threw ${msg.slice(0, 300)} (code ${inspect(e && e.code)}, not Node's)\n  program: ${describe([call])}`);
        }
      }
      const ref = REFERENCE[t.name];
      // fs/promises.open aborts Node 20 (C++ assertions args[1]->IsInt32() and
      // args[2]->IsInt32()) for numeric flags that are not an int32 and for a mode of 2**31
      // or more, both let through by its own checks: such reference calls are skipped.
      const notInt32 = (v) => typeof v === 'number' && (v | 0) !== v;
      const hostile = HOSTILE[call.value](c);
      // dns.promises.lookup aborts it too (args[2]->IsInt32()) for family -0, which its
      // check takes for 0.
      const nodeAborts =
        (['open', 'readFile', 'writeFile'].includes(t.name) && (notInt32(hostile) || (typeof hostile === 'number' && hostile >= 2 ** 31))) ||
        (['lookup', 'open', 'readFile', 'writeFile'].includes(t.name) && Object.is(hostile, -0));
      if (ref && !nodeAborts && !(typeof a[0] === 'number') && !(call.value === "'x'.repeat(1e6)")) {
        const ra = args(cRef, call);
        process.chdir(refDir);
        const rr = await invoke(() => ref(...ra));
        process.chdir(dir);
        if (rr.ok !== undefined) s.own(rr.ok);
        const pc = r.err === undefined ? (r.waited ? 'waited' : 'ok') : r.err.code;
        const rc = rr.err === undefined ? (rr.waited ? 'waited' : 'ok') : rr.err.code;
        // A reference error without a code is Node not checking (stat(path, null) reads
        // null.bigint): nothing to compare with.
        // Nor is the caller's own error thrown on either side (Node's message formatting may
        // call the getter that throws).
        const refChecked = rr.err === undefined || (coded(rr.err) && !(rr.err instanceof HostileError));
        const own = r.err instanceof HostileError;
        if (pc !== rc && refChecked && !own && !(r.waited || rr.waited) && !listed(t.name, r, rr)) {
          findings.push(`differs: ${t.name}: polyio ${pc} (${r.err ? r.err.message : ''}), ${t.name === 'lookup' ? 'dns' : 'fs/promises'} ${rc} (${rr.err ? rr.err.message : ''})\n  program: ${describe([call])}`);
        }
      }
    }
  } finally {
    await s.cleanup();
    process.chdir(cwd);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(refDir, { recursive: true, force: true });
  }
  return findings;
}

// Known, intended differences from fs/promises and dns: [why, test(name, polyio, ref)].
const LISTED = [
  [
    'A name that is not ASCII: polyio does no IDNA (its docs: encode with url.domainToASCII ' +
      'first) and finds no such name (ENOTFOUND); Node converts it, or says EINVAL for one IDNA refuses',
    (name, p, r) => name === 'lookup' && p.err?.code === 'ENOTFOUND' && /[^\x00-\x7f]/.test(p.err.hostname ?? ''),
  ],
];

LISTED.push([
  'A signal-like object without removeEventListener: polyio refuses it (ERR_INVALID_ARG_TYPE: ' +
    "it calls both listener methods); fs checks only that it has 'aborted'",
  (name, p, r) => p.err?.code === 'ERR_INVALID_ARG_TYPE' && /signal/.test(p.err.message) && r.err === undefined,
]);

// Errors without a Node code that Node throws alike: [why, test(name, error)].
const UNCODED_LISTED = [
  [
    "A TypedArray whose buffer was detached, read as a path or an address: V8's own TypeError " +
      "(fs's path check and dgram's C++ ToString of the same argument throw it too)",
    (name, e) => /detached ArrayBuffer/.test(e.message),
  ],
];

function listed(name, p, r) {
  return LISTED.some(([, test]) => test(name, p, r));
}

// ---- peer and drivers ----------------------------------------------------------------

function startPeer() {
  // A TCP and a Unix server that send a few lines and end, and a UDP socket: in a child
  // process, so that neither polyio nor this process's loop serves them.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pfn-peer-'));
  const unixPath = path.join(dir, 'peer.sock');
  const code = `
    const net = require('net'), dgram = require('dgram');
    const serve = (c) => { c.on('error', () => {}); c.end('abc\\ndef\\n'); c.resume(); };
    const t = net.createServer(serve).listen(0, '127.0.0.1', () => {
      const u = net.createServer(serve).listen(${JSON.stringify(unixPath)}, () => {
        const d = dgram.createSocket('udp4'); d.on('message', () => {});
        d.bind(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: t.address().port, udpPort: d.address().port }) + '\\n'));
      });
    });
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
  const { spawn } = require('node:child_process');
  const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve) => {
    child.stdout.once('data', (d) => resolve({ ...JSON.parse(String(d)), unixPath, child, dir }));
  });
}

function fds() {
  return new Set(fs.readdirSync('/proc/self/fd'));
}

async function child(argv) {
  const opts = { seed: 1, runs: 200, replay: null, strict: argv.includes('--strict') };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--seed') opts.seed = Number(argv[++i]);
    else if (argv[i] === '--runs') opts.runs = Number(argv[++i]);
    else if (argv[i] === '--secs') opts.secs = Number(argv[++i]);
    else if (argv[i] === '--replay') opts.replay = argv.slice(i + 1);
  }
  const polyio = require('../../bindings-node');
  const tgts = targets(polyio);
  if (argv.includes('--targets')) {
    for (const t of tgts) console.log(t.name, t.arity, (FIELDS[t.name] || []).join(','));
    return 0;
  }
  const peer = await startPeer();
  const inputs = [];
  if (opts.replay) {
    for (const f of opts.replay) inputs.push([f, fs.readFileSync(f)]);
  } else {
    if (fs.existsSync(CORPUS)) {
      for (const f of fs.readdirSync(CORPUS).sort()) inputs.push([f, fs.readFileSync(path.join(CORPUS, f))]);
    }
    let x = (BigInt(opts.seed) * 0x9e3779b97f4a7c15n + 1n) & 0xffffffffffffffffn;
    const next = () => {
      x ^= (x << 13n) & 0xffffffffffffffffn;
      x ^= x >> 7n;
      x ^= (x << 17n) & 0xffffffffffffffffn;
      return Number(x & 0xffn);
    };
    inputs.random = function* random() {
      const end = Date.now() + (opts.secs || 0) * 1000;
      for (let i = 0; opts.secs ? Date.now() < end : i < opts.runs; i++) {
        const n = 1 + (next() % 40);
        yield [`seed ${opts.seed} run ${i}`, Buffer.from(Array.from({ length: n }, next))];
      }
    };
  }
  const stats = { execs: 0, calls: 0, uncoded: 0, divergences: 0, uncodedSeen: new Set() };
  // Warm-up: what the runtime makes once per process is there before fds are counted.
  for (const t of tgts) await oneInput(polyio, peer, [t], Buffer.from([0, 0, 0, 255, 0]), { ...stats, uncodedSeen: new Set() });
  await new Promise((r) => setTimeout(r, 50));
  const before = fds();
  let findings = 0;
  const all = function* all() {
    yield* inputs;
    if (inputs.random) yield* inputs.random();
  };
  for (const [label, data] of all()) {
    const found = await oneInput(polyio, peer, tgts, data, stats);
    stats.execs++;
    // Every object the input made is closed: its fds must be gone (closing settles within a
    // few turns of the loop).
    let extra = [];
    for (let i = 0; i < 20; i++) {
      extra = [...fds()].filter((fd) => !before.has(fd) && fs.existsSync(`/proc/self/fd/${fd}`));
      if (!extra.length) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    if (extra.length) {
      const what = extra.map((fd) => { try { return fs.readlinkSync(`/proc/self/fd/${fd}`); } catch { return fd; } });
      found.push(`fds left open after the input's objects were closed: ${what.join(', ')}\n  program: ${describe(plan(data, tgts))}`);
      for (const fd of extra) before.add(fd);
    }
    for (const f of found) {
      // Without --strict, a code that differs from Node's (or is missing) is reported, not
      // failed on: the known ones are listed in docs/reliability.md, not all fixed yet.
      if (opts.strict) findings++;
      else stats.divergences++;
      console.log(`${opts.strict ? 'FINDING' : 'DIVERGENCE'} in ${label} (input ${data.toString('hex')}):\n${f}`);
    }
  }
  await new Promise((r) => setTimeout(r, 200));
  const leaked = [...fds()].filter((fd) => !before.has(fd) && fs.existsSync(`/proc/self/fd/${fd}`));
  if (leaked.length) {
    findings++;
    console.log(`FINDING: fds left open after every object was closed: ${leaked.map((fd) => { try { return fs.readlinkSync(`/proc/self/fd/${fd}`); } catch { return fd; } }).join(', ')}`);
  }
  peer.child.stdin.end();
  fs.rmSync(peer.dir, { recursive: true, force: true });
  console.log(`node_args: ${stats.execs} inputs, ${stats.calls} calls, ${findings} findings, ${stats.divergences} divergences from Node's codes (${stats.uncoded} errors without a code)`);
  return findings ? 1 : 0;
}

function parent(argv) {
  const timeout = Number(process.env.FUZZ_CHILD_TIMEOUT || 900) * 1000;
  const r = spawnSync(process.execPath, [__filename, '--child', ...argv], { encoding: 'utf8', timeout, maxBuffer: 1 << 28 });
  process.stdout.write(r.stdout || '');
  const bad = (r.stderr || '').split('\n').filter((l) => /panicked|FATAL ERROR|fatal runtime error|napi_fatal|Assertion failed/.test(l));
  if (r.error && r.error.code === 'ETIMEDOUT') {
    console.log(`FINDING: the fuzzing process hung (no end after ${timeout / 1000} s)`);
    return 1;
  }
  if (r.signal) {
    console.log((r.stderr || '').slice(-4000));
    console.log(`FINDING: the fuzzing process died of ${r.signal}`);
    return 1;
  }
  if (bad.length) {
    console.log((r.stderr || '').slice(-4000));
    console.log(`FINDING: ${bad[0]}`);
    return 1;
  }
  if (!/^node_args: /m.test(r.stdout || '')) {
    console.log((r.stderr || '').slice(-4000));
    console.log(`FINDING: the fuzzing process ended (status ${r.status}) before its summary`);
    return 1;
  }
  if (r.status !== 0) process.stdout.write((r.stderr || '').slice(-4000));
  return r.status;
}

if (process.argv[2] === '--child') {
  child(process.argv.slice(3)).then((code) => process.exit(code), (e) => {
    console.error(e);
    process.exit(2);
  });
} else {
  process.exit(parent(process.argv.slice(2)));
}
