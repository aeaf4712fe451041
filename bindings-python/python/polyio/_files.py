"""Files: ``polyio.open`` (an async file object shaped like aiofiles'), ``pread`` / ``pwrite``,
and the module-level ``read_bytes`` / ``read_text`` / ``write_bytes`` / ``write_text`` /
``stat``, over the driver's file ops (io_uring, or the blocking pool where io_uring is not
there or ``POLYIO_FS_BACKEND=threads``). Nothing here blocks the event loop.

A file object keeps its own position: reads and writes are ``pread`` / ``pwrite`` at it (an
``O_APPEND`` file writes at its end), so concurrent ``pread`` calls never disturb ``tell()``.
Writes go straight to the kernel (no write buffer): ``flush()`` has nothing to do.
"""

from __future__ import annotations

import asyncio
import codecs
import io
import locale
import operator
import os
import stat as stat_module
from collections.abc import AsyncIterator, Awaitable, Generator, Iterable
from types import TracebackType
from typing import Any, Generic, Optional, TypeVar, Union

from polyio._api import _driver
from polyio._polyio import Driver

_T = TypeVar("_T")
_S = TypeVar("_S", str, bytes)

StrOrBytesPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_Buffer = Union[bytes, bytearray, memoryview]

#: Bytes one buffered read asks for (``readline``, ``read()`` of a file of unknown size).
CHUNK = 64 * 1024

_SSIZE_MIN = -(2**63)
_SSIZE_MAX = 2**63 - 1


def _size_arg(size: Any) -> int:
    """A size, count or hint as ``io`` checks it: None is -1, anything else an integer
    (``__index__``) that fits ``Py_ssize_t``, or TypeError / OverflowError."""
    if size is None:
        return -1
    if not hasattr(type(size), "__index__"):
        raise TypeError(f"argument should be integer or None, not '{type(size).__name__}'")
    return _offset_arg(size)


def _offset_arg(value: Any, seek: bool = False) -> int:
    """An offset or whence as ``os.pread`` / ``io`` check it: an integer (``__index__``)
    that fits 64 bits, or TypeError / OverflowError (ValueError for a seek, as ``io``)."""
    n = operator.index(value)
    if not _SSIZE_MIN <= n <= _SSIZE_MAX:
        if seek:
            raise ValueError(f"cannot fit '{type(value).__name__}' into an offset-sized integer")
        raise OverflowError(f"cannot fit '{type(value).__name__}' into an index-sized integer")
    return n


def _whence_arg(value: Any) -> int:
    """A whence (or buffering) as ``io`` checks it: an integer that fits a C int."""
    n = operator.index(value)
    if not -(2**31) <= n < 2**31:
        raise OverflowError("Python int too large to convert to C int")
    return n


def _path(file: Any) -> bytes:
    """`file` as the bytes the kernel gets, checked as the built-in ``open`` checks a path
    (a str, bytes or ``os.PathLike``; no NUL byte)."""
    b = os.fsencode(file)
    if b"\0" in b:
        raise ValueError("embedded null byte")
    return b


def _bytes_arg(data: Any) -> bytes:
    """A bytes-like `data` copied (an int is not a size here: TypeError)."""
    if isinstance(data, bytes):
        return data
    with memoryview(data) as view:
        return view.tobytes()


async def _op(drv: Driver, pending: tuple[asyncio.Future[_T], int]) -> _T:
    """Awaits a file op; cancelling the awaiting task cancels the op."""
    fut, user_data = pending
    try:
        return await fut
    except asyncio.CancelledError:
        drv.cancel(user_data)
        raise


def _with_path(e: OSError, path: StrOrBytesPath) -> OSError:
    """`e` as Python raises it for a file call: with the errno's message and the path."""
    if e.errno is None:
        return e
    return type(e)(e.errno, os.strerror(e.errno), os.fspath(path))


