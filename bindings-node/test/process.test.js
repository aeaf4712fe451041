'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { polyio, pair, readAll, sha256, pattern } = require('./helpers.js');

const pkg = JSON.stringify(path.resolve(__dirname, '..'));

function runScript(src, { killAfterMs } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const t0 = Date.now();
    let killed = false;
    const timer = killAfterMs && setTimeout(() => ((killed = true), child.kill()), killAfterMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, killed, ms: Date.now() - t0, out });
    });
  });
}

test('a script whose work is done exits by itself, within a second', async () => {
  const r = await runScript(`
    const p = require(${pkg});
    (async () => {
      const s = await p.listen({ host: '127.0.0.1', port: 0 });
      const c = p.connect({ host: '127.0.0.1', port: s.address().port });
      const peer = await s.accept();
      await (await c).write('x');
      console.log(String(await peer.read()));
      await p.sleep(10);
      (await c).destroy(); await peer.close(); await s.close();
      const t = Date.now(); process.on('exit', () => console.log('exit after', Date.now() - t));
    })();
  `, { killAfterMs: 10_000 });
  assert.equal(r.killed, false, r.out);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^x\nexit after (\d+)\n$/);
  assert.ok(Number(/exit after (\d+)/.exec(r.out)[1]) < 1000, r.out);
});

test('a script with nothing pending that never used the network exits at once', async () => {
  const r = await runScript(`require(${pkg}); console.log('loaded')`, { killAfterMs: 10_000 });
  assert.equal(r.killed, false);
  assert.equal(r.code, 0, r.out);
  assert.ok(r.ms < 5000);
});

test('a script with a listening server keeps running', async () => {
  const r = await runScript(`
    const p = require(${pkg});
    p.listen({ host: '127.0.0.1', port: 0 }).then(() => console.log('listening'));
  `, { killAfterMs: 1500 });
  assert.equal(r.killed, true, `exited on its own: ${r.out}`);
  assert.match(r.out, /listening/);
});

test('a pending sleep keeps the process alive until it fires', async () => {
  const r = await runScript(`
    const p = require(${pkg}); const t = Date.now();
    p.sleep(300).then(() => console.log('slept', Date.now() - t >= 299));
  `, { killAfterMs: 10_000 });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /slept true/);
});

test('worker threads: each worker has its own runtime', async () => {
  const workerSrc = `
    const { parentPort, workerData } = require('node:worker_threads');
    const p = require(workerData.pkg);
    (async () => {
      const server = await p.listen({ host: '127.0.0.1', port: 0 });
      parentPort.postMessage({ port: server.address().port });
      const conn = await server.accept();
      for await (const chunk of conn) await conn.write(chunk);
      await conn.end();
      await conn.close();
      await server.close();
    })();
  `;
  const workers = [];
  for (let i = 0; i < 3; i++) {
    const w = new Worker(workerSrc, { eval: true, workerData: { pkg: JSON.parse(pkg) } });
    const port = await new Promise((resolve, reject) => {
      w.once('message', (m) => resolve(m.port));
      w.once('error', reject);
    });
    workers.push({ w, port, exited: new Promise((r) => w.once('exit', r)) });
  }
  // Meanwhile the main thread's runtime keeps working too.
  const { server, client, peer } = await pair();
  await Promise.all(
    workers.map(async ({ port }, i) => {
      const data = pattern(300_000 + i, i + 9);
      const conn = await polyio.connect({ host: '127.0.0.1', port });
      const [, got] = await Promise.all([
        (async () => {
          await conn.write(data);
          await conn.end();
        })(),
        readAll(conn),
      ]);
      assert.equal(sha256(got), sha256(data));
      await conn.close();
    }),
  );
  for (const { exited } of workers) assert.equal(await exited, 0);
  await client.write('main');
  assert.equal((await peer.read()).toString(), 'main');
  await Promise.all([client.close(), peer.close(), server.close()]);
});

test('a worker terminated with operations in flight does not crash the process', async () => {
  const w = new Worker(
    `const p = require(${pkg});
     (async () => {
       const s = await p.listen({ host: '127.0.0.1', port: 0 });
       s.accept().catch(() => {});
       p.sleep(60_000);
       require('node:worker_threads').parentPort.postMessage('ready');
     })();`,
    { eval: true },
  );
  await new Promise((r) => w.once('message', r));
  await w.terminate();
  // The main thread is still fine.
  await polyio.sleep(1);
});

test('process.exit() with a server, connections and ops in flight exits cleanly', async () => {
  const r = await runScript(`
    const p = require(${pkg});
    (async () => {
      const s = await p.listen({ host: '127.0.0.1', port: 0 });
      const c = await p.connect({ host: '127.0.0.1', port: s.address().port });
      const peer = await s.accept();
      c.read().catch(() => {}); peer.read().catch(() => {}); s.accept().catch(() => {});
      p.sleep(60_000);
      process.exit(3);
    })();
  `, { killAfterMs: 10_000 });
  assert.equal(r.killed, false, r.out);
  assert.equal(r.code, 3, r.out);
  assert.doesNotMatch(r.out, /panick|fatal|abort/i);
});

test('the package loads with import as well as require', async () => {
  const url = JSON.stringify(require('node:url').pathToFileURL(path.resolve(__dirname, '..', 'index.js')).href);
  const r = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { connect, listen, sleep, Connection, Server } from ${url};
      import polyio from ${url};
      await sleep(1);
      console.log([connect, listen, sleep, Connection, Server, polyio.connect].map((f) => typeof f).join(' '));
    `]);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
  assert.equal(r.code, 0, r.out);
  assert.equal(r.out.trim(), 'function function function function function function');
});

test('open servers and connections are GC roots, as in net: dropping every reference closes nothing', async () => {
  const r = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', '-e', `
      const p = require(${pkg});
      const net = require('node:net');
      let port = 0;
      // No reference to the server or the connections survives these callbacks.
      p.listen({ host: '127.0.0.1', port: 0 }).then((s) => {
        port = s.address().port;
        s.accept().then(async (c) => {
          const echo = await c.read();
          await c.write(echo);
          c.read().then((eof) => { console.log('server saw', eof); process.exit(0); });
        });
      });
      (async () => {
        while (port === 0) await p.sleep(5);
        for (let i = 0; i < 5; i++) { globalThis.gc(); await p.sleep(10); }
        const sock = net.connect(port, '127.0.0.1', () => sock.write('ping'));
        sock.on('data', (d) => {
          console.log('client got', String(d));
          for (let i = 0; i < 3; i++) globalThis.gc();
          setTimeout(() => sock.end(), 50);
        });
      })();
    `]);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill(), 10_000);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, sig, out });
    });
  });
  assert.equal(r.sig, null, `killed: ${r.out}`);
  assert.equal(r.code, 0, r.out);
  assert.equal(r.out, 'client got ping\nserver saw null\n');
});
