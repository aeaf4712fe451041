"""check.py: the installed wheel's polyio reports VERSION and echoes a line through asyncio."""

import asyncio
import os

import polyio


async def main() -> None:
    async def echo(r: polyio.StreamReader, w: polyio.StreamWriter) -> None:
        w.write(await r.readline())
        await w.drain()
        w.close()

    server = await polyio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r, w = await polyio.open_connection("127.0.0.1", port)
    w.write(b"installed\n")
    line = await r.readline()
    assert line == b"installed\n", line
    w.close()
    server.close()
    await server.wait_closed()
    assert polyio.__version__ == os.environ["VERSION"], polyio.__version__
    print(f"python: polyio {polyio.__version__} from {os.path.dirname(polyio.__file__)} echoed {line!r}")


asyncio.run(main())
