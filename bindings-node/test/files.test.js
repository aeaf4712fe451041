'use strict';
// Files against fs/promises: contents by hash, positions, O_APPEND, > 2 GiB offsets, errors
// (code, errno, syscall, path), stat, AbortSignal on a blocked read, truncate. The suite runs
// on the backend POLYIO_FS_BACKEND names (io_uring by default); the last test re-runs this
// file on the blocking pool.
const test = require('node:test');
const assert = require('node:assert/strict');
const fsp = require('node:fs/promises');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync, execFileSync } = require('node:child_process');
const { polyio, sha256, pattern } = require('./helpers.js');

const want = process.env.POLYIO_FS_BACKEND === 'threads' ? 'threads' : 'uring';
let dir;
test.before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'polyio-node-'));
});
test.after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

test(`runs on the ${want} backend`, () => {
  assert.equal(polyio.__fsBackend(), want);
});

test('readFile and writeFile match fs/promises by hash', async () => {
  const p = path.join(dir, 'data');
  const data = pattern(3 << 20, 7);
  await polyio.writeFile(p, data);
  assert.equal(sha256(await fsp.readFile(p)), sha256(data));
  assert.equal(sha256(await polyio.readFile(p)), sha256(data));
  await polyio.writeFile(p, 'héllo', 'utf8');
  assert.equal(await polyio.readFile(p, 'utf8'), await fsp.readFile(p, 'utf8'));
  assert.equal(await polyio.readFile(p, { encoding: 'latin1' }), await fsp.readFile(p, { encoding: 'latin1' }));
  await polyio.writeFile(p, ' world', { flag: 'a' });
  assert.equal(await polyio.readFile(p, 'utf8'), 'héllo world');
  await polyio.writeFile(path.join(dir, 'empty'), '');
  assert.deepEqual(await polyio.readFile(path.join(dir, 'empty')), Buffer.alloc(0));
  assert.match(await polyio.readFile('/proc/self/status', 'utf8'), /^Name:/);
});

test('a FileHandle reads and writes at positions as fs/promises', async () => {
  const p = path.join(dir, 'handle');
  const data = pattern(100000, 3);
  await fsp.writeFile(p, data);
  const ours = await polyio.open(p, 'r+');
  const theirs = await fsp.open(p, 'r');
  try {
    for (const [len, pos] of [[10, 0], [1000, 99990], [5, 200000], [4096, null], [4096, null]]) {
      const a = await ours.read(Buffer.alloc(len), 0, len, pos);
      const b = await theirs.read(Buffer.alloc(len), 0, len, pos);
      assert.equal(a.bytesRead, b.bytesRead, `read(${len}, ${pos})`);
      assert.deepEqual(a.buffer, b.buffer);
    }
    const w = await ours.write(Buffer.from('XYZ'), 0, 3, 10);
    assert.equal(w.bytesWritten, 3);
    const far = 5 * 2 ** 30;
    assert.equal((await ours.write('end', far)).bytesWritten, 3);
    const st = await ours.stat();
    assert.equal(st.size, far + 3);
    assert.ok(st.isFile() && !st.isDirectory());
    const ref = await fsp.stat(p);
    assert.equal(st.ino, ref.ino);
    assert.equal(st.mtimeMs, ref.mtimeMs);
    const { bytesRead, buffer } = await ours.read({ buffer: Buffer.alloc(3), position: far });
    assert.equal(buffer.subarray(0, bytesRead).toString(), 'end');
    await ours.truncate(20);
    await ours.sync();
    await ours.datasync();
    assert.equal((await fsp.readFile(p)).length, 20);
    assert.equal((await fsp.readFile(p)).subarray(10, 13).toString(), 'XYZ');
  } finally {
    await ours.close();
    await theirs.close();
  }
  await assert.rejects(ours.read(Buffer.alloc(1)), { code: 'EBADF' });
  await ours.close(); // twice is fine
});

test('append mode and Symbol.asyncDispose', async () => {
  const p = path.join(dir, 'log');
  const a = await polyio.open(p, 'a');
  await a.write('one\n');
  await a.writeFile('two\n');
  await a[Symbol.asyncDispose]();
  await assert.rejects(a.write('x'), { code: 'EBADF' });
  const b = await polyio.open(p, 'a+');
  await b.write('three\n');
  await b.close();
  assert.equal(await polyio.readFile(p, 'utf8'), 'one\ntwo\nthree\n');
  const c = await polyio.open(p, 'r');
  assert.equal(await c.readFile('utf8'), 'one\ntwo\nthree\n');
  await c.close();
});

