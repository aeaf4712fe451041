// echo.ts: the Node API in TypeScript — checked by `make test` with `tsc --noEmit --strict`.
// An echo server and a client in one program: listen, accept in `for await`, read and
// write with backpressure, AbortSignal and timeouts, `await using`, and a Duplex pipeline.
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as polyio from 'polyio'
import type { Connection, Server } from 'polyio'

async function serve(server: Server): Promise<void> {
  for await (const conn of server) {
    void (async (c: Connection) => {
      for await (const chunk of c) await c.write(chunk)
      await c.end()
      await c.close()
    })(conn)
  }
}

async function upperCaseOnce(server: Server): Promise<void> {
  const conn: Connection = await server.accept({ signal: AbortSignal.timeout(5000) })
  const duplex = conn.toDuplex()
  const upper = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      cb(null, Buffer.from(chunk.toString('latin1').toUpperCase(), 'latin1'))
    },
  })
  await pipeline(duplex, upper, duplex)
}

async function main(): Promise<void> {
  const server = await polyio.listen({ host: '127.0.0.1', port: 0 })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
  const serving = serve(server)

  const conn = await polyio.connect({ host: address.address, port: address.port, noDelay: true, timeout: 2000 })
  await conn.write('hello, polyio\n')
  const echo: Buffer | null = await conn.read({ signal: AbortSignal.timeout(1000) })
  console.log(`echo from ${conn.remoteAddress}:${conn.remotePort}: ${echo?.toString().trim()}`)
  await conn.close()

  try {
    await polyio.connect({ host: '127.0.0.1', port: 1 })
  } catch (err) {
    console.log(`port 1: ${(err as NodeJS.ErrnoException).code}`) // 'ECONNREFUSED'
  }
  await polyio.sleep(10)
  await server.close()
  await serving

  const upper = await polyio.listen({ host: '127.0.0.1', port: 0 })
  const done = upperCaseOnce(upper)
  {
    const ua = upper.address()
    await using c = await polyio.connect({ host: '127.0.0.1', port: typeof ua === 'object' ? ua?.port ?? 0 : 0 })
    await c.write('shout')
    await c.end()
    const parts: Buffer[] = []
    for await (const chunk of c) parts.push(chunk)
    console.log(Buffer.concat(parts).toString()) // 'SHOUT'
  }
  await done
  await upper.close()

  // A Unix socket: `path` instead of `host` and `port`, as in `net`.
  const path = join(tmpdir(), `polyio-echo-ts-${process.pid}.sock`)
  const local = await polyio.listen({ path })
  const localServing = serve(local)
  const uc = await polyio.connect({ path })
  await uc.write('over a Unix socket\n')
  console.log(`${String(local.address())}: ${(await uc.read())?.toString().trim()}`)
  await uc.close()
  await local.close() // removes the socket file
  await localServing
}

void main()