def _stat_result(t: tuple[int, ...]) -> os.stat_result:
    mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime, blksize, blocks, rdev = t
    sec = 1_000_000_000
    return os.stat_result(
        (mode, ino, dev, nlink, uid, gid, size, atime // sec, mtime // sec, ctime // sec)
        + (atime / sec, mtime / sec, ctime / sec, atime, mtime, ctime, blksize, blocks, rdev)
    )


def _flags(mode: str) -> tuple[int, bool, bool, bool]:
    """open(2) flags for a Python mode string, and (binary, readable, writable)."""
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    chars = set(mode)
    if len(chars) != len(mode) or chars - set("rwaxbt+") or len(chars & set("rwax")) != 1:
        raise ValueError(f"invalid mode: '{mode}'")
    if "b" in chars and "t" in chars:
        raise ValueError("can't have text and binary mode at once")
    plus = "+" in chars
    if "r" in chars:
        flags, readable, writable = os.O_RDONLY, True, False
    elif "w" in chars:
        flags, readable, writable = os.O_WRONLY | os.O_CREAT | os.O_TRUNC, False, True
    elif "a" in chars:
        flags, readable, writable = os.O_WRONLY | os.O_CREAT | os.O_APPEND, False, True
    else:
        flags, readable, writable = os.O_WRONLY | os.O_CREAT | os.O_EXCL, False, True
    if plus:
        flags = (flags & ~os.O_WRONLY) | os.O_RDWR
        readable = writable = True
    return flags, "b" in chars, readable, writable


def _encoding(encoding: Optional[str]) -> str:
    return encoding if encoding is not None else locale.getpreferredencoding(False)


class _FileBase(Generic[_S]):
    """What binary and text files share: the handle, the position, close and the context
    manager protocols."""

    def __init__(
        self, drv: Driver, handle: int, name: StrOrBytesPath, mode: str, flags: int, regular: bool
    ) -> None:
        self._drv = drv
        self._handle = handle
        self.name = name
        self.mode = mode
        self._append = bool(flags & os.O_APPEND)
        self._readable = (flags & os.O_ACCMODE) != os.O_WRONLY
        self._writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        self._regular = regular
        self._pos = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"<polyio file name={self.name!r} mode={self.mode!r} closed={self._closed}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file.")

    def _check_readable(self) -> None:
        self._check_open()
        if not self._readable:
            raise io.UnsupportedOperation("read")

    def _check_writable(self) -> None:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("write")

    async def readline(self, size: int = -1) -> _S:
        """One line, of at most `size` (each kind of file reads its own)."""
        raise NotImplementedError

    async def readlines(self, hint: int = -1) -> list[_S]:
        limit = _size_arg(hint)
        lines: list[_S] = []
        total = 0
        while True:
            line = await self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < limit <= total:
                return lines

    def __aiter__(self) -> AsyncIterator[_S]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[_S]:
        while True:
            line = await self.readline()
            if not line:
                return
            yield line

    def readable(self) -> bool:
        self._check_open()
        return self._readable

    def writable(self) -> bool:
        self._check_open()
        return self._writable

    def seekable(self) -> bool:
        self._check_open()
        return True

    def fileno(self) -> int:
        """The polyio handle of the open file (not an OS fd)."""
        self._check_open()
        return self._handle

    def _here(self) -> int:
        """The offset of the next read or write: the position, or -1 (the file's own) for a
        pipe or device, which has no offsets."""
        return self._pos if self._regular else -1

    async def _pread(self, n: int, offset: int) -> bytes:
        # Cached bytes come back now, without a future or a trip through the loop (None for
        # a position read, offset -1, or when the loop is due to run).
        data = self._drv.fs_try_pread(self._handle, n, offset)
        if data is not None:
            return data
        return await _op(self._drv, self._drv.fs_read(self._handle, n, offset))

    async def _pwrite(self, data: bytes, offset: int) -> int:
        """Writes all of `data` at `offset` (-1: at the end of an O_APPEND file)."""
        done = 0
        view = memoryview(data)
        while done < len(data):
            at = -1 if offset < 0 else offset + done  # -1: the file's own position
            n = await _op(self._drv, self._drv.fs_write(self._handle, bytes(view[done:]), at))
            if n <= 0:
                raise OSError(5, os.strerror(5))
            done += n
        return done

    async def _size(self) -> int:
        return (await self.stat()).st_size

    async def _read_raw(self, n: int) -> bytes:
        """Up to `n` bytes at the position (all to the end for n < 0), advancing it."""
        if n >= 0:
            at = self._here()
            data = self._drv.fs_try_pread(self._handle, n, at) if n else b""
            if data is None:
                data = await _op(self._drv, self._drv.fs_read(self._handle, n, at))
            self._pos += len(data)
            return data
        parts = []
        want = max(await self._size() - self._pos, 0) + 1 if self._regular else CHUNK
        while True:
            data = await self._pread(want, self._here())
            self._pos += len(data)
            parts.append(data)
            if not data or (self._regular and len(data) < want):
                break
            want = max(want, CHUNK)
        return b"".join(parts)

    async def stat(self) -> os.stat_result:
        """``os.fstat`` of the open file."""
        self._check_open()
        return _stat_result(await _op(self._drv, self._drv.fs_fstat(self._handle)))

    async def flush(self) -> None:
        """Nothing to do: writes go straight to the kernel. Use ``fsync`` for storage."""
        self._check_open()

    async def fsync(self) -> None:
        """``os.fsync`` of the open file."""
        self._check_open()
        await _op(self._drv, self._drv.fs_fsync(self._handle, False))

    async def truncate(self, size: Optional[int] = None) -> int:
        """Resizes the file to `size` bytes (default: the position), as ``io`` files do; the
        position stays."""
        self._check_writable()
        if size is None:
            size = await self.tell()  # type: ignore[attr-defined]
        size = _offset_arg(size)
        if size < 0:
            raise OSError(22, os.strerror(22))
        await _op(self._drv, self._drv.fs_truncate(self._handle, size))
        return size

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await _op(self._drv, self._drv.fs_close(self._handle))

    async def __aenter__(self: _F) -> _F:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()


