// The Node worker of `make bench-files` (tests/bench/files/run.py drives it): runs one
// workload for one row and prints {"secs", "cpu", "late_ms"}, every byte verified; late_ms is
// how late a 1 ms timer fired at worst during the run.
//
// Rows: polyio (`readFile`, `open()` + FileHandle `read` / `write` / `sync`; the backend is
// POLYIO_FS_BACKEND's), `fs/promises` (same calls), and the sync calls (`fs.readFileSync`,
// `fs.readSync`, `fs.writeSync` + `fs.fsyncSync`). Usage: files_node.js ROW WORKLOAD DIR COUNT.
'use strict';

const fs = require('node:fs');
const fsp = require('node:fs/promises');
const path = require('node:path');
const assert = require('node:assert/strict');

const IN_FLIGHT = 64;
const SMALL = 4096;
const CHUNK = 65536;
const PERIOD = 1048573;

const [row, workload, dir, countArg] = process.argv.slice(2);
const count = Number(countArg);
const pattern = fs.readFileSync(path.join(dir, 'pattern.bin'));
const offRaw = fs.readFileSync(path.join(dir, 'offsets.bin'));
const offsets = [];
for (let i = 0; i < count && 8 * i < offRaw.length; i++) {
  offsets.push(Number(offRaw.readBigUInt64LE(8 * i)));
}
const small = (i) => path.join(dir, 'small', String(i));
const out = (i) => path.join(dir, 'out', String(i));
const big = path.join(dir, 'big');
const bigLen = fs.statSync(big).size;
const bigAt = (o, n) => pattern.subarray(o % PERIOD, (o % PERIOD) + n);
const smallFile = (i) => pattern.subarray((i * 4099) % PERIOD, ((i * 4099) % PERIOD) + SMALL);

function check(got, want) {
  if (!got.equals(want)) throw new Error('bytes differ');
}

/** Runs one(i) for i < n, IN_FLIGHT at a time (each worker takes the next). */
async function inFlight(n, one) {
  let next = 0;
  const worker = async () => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

/** The four workloads over an `fs/promises`-shaped API (polyio's or Node's). */
function promiseRows(api) {
  return {
    async read_small_files() {
      await inFlight(count, async (i) => check(await api.readFile(small(i)), smallFile(i)));
    },
    async random_pread_4k() {
      const f = await api.open(big, 'r');
      const bufs = [];
      await inFlight(count, async (i) => {
        const b = bufs.pop() ?? Buffer.alloc(SMALL);
        const { bytesRead } = await f.read(b, 0, SMALL, offsets[i]);
        assert.equal(bytesRead, SMALL);
        check(b, bigAt(offsets[i], SMALL));
        bufs.push(b);
      });
      await f.close();
    },
    async sequential_64k() {
      const f = await api.open(big, 'r');
      const b = Buffer.alloc(CHUNK);
      for (let at = 0; at < bigLen; at += CHUNK) {
        const { bytesRead } = await f.read(b, 0, CHUNK, null);
        assert.equal(bytesRead, CHUNK);
        check(b, bigAt(at, CHUNK));
      }
      await f.close();
    },
    async write_fsync_4k() {
      for (let i = 0; i < count; i++) {
        const f = await api.open(out(i), 'w');
        const { bytesWritten } = await f.write(smallFile(i), 0, SMALL, 0);
        assert.equal(bytesWritten, SMALL);
        await f.sync();
        await f.close();
      }
    },
  };
}

const syncRows = {
  async read_small_files() {
    for (let i = 0; i < count; i++) check(fs.readFileSync(small(i)), smallFile(i));
  },
  async random_pread_4k() {
    const fd = fs.openSync(big, 'r');
    const b = Buffer.alloc(SMALL);
    for (const o of offsets) {
      assert.equal(fs.readSync(fd, b, 0, SMALL, o), SMALL);
      check(b, bigAt(o, SMALL));
    }
    fs.closeSync(fd);
  },
  async sequential_64k() {
    const fd = fs.openSync(big, 'r');
    const b = Buffer.alloc(CHUNK);
    for (let at = 0; at < bigLen; at += CHUNK) {
      assert.equal(fs.readSync(fd, b, 0, CHUNK, null), CHUNK);
      check(b, bigAt(at, CHUNK));
    }
    fs.closeSync(fd);
  },
  async write_fsync_4k() {
    for (let i = 0; i < count; i++) {
      const fd = fs.openSync(out(i), 'w');
      assert.equal(fs.writeSync(fd, smallFile(i), 0, SMALL, 0), SMALL);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
  },
};

function rows() {
  if (row === 'polyio-uring' || row === 'polyio-threads') {
    const polyio = require('../../../bindings-node');
    assert.equal(polyio.__fsBackend(), row.slice('polyio-'.length), `POLYIO_FS_BACKEND for ${row}`);
    return promiseRows(polyio);
  }
  if (row === 'fs-promises') return promiseRows(fsp);
  if (row === 'fs-sync') return syncRows;
  throw new Error(`unknown row ${row}`);
}

async function main() {
  const work = rows()[workload];
  if (!work) throw new Error(`unknown workload ${workload}`);
  // A 1 ms timer, re-armed each time it fires; its worst lateness is the loop's worst stall.
  let late = 0;
  let due = 0;
  let timer;
  const arm = () => {
    due = performance.now() + 1;
    timer = setTimeout(() => {
      late = Math.max(late, performance.now() - due);
      arm();
    }, 1);
  };
  arm();
  await new Promise((r) => setTimeout(r, 2));
  late = 0;
  const cpu = process.cpuUsage();
  const t = performance.now();
  await work();
  const secs = (performance.now() - t) / 1e3;
  const used = process.cpuUsage(cpu);
  late = Math.max(late, performance.now() - due);
  clearTimeout(timer);
  const r = { secs, cpu: (used.user + used.system) / 1e6, late_ms: Math.round(late * 1e3) / 1e3 };
  process.stdout.write(JSON.stringify(r) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
