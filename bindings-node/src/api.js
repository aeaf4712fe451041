// The JS half of polyio's Node binding, run once per environment by the addon (env.rs)
// with its exports. It adds what is natural in JS and not in Rust: async iterators (of
// connections, servers and UDP sockets), Symbol.asyncDispose, toDuplex(), and the
// AbortSignal listeners that cancel core ops.
function polyioApi(binding) {
  'use strict';
  const { Connection, Server, UdpSocket } = binding;
  const cancel = binding.__cancel;
  const watchers = new Map(); // op id -> [signal, listener]
  const reasons = new Map(); // op id -> signal.reason, for ops whose signal fired

  function makeAbortError(reason) {
    const err = new Error('The operation was aborted', reason === undefined ? undefined : { cause: reason });
    err.name = 'AbortError';
    err.code = 'ABORT_ERR';
    return err;
  }

  function forget(id) {
    const w = watchers.get(id);
    if (w !== undefined) {
      watchers.delete(id);
      w[0].removeEventListener('abort', w[1]);
    }
  }

  function watch(signal, id) {
    const listener = () => {
      watchers.delete(id);
      reasons.set(id, signal.reason);
      cancel(id);
    };
    signal.addEventListener('abort', listener, { once: true });
    watchers.set(id, [signal, listener]);
  }

  function unwatch(id) {
    forget(id);
    reasons.delete(id);
  }

  function abortError(idOrSignal) {
    if (typeof idOrSignal === 'number') {
      const reason = reasons.get(idOrSignal);
      unwatch(idOrSignal);
      return makeAbortError(reason);
    }
    return makeAbortError(idOrSignal.reason);
  }

  // write()/end() with a signal: an abort while the promise is pending destroys the
  // connection (as stream.addAbortSignal does) and rejects with an AbortError.
  function destroyOnAbort(signal, conn, promise) {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        conn.destroy();
        reject(makeAbortError(signal.reason));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  // A chunk read from a connection, from the addon: `source` is a slice of the read pool
  // (an ArrayBuffer; `length` >= 0) or a Buffer of its own; `iter`: as an iterator result.
  const { Buffer } = globalThis;
  function chunk(source, offset, length, iter) {
    const value = length < 0 ? source : Buffer.from(source, offset, length);
    return iter ? { value, done: false } : value;
  }

  function closeOnAbort(signal, server) {
    signal.addEventListener('abort', () => server.close(), { once: true });
  }

  const asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose');
  const define = (proto, key, value) =>
    Object.defineProperty(proto, key, { value, writable: true, configurable: true, enumerable: false });

  // A plain iterator over the native `__next()` (one promise per chunk; an async generator
  // around `read()` costs three). Leaving the loop early leaves the connection open.
  define(Connection.prototype, Symbol.asyncIterator, function chunks() {
    const conn = this;
    return {
      next: () => conn.__next(),
      return: (value) => Promise.resolve({ value, done: true }),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  });
  define(Connection.prototype, asyncDispose, function dispose() {
    return this.close();
  });
  define(Connection.prototype, 'toDuplex', function toDuplex(options) {
    const { Duplex } = process.getBuiltinModule('node:stream');
    const conn = this;
    let reading = false;
    return new Duplex({
      ...options,
      read() {
        if (reading) return;
        reading = true;
        conn.read().then(
          (chunk) => {
            reading = false;
            this.push(chunk);
          },
          (err) => {
            reading = false;
            this.destroy(err);
          },
        );
      },
      write(chunk, encoding, callback) {
        conn.write(chunk).then(() => callback(), callback);
      },
      final(callback) {
        conn.end().then(() => callback(), callback);
      },
      destroy(err, callback) {
        conn.destroy();
        callback(err);
      },
    });
  });

  define(Server.prototype, Symbol.asyncIterator, async function* connections() {
    for (;;) {
      let conn;
      try {
        conn = await this.accept();
      } catch (err) {
        if (err && err.code === 'ERR_SERVER_NOT_RUNNING') return;
        throw err;
      }
      yield conn;
    }
  });
  define(Server.prototype, asyncDispose, function dispose() {
    return this.close();
  });

  // As for connections: a plain iterator over the native `__next()`, one receive per step.
  define(UdpSocket.prototype, Symbol.asyncIterator, function datagrams() {
    const sock = this;
    return {
      next: () => sock.__next(),
      return: (value) => Promise.resolve({ value, done: true }),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  });
  define(UdpSocket.prototype, asyncDispose, function dispose() {
    return this.close();
  });

  return { watch, unwatch, abortError, closeOnAbort, destroyOnAbort, chunk };
}
