"""Status codes as exceptions: every code in core's table becomes the exception asyncio would
raise for it (the OSError subclass its errno picks; CancelledError, gaierror and RuntimeError
for polyio's own), and Python spells no code itself."""

from __future__ import annotations

import asyncio
import errno
import socket

from polyio import _polyio


def test_every_status_maps_as_asyncio_would() -> None:
    codes = _polyio.STATUS_CODES
    assert codes["OK"] == 0
    assert codes["ECANCELED"] == _polyio.STATUS_CANCELED == -errno.ECANCELED
    for name, code in codes.items():
        if code == 0:
            continue
        e = _polyio.status_error(code)
        if name == "ECANCELED":
            assert isinstance(e, asyncio.CancelledError)
        elif name == "ENOTFOUND":
            assert isinstance(e, socket.gaierror) and e.errno == socket.EAI_NONAME
        elif name == "EAI_AGAIN":
            assert isinstance(e, socket.gaierror) and e.errno == socket.EAI_AGAIN
        elif name.startswith("POLYIO_"):
            assert isinstance(e, RuntimeError) and name in str(e)
        else:
            # An errno-based code: -errno, and OSError(errno, msg) picks the subclass.
            assert errno.errorcode[-code] == name
            assert isinstance(e, OSError) and e.errno == -code
            assert type(e) is type(OSError(-code, ""))
    assert type(_polyio.status_error(codes["ECONNREFUSED"])) is ConnectionRefusedError
    assert type(_polyio.status_error(codes["ECONNRESET"])) is ConnectionResetError
    assert type(_polyio.status_error(codes["ETIMEDOUT"])) is TimeoutError
    assert type(_polyio.status_error(codes["EPIPE"])) is BrokenPipeError
    e = _polyio.status_error(codes["ECONNREFUSED"], "Connect call failed ('127.0.0.1', 1)")
    assert str(e) == "[Errno 111] Connect call failed ('127.0.0.1', 1)"
