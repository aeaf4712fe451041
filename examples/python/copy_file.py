"""Copies a file with polyio's async files, then compares the copy line by line with the
built-in open(): ``python copy_file.py SRC DST``. Nothing here blocks the event loop."""

from __future__ import annotations

import asyncio
import sys

import polyio


async def main(src: str, dst: str) -> int:
    data = await polyio.read_bytes(src)
    await polyio.write_bytes(dst, data)
    lines = 0
    async with polyio.open(dst, "rb") as f, polyio.open(src, "rb") as g:
        async for line in f:
            if line != await g.readline():
                raise SystemExit(f"copy differs at line {lines + 1}")
            lines += 1
    st = await polyio.stat(dst)
    print(f"copied {st.st_size} bytes, {lines} lines")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: copy_file.py SRC DST")
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