_F = TypeVar("_F", bound="_FileBase[Any]")


class BinaryFile(_FileBase[bytes]):
    """A file opened in binary mode (``'rb'``, ``'wb'``, ...): ``read`` returns bytes."""

    def __init__(
        self, drv: Driver, handle: int, name: StrOrBytesPath, mode: str, flags: int, regular: bool
    ) -> None:
        super().__init__(drv, handle, name, mode, flags, regular)
        self._buf = b""  # read ahead by readline, at self._pos - len(self._buf)

    def _drop_buffer(self) -> None:
        self._pos -= len(self._buf)
        self._buf = b""

    async def read(self, size: int = -1) -> bytes:
        self._check_readable()
        size = _size_arg(size)
        if size < -1:
            raise ValueError("read length must be non-negative or -1")
        if self._buf:
            if 0 <= size <= len(self._buf):
                out, self._buf = self._buf[:size], self._buf[size:]
                return out
            head = self._buf
            self._buf = b""
            rest = await self._read_raw(-1 if size < 0 else size - len(head))
            return head + rest
        return await self._read_raw(size)

    async def read1(self, size: int = -1) -> bytes:
        size = _offset_arg(size)  # no None here, as io's read1
        return await self.read(CHUNK if size < 0 else size)

    async def readline(self, size: int = -1) -> bytes:
        self._check_readable()
        size = _size_arg(size)
        while True:
            end = self._buf.find(b"\n")
            if end >= 0 and (size < 0 or end < size):
                out, self._buf = self._buf[: end + 1], self._buf[end + 1 :]
                return out
            if 0 <= size <= len(self._buf):
                out, self._buf = self._buf[:size], self._buf[size:]
                return out
            more = await self._pread(CHUNK, self._here())
            if not more:
                out, self._buf = self._buf, b""
                return out
            self._pos += len(more)
            self._buf += more

    async def write(self, b: _Buffer) -> int:
        self._check_writable()
        data = _bytes_arg(b)
        self._drop_buffer()
        if self._append:
            n = await self._pwrite(data, -1)
            self._pos = await self._size()
            return n
        n = await self._pwrite(data, self._here())
        self._pos += n
        return n

    async def writelines(self, lines: Iterable[_Buffer]) -> None:
        await self.write(b"".join(_bytes_arg(x) for x in lines))

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        offset, whence = _offset_arg(offset, seek=True), _whence_arg(whence)
        self._drop_buffer()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = await self._size() + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise OSError(22, os.strerror(22))
        self._pos = pos
        return pos

    async def tell(self) -> int:
        self._check_open()
        return self._pos - len(self._buf)

    async def pread(self, n: int, offset: int) -> bytes:
        """Up to `n` bytes at `offset`, as ``os.pread(fd, n, offset)``; the position stays."""
        self._check_readable()
        n, offset = _size_arg(n), _offset_arg(offset)
        if n < 0 or offset < 0:
            raise OSError(22, os.strerror(22))
        if not n:
            return b""
        data = self._drv.fs_try_pread(self._handle, n, offset)
        if data is not None:
            return data
        return await _op(self._drv, self._drv.fs_read(self._handle, n, offset))

    async def pwrite(self, data: _Buffer, offset: int) -> int:
        """Writes `data` at `offset`, as ``os.pwrite(fd, data, offset)`` (one write: the
        count may be short); the position stays."""
        self._check_writable()
        data, offset = _bytes_arg(data), _offset_arg(offset)
        if offset < 0:
            raise OSError(22, os.strerror(22))
        return await _op(self._drv, self._drv.fs_write(self._handle, data, offset))


