// The JS half of polyio's Node binding, run once per environment by the addon (env.rs)
// with its exports. It adds what is natural in JS and not in Rust: async iterators (of
// connections, servers and UDP sockets), Symbol.asyncDispose, toDuplex(), the AbortSignal
// listeners that cancel core ops, and the files API (readFile, writeFile, stat, open() ->
// FileHandle) over the native __fs* calls.
function polyioApi(binding) {
  'use strict';
  const { Connection, Server, UdpSocket } = binding;
  const cancel = binding.__cancel;
  const watchers = new Map(); // op id -> [signal, listener]
  const reasons = new Map(); // op id -> signal.reason, for ops whose signal fired

  // What polyio takes for an AbortSignal (as the addon's check): it calls both listeners.
  const isSignal = (s) =>
    s !== null &&
    typeof s === 'object' &&
    typeof s.aborted === 'boolean' &&
    typeof s.addEventListener === 'function' &&
    typeof s.removeEventListener === 'function';

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

  // A datagram received, from the addon: its bytes as for chunk(), its source `ip` as a
  // number (IPv4; the text of the last one is kept, as datagrams mostly come from few
  // hosts) or a string (IPv6), and its port; `iter`: as an iterator result.
  let lastIp = -1;
  let lastAddress = '';
  function datagram(source, offset, length, ip, port, iter) {
    const data = length < 0 ? source : Buffer.from(source, offset, length);
    let address = ip;
    let family = 'IPv6';
    if (typeof ip === 'number') {
      if (ip !== lastIp) {
        lastIp = ip;
        lastAddress = `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
      }
      address = lastAddress;
      family = 'IPv4';
    }
    const msg = { address, family, port, data, size: data.length };
    return iter ? { value: msg, done: false } : msg;
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
  // ---- toDuplex(): a stream.Duplex with the net.Socket surface http and frameworks use --
  const CONN = Symbol('polyio.connection');
  const TIMER = Symbol('polyio.timer');
  let Socket; // the class, made on first use (node:stream loads then)
  function socketClass() {
    if (Socket !== undefined) return Socket;
    const { Duplex } = process.getBuiltinModule('node:stream');
    const invalid = (code, Ctor, message) => Object.assign(new Ctor(message), { code });

    // Reads are `read()` (one in flight), writes `write()` (with its backpressure), the
    // end `end()`, destroy `destroy()`. Addresses are read once and kept, as net.Socket
    // keeps them, so they still answer after the connection closed.
    Socket = class Socket extends Duplex {
      constructor(conn, options) {
        super(options);
        this[CONN] = conn;
        this[TIMER] = null;
        this._timerArmed = false;
        this._timerMs = 0;
        this._onTimeout = undefined;
        this.connecting = false;
        this.timeout = undefined;
        this.bytesRead = 0;
        this._bytesDispatched = 0;
        this._reading = false;
        this._peername = undefined;
        this._sockname = undefined;
        // Start reading, as net.Socket does: the peer's end (or reset) is seen even by a
        // socket nobody reads from yet.
        this.read(0);
      }

      // Reads flow from the connection into the stream (`__readStart`, a callback per chunk,
      // as libuv's readStart) until the stream has enough; then they pause until it asks again.
      _read() {
        if (this._reading) return;
        this._reading = true;
        this[CONN].__readStart((this._onRead ??= (err, src, off, len) => this._received(err, src, off, len)));
      }

      // A chunk as (source, offset, length), as chunk() takes it; (null, null) at EOF.
      _received(err, src, offset, length) {
        if (err) {
          this._reading = false;
          // Closed through the Connection itself: the stream just goes, with no error.
          this.destroy(err.code === 'ERR_SOCKET_CLOSED' ? null : err);
        } else if (src === null) {
          this._reading = true; // nothing more to read: _read() starts nothing now
          // The end comes after what the chunks before it set off (as with net, where it is a
          // read callback of its own, with ticks and microtasks run in between): http answers
          // pipelined requests before it ends its side. As net: 'end' comes even when nobody
          // reads (then 'close', once ended both ways).
          setImmediate(() => {
            this.push(null);
            this.read(0);
          });
        } else {
          const chunk = length < 0 ? src : Buffer.from(src, offset, length);
          this.bytesRead += chunk.length;
          this._unrefTimer();
          if (!this.push(chunk)) {
            this._reading = false;
            this[CONN].__readStop();
          }
        }
      }

      _write(chunk, encoding, callback) {
        this._bytesDispatched += chunk.length;
        const accepted = this[CONN].__write(chunk);
        if (accepted === true) {
          this._unrefTimer();
          callback();
        } else {
          accepted.then(() => {
            this._unrefTimer();
            callback();
          }, callback);
        }
      }

      _writev(chunks, callback) {
        const bufs = chunks.map(({ chunk, encoding }) =>
          typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk,
        );
        this._write(bufs.length === 1 ? bufs[0] : Buffer.concat(bufs), 'buffer', callback);
      }

      _final(callback) {
        this[CONN].end().then(() => callback(), callback);
      }

      _destroy(err, callback) {
        clearTimeout(this[TIMER]);
        this[TIMER] = null;
        this._timerArmed = false;
        this[CONN].destroy();
        callback(err);
      }

      /** As net.Socket's: emit 'timeout' after `msecs` without reads or writes (0: never). */
      setTimeout(msecs, callback) {
        if (this.destroyed) return this;
        this.timeout = msecs;
        if (typeof msecs !== 'number') {
          throw invalid('ERR_INVALID_ARG_TYPE', TypeError, 'The "msecs" argument must be of type number');
        }
        if (!(msecs >= 0) || msecs === Infinity) {
          throw invalid('ERR_OUT_OF_RANGE', RangeError, `The value of "msecs" is out of range. It must be a non-negative finite number. Received ${msecs}`);
        }
        if (callback !== undefined && typeof callback !== 'function') {
          throw invalid('ERR_INVALID_ARG_TYPE', TypeError, 'The "callback" argument must be of type function');
        }
        // A cleared timer cannot be re-armed (Node drops its delay): 0 lets it go; the same
        // delay again restarts it.
        const timer = this[TIMER];
        if (msecs === 0) {
          clearTimeout(timer);
          this[TIMER] = null;
          this._timerArmed = false;
          if (callback !== undefined) this.removeListener('timeout', callback);
        } else {
          if (timer !== null && this._timerMs === msecs) {
            timer.refresh();
          } else {
            clearTimeout(timer);
            this._timerMs = msecs;
            this[TIMER] = setTimeout((this._onTimeout ??= () => this.emit('timeout')), msecs).unref();
          }
          this._timerArmed = true;
          if (callback !== undefined) this.once('timeout', callback);
        }
        return this;
      }

      /** Restarts the idle timer (activity), as net.Socket's (also after it fired). */
      _unrefTimer() {
        if (this._timerArmed) this[TIMER].refresh();
      }

      setNoDelay(enable) {
        this[CONN].setNoDelay(enable === undefined ? true : Boolean(enable));
        return this;
      }

      setKeepAlive(enable, initialDelay) {
        // As net: the delay is whole seconds; 0 (or none) keeps the system's.
        const secs = ~~(initialDelay / 1000);
        this[CONN].setKeepAlive(Boolean(enable), secs * 1000);
        return this;
      }

      /** Ends the writable side, then destroys once everything is written, as net.Socket's. */
      destroySoon() {
        if (this.writable) this.end();
        if (this.writableFinished) this.destroy();
        else this.once('finish', this.destroy);
      }

      ref() {
        this[CONN].ref();
        return this;
      }

      unref() {
        this[CONN].unref();
        return this;
      }

      _getpeername() {
        if (this._peername === undefined) {
          const c = this[CONN];
          const address = c.remoteAddress;
          if (address === undefined) return {};
          this._peername = { address, family: c.remoteFamily, port: c.remotePort };
        }
        return this._peername;
      }

      _getsockname() {
        if (this._sockname === undefined) {
          const c = this[CONN];
          const address = c.localAddress;
          if (address === undefined) return {};
          this._sockname = { address, family: c.remoteFamily, port: c.localPort };
        }
        return this._sockname;
      }

      address() {
        return this._getsockname();
      }

      get remoteAddress() {
        return this._getpeername().address;
      }

      get remotePort() {
        return this._getpeername().port;
      }

      get remoteFamily() {
        return this._getpeername().family;
      }

      get localAddress() {
        return this._getsockname().address;
      }

      get localPort() {
        return this._getsockname().port;
      }

      get localFamily() {
        return this._getsockname().family;
      }

      get bytesWritten() {
        let bytes = this._bytesDispatched;
        for (const { chunk, encoding } of this.writableBuffer) {
          bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.length;
        }
        return bytes;
      }

      get pending() {
        return this[CONN].closed;
      }

      get readyState() {
        if (this.readable && this.writable) return 'open';
        if (this.readable) return 'readOnly';
        if (this.writable) return 'writeOnly';
        return 'closed';
      }
    };
    return Socket;
  }

  define(Connection.prototype, 'toDuplex', function toDuplex(options) {
    const S = socketClass();
    return new S(this, options);
  });

  // ---- serve(): Node's own servers (http, https, net) fed with polyio connections -----------
  binding.serve = async function serve(server, options) {
    if (server === null || typeof server !== 'object' || typeof server.emit !== 'function') {
      const err = new TypeError('The "server" argument must be an EventEmitter, such as an http.Server');
      err.code = 'ERR_INVALID_ARG_TYPE';
      throw err;
    }
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      const err = new TypeError('The "options" argument must be of type object');
      err.code = 'ERR_INVALID_ARG_TYPE';
      throw err;
    }
    if (server._handle) {
      const err = new Error('Listen method has been called more than once without closing.');
      err.code = 'ERR_SERVER_ALREADY_LISTEN';
      throw err;
    }
    const o = { ...options };
    // The TCP options default to the server's own (http.createServer turns noDelay on;
    // net.Server keeps keepAliveInitialDelay in seconds).
    o.noDelay ??= server.noDelay === true;
    o.keepAlive ??= server.keepAlive === true;
    if (o.keepAliveInitialDelay === undefined && server.keepAliveInitialDelay > 0) {
      o.keepAliveInitialDelay = server.keepAliveInitialDelay * 1000;
    }
    const { signal } = o;
    // Checked before anything listens: a bad signal leaves no listener behind.
    if (signal !== undefined && !isSignal(signal)) {
      const err = new TypeError('The "options.signal" property must be an instance of AbortSignal');
      err.code = 'ERR_INVALID_ARG_TYPE';
      throw err;
    }
    if (signal?.aborted) throw abortError(signal);
    delete o.signal;
    const listener = await binding.listen(o);
    const address = listener.address();
    // What net.Server keeps in `_handle`: close() and address() and ref() reach the listener
    // through it, and `listening` is true while it is set.
    const handle = {
      close: () => void listener.close(),
      ref: () => listener.ref(),
      unref: () => listener.unref(),
    };
    if (typeof address === 'string') {
      server._pipeName = address;
    } else {
      handle.getsockname = (out) => {
        Object.assign(out, listener.address() ?? address);
        return 0;
      };
    }
    server._handle = handle;
    server._connections ??= 0;
    if (server._unref) listener.unref();
    if (signal) signal.addEventListener('abort', () => server.close(), { once: true });
    const socketOptions = {
      allowHalfOpen: server.allowHalfOpen === true,
      ...(server.highWaterMark > 0 && {
        readableHighWaterMark: server.highWaterMark,
        writableHighWaterMark: server.highWaterMark,
      }),
    };
    const accepting = async () => {
      for (;;) {
        let conn;
        try {
          conn = await listener.accept();
        } catch (err) {
          if (err && err.code === 'ERR_SERVER_NOT_RUNNING') return;
          server.emit('error', err);
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        if (server.maxConnections && server._connections >= server.maxConnections) {
          const data = {
            localAddress: conn.localAddress,
            localPort: conn.localPort,
            localFamily: conn.remoteFamily,
            remoteAddress: conn.remoteAddress,
            remotePort: conn.remotePort,
            remoteFamily: conn.remoteFamily,
          };
          conn.destroy();
          server.emit('drop', data);
          continue;
        }
        const socket = conn.toDuplex(socketOptions);
        server._connections++;
        socket.server = server;
        socket._server = server;
        socket.once('close', () => {
          server._connections--;
          if (typeof server._emitCloseIfDrained === 'function') server._emitCloseIfDrained();
        });
        server.emit('connection', socket);
      }
    };
    accepting();
    process.nextTick(() => server.emit('listening'));
    return server;
  };

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

  // ---- files: readFile / writeFile / stat / open() -> FileHandle, as fs/promises --------
  const { constants: fsc } = process.getBuiltinModule('node:fs');
  const { inspect } = process.getBuiltinModule('node:util');
  // fs's argument errors, with its codes and words.
  const invalidValue = (name, value, reason = 'is invalid') => {
    const what = name.includes('.') ? 'property' : 'argument';
    const err = new TypeError(`The ${what} '${name}' ${reason}. Received ${inspect(value)}`);
    err.code = 'ERR_INVALID_ARG_VALUE';
    return err;
  };
  const invalidType = (name, expected, value) => {
    const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${value === null ? 'null' : typeof value === 'object' || typeof value === 'function' ? `an instance of ${value.constructor?.name ?? 'Object'}` : `type ${typeof value} (${inspect(value)})`}`);
    err.code = 'ERR_INVALID_ARG_TYPE';
    return err;
  };
  const outOfRange = (name, range, value) => {
    const err = new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`);
    err.code = 'ERR_OUT_OF_RANGE';
    return err;
  };
  // fs's getOptions: a string is the encoding; an object's encoding and signal are checked.
  const optionsOf = (options, defaults) => {
    if (options === null || options === undefined || typeof options === 'function') return defaults;
    if (typeof options === 'string') options = { ...defaults, encoding: options };
    else if (typeof options !== 'object') throw invalidType('options', 'one of type string or object', options);
    if (options.encoding !== 'buffer' && options.encoding && !Buffer.isEncoding(options.encoding)) {
      throw invalidValue('encoding', options.encoding, 'is invalid encoding');
    }
    if (options.signal !== undefined && !isSignal(options.signal)) {
      throw invalidType('options.signal', 'an instance of AbortSignal', options.signal);
    }
    return options;
  };
  // fs's parseFileMode: a uint32, or a string of octal digits.
  const modeOf = (mode, name = 'mode') => {
    if (mode === undefined || mode === null) return 0o666;
    if (typeof mode === 'string') {
      if (!/^[0-7]+$/.test(mode)) throw invalidValue(name, mode, 'must be a 32-bit unsigned integer or an octal string');
      return parseInt(mode, 8);
    }
    if (typeof mode !== 'number') throw invalidType(name, 'of type number', mode);
    if (!Number.isInteger(mode)) throw outOfRange(name, 'an integer', mode);
    if (mode < 0 || mode > 4294967295) throw outOfRange(name, '>= 0 and <= 4294967295', mode);
    return mode;
  };
  // An integer argument of FileHandle.read / write, as fs's validateInteger.
  const integerOf = (value, name, min = 0, max = Number.MAX_SAFE_INTEGER) => {
    if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
    if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value);
    if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value);
    return value;
  };
  // A position as FileHandle.read / write take it: a bigint is checked; a number that is not
  // a safe integer >= 0 (and null, undefined) means the file's own position.
  const positionOf = (position) => {
    if (typeof position === 'bigint') {
      if (position < -1n || position > BigInt(Number.MAX_SAFE_INTEGER)) throw outOfRange('position', `>= -1 && <= ${Number.MAX_SAFE_INTEGER}`, position);
      return Number(position);
    }
    return Number.isSafeInteger(position) && position >= 0 ? position : -1;
  };
  const flagsOf = (flag, fallback) => {
    if (flag === undefined || flag === null) flag = fallback;
    if (typeof flag === 'number') {
      if (!Number.isInteger(flag)) throw outOfRange('flags', 'an integer', flag);
      if (flag < -2147483648 || flag > 2147483647) throw outOfRange('flags', '>= -2147483648 && <= 2147483647', flag);
      return flag;
    }
    if (typeof flag !== 'string') throw invalidValue('flags', flag);
    const table = {
      r: fsc.O_RDONLY,
      'r+': fsc.O_RDWR,
      rs: fsc.O_RDONLY | fsc.O_SYNC,
      'rs+': fsc.O_RDWR | fsc.O_SYNC,
      'sr+': fsc.O_RDWR | fsc.O_SYNC,
      w: fsc.O_TRUNC | fsc.O_CREAT | fsc.O_WRONLY,
      wx: fsc.O_TRUNC | fsc.O_CREAT | fsc.O_WRONLY | fsc.O_EXCL,
      xw: fsc.O_TRUNC | fsc.O_CREAT | fsc.O_WRONLY | fsc.O_EXCL,
      'w+': fsc.O_TRUNC | fsc.O_CREAT | fsc.O_RDWR,
      'wx+': fsc.O_TRUNC | fsc.O_CREAT | fsc.O_RDWR | fsc.O_EXCL,
      'xw+': fsc.O_TRUNC | fsc.O_CREAT | fsc.O_RDWR | fsc.O_EXCL,
      a: fsc.O_APPEND | fsc.O_CREAT | fsc.O_WRONLY,
      ax: fsc.O_APPEND | fsc.O_CREAT | fsc.O_WRONLY | fsc.O_EXCL,
      xa: fsc.O_APPEND | fsc.O_CREAT | fsc.O_WRONLY | fsc.O_EXCL,
      as: fsc.O_APPEND | fsc.O_CREAT | fsc.O_WRONLY | fsc.O_SYNC,
      sa: fsc.O_APPEND | fsc.O_CREAT | fsc.O_WRONLY | fsc.O_SYNC,
      'a+': fsc.O_APPEND | fsc.O_CREAT | fsc.O_RDWR,
      'ax+': fsc.O_APPEND | fsc.O_CREAT | fsc.O_RDWR | fsc.O_EXCL,
      'xa+': fsc.O_APPEND | fsc.O_CREAT | fsc.O_RDWR | fsc.O_EXCL,
      'as+': fsc.O_APPEND | fsc.O_CREAT | fsc.O_RDWR | fsc.O_SYNC,
      'sa+': fsc.O_APPEND | fsc.O_CREAT | fsc.O_RDWR | fsc.O_SYNC,
    };
    const f = Object.hasOwn(table, flag) ? table[flag] : undefined;
    if (f === undefined) throw invalidValue('flags', flag);
    return f;
  };
  // fs's getValidatedPath: a string, a Uint8Array or a file: URL, without NUL bytes.
  const pathOf = (path, name = 'path') => {
    if (path instanceof URL) {
      if (path.protocol !== 'file:') {
        const err = new TypeError('The URL must be of scheme file');
        err.code = 'ERR_INVALID_URL_SCHEME';
        throw err;
      }
      path = process.getBuiltinModule('node:url').fileURLToPath(path);
    } else if (path instanceof Uint8Array) {
      path = Buffer.from(path.buffer, path.byteOffset, path.byteLength).toString();
    } else if (typeof path !== 'string') {
      throw invalidType(name, 'of type string or an instance of Buffer or URL', path);
    }
    if (path.includes('\0')) {
      throw invalidValue(name, path, 'must be a string, Uint8Array, or URL without null bytes');
    }
    return path;
  };
  // Node's shape for a failed file call: "ENOENT: no such file ..., open '/x'", with path.
  const withPath = (path) => (err) => {
    if (err && typeof err.errno === 'number' && err.code !== 'ABORT_ERR') {
      const desc = String(err.message).replace(/^\S+ \S+ \((.*)\)$/, '$1');
      err.message = `${err.code}: ${desc}, ${err.syscall} '${path}'`;
      err.path = path;
    }
    throw err;
  };
  // fs's writeFile data: a string (encoded), or an ArrayBufferView.
  const dataOf = (data, encoding) => {
    if (typeof data === 'string') return Buffer.from(data, encoding || 'utf8');
    // Any view (a DataView, a Float64Array, ...) as its bytes.
    if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    throw invalidType('data', 'of type string or an instance of Buffer, TypedArray, or DataView', data);
  };

  // fs's writeFile data, with its iterables (an array, a generator, an async iterable) of
  // strings and views, gathered into one buffer.
  const dataOrChunksOf = async (data, encoding) => {
    const iterable =
      data !== null &&
      typeof data === 'object' &&
      !ArrayBuffer.isView(data) &&
      (data[Symbol.iterator] !== undefined || data[Symbol.asyncIterator] !== undefined);
    if (!iterable) return dataOf(data, encoding);
    const parts = [];
    for await (const chunk of data) parts.push(dataOf(chunk, encoding));
    return Buffer.concat(parts);
  };

  class Stats {
    constructor(o) {
      Object.assign(this, o);
      for (const k of ['atime', 'mtime', 'ctime', 'birthtime']) this[k] = new Date(o[`${k}Ms`]);
    }
    isFile() {
      return (this.mode & fsc.S_IFMT) === fsc.S_IFREG;
    }
    isDirectory() {
      return (this.mode & fsc.S_IFMT) === fsc.S_IFDIR;
    }
    isSymbolicLink() {
      return (this.mode & fsc.S_IFMT) === fsc.S_IFLNK;
    }
    isFIFO() {
      return (this.mode & fsc.S_IFMT) === fsc.S_IFIFO;
    }
  }

  const HANDLE = Symbol('polyio.fileHandle');
  const BUILD = Symbol('polyio.fileHandle.build');
  class FileHandle {
    constructor(token, handle) {
      if (token !== BUILD) throw new TypeError('Illegal constructor');
      this[HANDLE] = handle;
    }
    #h(syscall) {
      const h = this[HANDLE];
      if (h === null) {
        const err = new Error(`file closed, ${syscall}`);
        err.code = 'EBADF';
        err.errno = -9;
        err.syscall = syscall;
        return Promise.reject(err);
      }
      return h;
    }
    // read(buffer, offset, length, position) or read({ buffer, offset, length, position }),
    // as FileHandle.read: resolves to { bytesRead, buffer }.
    async read(buffer, offset, length, position) {
      if (buffer !== null && typeof buffer === 'object' && !ArrayBuffer.isView(buffer)) {
        ({ buffer, offset, length, position } = buffer);
      }
      buffer ??= Buffer.alloc(16384);
      if (!ArrayBuffer.isView(buffer)) throw invalidType('buffer', 'an instance of Buffer, TypedArray, or DataView', buffer);
      offset = integerOf(offset ?? 0, 'offset', 0, buffer.byteLength);
      length = integerOf(length ?? buffer.byteLength - offset, 'length', 0, buffer.byteLength - offset);
      const pos = positionOf(position);
      const h = await this.#h('read');
      const got = await binding.__fsRead(h, length, pos);
      got.copy(Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength), offset);
      return { bytesRead: got.length, buffer };
    }
    // write(buffer, offset, length, position) or write(string, position, encoding): resolves
    // to { bytesWritten, buffer }.
    async write(data, a, b, c) {
      let bytes;
      let position;
      if (typeof data === 'string') {
        if (b !== undefined && b !== null && (typeof b !== 'string' || !Buffer.isEncoding(b))) {
          throw invalidValue('encoding', b, 'is invalid encoding');
        }
        bytes = Buffer.from(data, typeof b === 'string' ? b : 'utf8');
        position = a;
      } else if (ArrayBuffer.isView(data)) {
        const offset = integerOf(a ?? 0, 'offset', 0, data.byteLength);
        const length = integerOf(b ?? data.byteLength - offset, 'length', 0, data.byteLength - offset);
        bytes = Buffer.from(data.buffer, data.byteOffset + offset, length);
        position = c;
      } else {
        throw invalidType('buffer', 'of type string or an instance of Buffer, TypedArray, or DataView', data);
      }
      const pos = positionOf(position);
      const h = await this.#h('write');
      const n = await binding.__fsWrite(h, bytes, pos);
      return { bytesWritten: n, buffer: data };
    }
    async readFile(options) {
      const { encoding } = optionsOf(options, {});
      const parts = [];
      for (;;) {
        const h = await this.#h('read');
        const chunk = await binding.__fsRead(h, 65536, -1, { signal: options?.signal });
        if (chunk.length === 0) break;
        parts.push(chunk);
      }
      const all = Buffer.concat(parts);
      return encoding ? all.toString(encoding) : all;
    }
    async writeFile(data, options) {
      const { encoding } = optionsOf(options, { encoding: 'utf8' });
      const bytes = await dataOrChunksOf(data, encoding);
      let done = 0;
      while (done < bytes.length) {
        const h = await this.#h('write');
        done += await binding.__fsWrite(h, bytes.subarray(done), -1);
      }
    }
    async stat() {
      return new Stats(await binding.__fsStat(await this.#h('fstat')));
    }
    async sync() {
      await binding.__fsSync(await this.#h('fsync'), false);
    }
    async datasync() {
      await binding.__fsSync(await this.#h('fdatasync'), true);
    }
    async truncate(len = 0) {
      integerOf(len, 'len', Number.MIN_SAFE_INTEGER);
      await binding.__fsTruncate(await this.#h('ftruncate'), Math.max(len, 0));
    }
    async close() {
      const h = this[HANDLE];
      if (h === null) return;
      this[HANDLE] = null;
      await binding.__fsClose(h);
    }
    [asyncDispose]() {
      return this.close();
    }
  }

  binding.FileHandle = FileHandle;

  // The classes polyio hands out (connect(), listen(), bindUdp(), open()) are not built by
  // callers: `new` throws Node's TypeError for that, with its code, as `new AbortSignal()`.
  const illegal = () => {
    const err = new TypeError('Illegal constructor');
    err.code = 'ERR_ILLEGAL_CONSTRUCTOR';
    return err;
  };
  for (const name of ['Connection', 'Server', 'UdpSocket', 'FileHandle']) {
    binding[name] = new Proxy(binding[name], {
      construct() {
        throw illegal();
      },
      apply() {
        throw illegal();
      },
    });
  }
  binding.open = async function open(path, flags, mode) {
    const p = pathOf(path);
    const f = flagsOf(flags, 'r');
    const h = await binding.__fsOpen(p, f, modeOf(mode)).catch(withPath(p));
    return new FileHandle(BUILD, h);
  };
  binding.readFile = async function readFile(path, options) {
    const o = optionsOf(options, { flag: 'r' });
    const p = pathOf(path);
    const flags = flagsOf(o.flag || 'r', 'r');
    let data;
    if (flags === fsc.O_RDONLY) {
      data = await binding.__fsReadFile(p, { signal: o.signal }).catch(withPath(p));
    } else {
      // Another flag ('a+', 'w+', O_DIRECTORY, ...) means what it means to open(2), as in fs.
      const fh = await binding.open(p, flags);
      try {
        data = await fh.readFile({ signal: o.signal });
      } finally {
        await fh.close();
      }
    }
    return o.encoding && o.encoding !== 'buffer' ? data.toString(o.encoding) : data;
  };
  binding.writeFile = async function writeFile(path, data, options) {
    const o = optionsOf(options, { encoding: 'utf8', mode: 0o666, flag: 'w' });
    const bytes = await dataOrChunksOf(data, o.encoding);
    const p = pathOf(path);
    const flags = flagsOf(o.flag || 'w', 'w');
    await binding.__fsWriteFile(p, bytes, flags, modeOf(o.mode), {
      signal: o.signal,
    }).catch(withPath(p));
  };
  binding.stat = async function stat(path) {
    const p = pathOf(path);
    return new Stats(await binding.__fsStat(p).catch(withPath(p)));
  };

  return { watch, unwatch, abortError, closeOnAbort, destroyOnAbort, chunk, datagram };
}
