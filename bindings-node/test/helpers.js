'use strict';
// Shared helpers for the polyio Node tests.
const crypto = require('node:crypto');
const polyio = require('..');

/** A listening server on 127.0.0.1 and a connected (client, accepted) pair. */
async function pair(options = {}) {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.address();
  const accepted = server.accept();
  const client = await polyio.connect({ host: '127.0.0.1', port, ...options });
  const peer = await accepted;
  return { server, port, client, peer };
}

/** Reads until EOF; returns every byte. */
async function readAll(conn) {
  const chunks = [];
  for (;;) {
    const c = await conn.read();
    if (c === null) return Buffer.concat(chunks);
    chunks.push(c);
  }
}

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

/** Deterministic pseudo-random bytes. */
function pattern(n, seed = 1) {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Resolves to 'pending' if `p` has not settled after `ms`, else to its outcome. */
function settledWithin(p, ms) {
  return Promise.race([
    p.then(() => 'resolved', () => 'rejected'),
    new Promise((r) => setTimeout(() => r('pending'), ms)),
  ]);
}

module.exports = { polyio, pair, readAll, sha256, pattern, settledWithin };