class TextFile(_FileBase[str]):
    """A file opened in text mode: ``read`` returns str, decoded with `encoding` and with
    universal newlines (``newline=None``) as the built-in ``open`` does. ``tell`` returns the
    byte offset of the next character not yet returned."""

    def __init__(
        self,
        drv: Driver,
        handle: int,
        name: StrOrBytesPath,
        mode: str,
        flags: int,
        regular: bool,
        encoding: str,
        errors: Optional[str],
        newline: Optional[str],
    ) -> None:
        super().__init__(drv, handle, name, mode, flags, regular)
        if newline not in (None, "", "\n", "\r", "\r\n"):
            raise ValueError(f"illegal newline value: {newline!r}")
        codecs.lookup(encoding)
        self.encoding = encoding
        self.errors = errors if errors is not None else "strict"
        self.newlines: Any = None
        self._newline = newline
        self._raw = BinaryFile(drv, handle, name, mode, flags, regular)
        self._reset_decoder()

    def _reset_decoder(self) -> None:
        decoder = codecs.getincrementaldecoder(self.encoding)(self.errors)
        self._decoder: Union[codecs.IncrementalDecoder, io.IncrementalNewlineDecoder]
        if self._newline is None or self._newline == "":
            self._decoder = io.IncrementalNewlineDecoder(decoder, self._newline is None)
        else:
            self._decoder = decoder
        self._text = ""  # decoded, not yet returned
        self._eof = False

    async def _fill(self) -> bool:
        """Decodes one more chunk into the text buffer; False at end of file."""
        if self._eof:
            return False
        data = await self._raw._read_raw(CHUNK)
        if not data:
            self._text += self._decoder.decode(b"", final=True)
            self._eof = True
            return False
        self._text += self._decoder.decode(data)
        return True

    def _split_line(self, size: int) -> Optional[str]:
        nl = "\n" if self._newline in (None, "", "\n") else self._newline
        end = self._text.find(nl)
        if self._newline == "":
            cr = self._text.find("\r")
            if cr >= 0 and (end < 0 or cr < end - 1):
                end, nl = cr, "\r"
                if self._text[cr : cr + 2] == "\r\n":
                    nl = "\r\n"
                elif cr == len(self._text) - 1 and not self._eof:
                    return None  # a \r at the end may start a \r\n
        if end >= 0 and (size < 0 or end + len(nl) <= size):
            out, self._text = self._text[: end + len(nl)], self._text[end + len(nl) :]
            return out
        if 0 <= size <= len(self._text):
            out, self._text = self._text[:size], self._text[size:]
            return out
        return None

    async def read(self, size: int = -1) -> str:
        self._check_readable()
        size = _size_arg(size)
        if size < 0:
            while await self._fill():
                pass
            out, self._text = self._text, ""
            return out
        while len(self._text) < size and await self._fill():
            pass
        out, self._text = self._text[:size], self._text[size:]
        return out

    async def readline(self, size: int = -1) -> str:
        self._check_readable()
        size = _offset_arg(size)  # no None here, as io's TextIOWrapper.readline
        while True:
            line = self._split_line(size)
            if line is not None:
                return line
            if not await self._fill():
                line = self._split_line(size)
                if line is not None:
                    return line
                out, self._text = self._text, ""
                return out

    def _encode(self, s: str) -> bytes:
        if self._newline not in (None, "", "\n"):
            s = s.replace("\n", self._newline)
        return s.encode(self.encoding, self.errors)

    async def write(self, s: str) -> int:
        self._check_writable()
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        await self._sync_position()
        await self._raw.write(self._encode(s))
        return len(s)

    async def writelines(self, lines: Iterable[str]) -> None:
        await self.write("".join(lines))

    async def _sync_position(self) -> None:
        """Moves the byte position back over decoded text not yet returned."""
        if self._text or self._raw._buf:
            await self._raw.seek(await self.tell())
        self._reset_decoder()

    async def tell(self) -> int:
        self._check_open()
        pending = self._decoder.getstate()[0] if hasattr(self._decoder, "getstate") else b""
        unread = len(self._encode(self._text)) if self._text else 0
        return self._raw._pos - len(self._raw._buf) - unread - len(pending)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        offset, whence = operator.index(offset), _whence_arg(whence)
        if whence == os.SEEK_SET and offset < 0:
            raise ValueError(f"negative seek position {offset}")
        offset = _offset_arg(offset, seek=True)
        if whence == os.SEEK_CUR and offset != 0:
            raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
        if whence == os.SEEK_END and offset != 0:
            raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
        if whence == os.SEEK_CUR:
            return await self.tell()
        pos = await self._raw.seek(offset, whence)
        self._reset_decoder()
        return pos