async function errorOf(promise) {
  try {
    await promise;
  } catch (e) {
    return { code: e.code, errno: e.errno, syscall: e.syscall, path: e.path };
  }
  assert.fail('did not reject');
}

test('errors carry Node codes, errno, syscall and path', async () => {
  const missing = path.join(dir, 'missing');
  assert.deepEqual(await errorOf(polyio.readFile(missing)), await errorOf(fsp.readFile(missing)));
  assert.deepEqual(await errorOf(polyio.open(missing)), await errorOf(fsp.open(missing)));
  assert.deepEqual(await errorOf(polyio.stat(missing)), await errorOf(fsp.stat(missing)));
  assert.deepEqual(await errorOf(polyio.open(dir, 'w')), await errorOf(fsp.open(dir, 'w')));
  const e = await errorOf(polyio.readFile(dir));
  assert.equal(e.code, 'EISDIR');
  assert.equal(e.errno, -21);
  const x = path.join(dir, 'exists');
  await fsp.writeFile(x, '');
  assert.deepEqual(await errorOf(polyio.open(x, 'wx')), await errorOf(fsp.open(x, 'wx')));
  await assert.rejects(polyio.open(x, 'nope'), { code: 'ERR_INVALID_ARG_VALUE' });
});

test('EACCES for a file made unreadable (as nobody)', { skip: process.platform !== 'linux' }, () => {
  const secret = path.join(dir, 'secret');
  fs.writeFileSync(secret, 'no');
  fs.chmodSync(secret, 0);
  fs.chmodSync(dir, 0o755);
  const script = `
    const polyio = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    if (process.getuid() === 0) { process.setgid(65534); process.setuid(65534); }
    polyio.readFile(${JSON.stringify(secret)}).then(
      () => { console.log('no error'); process.exit(1); },
      (e) => { console.log(e.code, e.errno, e.syscall); });`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(out.trim(), 'EACCES -13 open');
});

test('an AbortSignal cancels a blocked read (and readFile takes one)', async () => {
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const f = await polyio.open(fifo, 'r+');
  const ac = new AbortController();
  const h = f[Object.getOwnPropertySymbols(f)[0]];
  const reading = polyio.__fsRead(h, 16, -1, { signal: ac.signal });
  await new Promise((r) => setTimeout(r, 30));
  ac.abort();
  await assert.rejects(reading, { name: 'AbortError', code: 'ABORT_ERR' });
  const w = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  fs.writeSync(w, Buffer.alloc(64, 1));
  fs.closeSync(w);
  const { bytesRead } = await f.read(Buffer.alloc(128), 0, 128, null);
  if (want === 'uring') assert.equal(bytesRead, 64);
  else assert.ok(bytesRead === 64 || bytesRead === 48, String(bytesRead));
  await f.close();
  const aborted = AbortSignal.abort();
  await assert.rejects(polyio.readFile(path.join(dir, 'log'), { signal: aborted }), { code: 'ABORT_ERR' });
});

test('timers keep firing during a long chain of reads that complete at once', async () => {
  // io_uring serves a cached read during its submit call; settled inline one after another,
  // such reads would chain through promise continuations and never let the loop run a timer.
  const p = path.join(dir, 'chain');
  await fsp.writeFile(p, pattern(1 << 16, 3));
  const fh = await polyio.open(p, 'r');
  const buf = Buffer.alloc(4096);
  let ticks = 0;
  const iv = setInterval(() => { ticks++; }, 1);
  try {
    for (let i = 0; i < 20000; i++) {
      const { bytesRead } = await fh.read(buf, 0, 4096, (i % 16) * 4096);
      assert.equal(bytesRead, 4096);
    }
  } finally {
    clearInterval(iv);
    await fh.close();
  }
  assert.ok(ticks > 0, 'no timer ran during 20,000 reads');
});

test('the whole suite on the blocking pool', { skip: want === 'threads' }, () => {
  const r = spawnSync(process.execPath, ['--test', __filename], {
    env: { ...process.env, POLYIO_FS_BACKEND: 'threads', NODE_TEST_CONTEXT: undefined },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /pass [1-9]/);
});
