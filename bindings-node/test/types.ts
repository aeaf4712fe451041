// Compile-time checks of index.d.ts, run by `tsc --strict` in `make test-node` (through
// examples/node/tsconfig.json): every line under `@ts-expect-error` must fail to compile,
// every other line must compile. Never run.
import * as http from 'node:http'
import * as polyio from 'polyio'

// Connections, servers and sockets come from connect(), listen(), accept() and bindUdp():
// their constructors throw at run time, so `new` does not compile.
// @ts-expect-error: private constructor
new polyio.Connection()
// @ts-expect-error: private constructor
new polyio.Server()
// @ts-expect-error: private constructor
new polyio.UdpSocket()

export async function checks(): Promise<void> {
  // The error type: `code` and the rest need no cast.
  const failed = await polyio.connect({ host: '127.0.0.1', port: 1 }).then(
    () => null,
    (err: polyio.SystemError) => err,
  )
  if (failed !== null) {
    const code: string = failed.code
    const port: number | undefined = failed.port
    const address: string | undefined = failed.address
    const errno: number | undefined = failed.errno
    const syscall: string | undefined = failed.syscall
    console.log(code, port, address, errno, syscall, failed.message)
  }

  // serve() resolves with the server it was given.
  const server: http.Server = await polyio.serve(http.createServer(), {
    host: '127.0.0.1',
    port: 0,
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: 5000,
  })
  server.close()

  // toDuplex() has the net.Socket surface.
  const conn = await polyio.connect({ port: 1 })
  const s: polyio.Socket = conn.toDuplex()
  s.setTimeout(1000, () => s.destroy()).setNoDelay(true).setKeepAlive(true, 1000).ref().unref()
  s.on('timeout', () => s.destroySoon())
  const counts: number = s.bytesRead + s.bytesWritten
  const state: 'open' | 'readOnly' | 'writeOnly' | 'closed' = s.readyState
  const peer: string | undefined = s.remoteAddress
  console.log(counts, state, peer, s.remotePort, s.localPort, s.timeout)
  // @ts-expect-error: readyState is read-only
  s.readyState = 'open'
}