AsyncFile = Union[BinaryFile, TextFile]


class _Opener(Awaitable[_T]):
    """What ``polyio.open`` returns: awaitable (``f = await polyio.open(...)``) and an async
    context manager (``async with polyio.open(...) as f``), as aiofiles' ``open``."""

    def __init__(self, coro: Awaitable[_T]) -> None:
        self._coro = coro
        self._file: Optional[_T] = None

    def __await__(self) -> Generator[Any, None, _T]:
        return self._coro.__await__()

    async def __aenter__(self) -> _T:
        self._file = await self._coro
        return self._file

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        f = self._file
        if f is not None:
            await f.close()  # type: ignore[attr-defined]


def open(  # noqa: A001 - the name is the point
    file: StrOrBytesPath,
    mode: str = "r",
    buffering: int = -1,
    encoding: Optional[str] = None,
    errors: Optional[str] = None,
    newline: Optional[str] = None,
) -> _Opener[AsyncFile]:
    """Opens `file` as the built-in ``open`` does (same modes, encodings, newline handling,
    same exceptions: ``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``, ...)
    and returns an async file object: ``await`` its ``read``, ``readline``, ``readlines``,
    ``write``, ``seek``, ``tell``, ``flush``, ``close``; ``async for line in f``; plus
    ``pread`` / ``pwrite`` in binary mode. `buffering` is accepted and ignored."""
    _whence_arg(buffering)  # accepted and ignored, but a C int, as the built-in's
    for name, value in (("encoding", encoding), ("errors", errors), ("newline", newline)):
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"open() argument '{name}' must be str or None, not {type(value).__name__}"
            )
    flags, binary, _, _ = _flags(mode)
    if binary and encoding is not None:
        raise ValueError("binary mode doesn't take an encoding argument")
    if binary and errors is not None:
        raise ValueError("binary mode doesn't take an errors argument")
    if binary and newline is not None:
        raise ValueError("binary mode doesn't take a newline argument")
    return _Opener(_open(file, mode, flags, binary, encoding, errors, newline))


