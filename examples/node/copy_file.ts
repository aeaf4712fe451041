// Copies a file with polyio's fs/promises-shaped API, then checks the copy chunk by chunk
// through a FileHandle: `node copy_file.js SRC DST` after compiling, or read as an example.
// Checked by `tsc --strict` in `make test-node`.
import * as polyio from 'polyio'

async function copy(src: string, dst: string): Promise<number> {
  const data: Buffer = await polyio.readFile(src)
  await polyio.writeFile(dst, data, { mode: 0o644 })
  const f: polyio.FileHandle = await polyio.open(dst, 'r')
  try {
    let offset = 0
    for (;;) {
      const { bytesRead, buffer } = await f.read(Buffer.alloc(65536), 0, 65536, offset)
      if (bytesRead === 0) break
      if (!buffer.subarray(0, bytesRead).equals(data.subarray(offset, offset + bytesRead))) {
        throw new Error(`copy differs at ${offset}`)
      }
      offset += bytesRead
    }
    const st: polyio.Stats = await f.stat()
    if (st.size !== offset || !st.isFile()) throw new Error('size mismatch')
    return offset
  } finally {
    await f.close()
  }
}

const [src, dst] = process.argv.slice(2)
if (src === undefined || dst === undefined) {
  console.error('usage: copy_file SRC DST')
  process.exit(2)
}
copy(src, dst).then(
  (n) => console.log(`copied ${n} bytes`),
  (err: NodeJS.ErrnoException) => {
    console.error(`${err.code}: ${err.message}`)
    process.exit(1)
  },
)