async def _open(
    file: StrOrBytesPath,
    mode: str,
    flags: int,
    binary: bool,
    encoding: Optional[str],
    errors: Optional[str],
    newline: Optional[str],
) -> AsyncFile:
    drv = _driver()
    path = _path(file)
    try:
        handle = await _op(drv, drv.fs_open(path, flags, 0o666))
    except OSError as e:
        raise _with_path(e, file) from None
    try:
        st = _stat_result(await _op(drv, drv.fs_fstat(handle)))
    except BaseException:
        drv.close_handle(handle)
        raise
    if stat_module.S_ISDIR(st.st_mode):
        # The built-in open refuses a directory even for reading.
        drv.close_handle(handle)
        raise IsADirectoryError(21, os.strerror(21), os.fspath(file))
    regular = stat_module.S_ISREG(st.st_mode)
    if binary:
        return BinaryFile(drv, handle, file, mode, flags, regular)
    try:
        return TextFile(
            drv, handle, file, mode, flags, regular, _encoding(encoding), errors, newline
        )
    except BaseException:
        drv.close_handle(handle)
        raise


async def read_bytes(path: StrOrBytesPath) -> bytes:
    """The whole file, in one op (``pathlib.Path.read_bytes``)."""
    drv = _driver()
    try:
        return await _op(drv, drv.fs_read_file(_path(path)))
    except OSError as e:
        raise _with_path(e, path) from None


async def read_text(
    path: StrOrBytesPath, encoding: Optional[str] = None, errors: Optional[str] = None
) -> str:
    """The whole file decoded, with universal newlines (``pathlib.Path.read_text``)."""
    data = await read_bytes(path)
    # Decoded by the built-in's own text layer: its codec rules (a UTF-16 file needs its
    # BOM) and its universal newlines.
    with io.TextIOWrapper(io.BytesIO(data), _encoding(encoding), errors) as text:
        return text.read()


async def write_bytes(path: StrOrBytesPath, data: _Buffer) -> int:
    """Replaces the file's contents with `data` in one op (``pathlib.Path.write_bytes``);
    returns the count written."""
    data = _bytes_arg(data)
    drv = _driver()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        return await _op(drv, drv.fs_write_file(_path(path), data, flags, 0o666))
    except OSError as e:
        raise _with_path(e, path) from None


async def write_text(
    path: StrOrBytesPath,
    data: str,
    encoding: Optional[str] = None,
    errors: Optional[str] = None,
    newline: Optional[str] = None,
) -> int:
    """Replaces the file's contents with `data` encoded (``pathlib.Path.write_text``);
    returns the count of characters written."""
    if not isinstance(data, str):
        raise TypeError(f"data must be str, not {type(data).__name__}")
    text = data.replace("\n", newline) if newline not in (None, "", "\n") else data
    await write_bytes(path, text.encode(_encoding(encoding), errors or "strict"))
    return len(data)


async def stat(path: StrOrBytesPath) -> os.stat_result:
    """``os.stat(path)`` (following symlinks)."""
    drv = _driver()
    try:
        return _stat_result(await _op(drv, drv.fs_stat(_path(path))))
    except OSError as e:
        raise _with_path(e, path) from None
