//! The stream ops every connected socket shares, whatever its kind (TCP, Unix): reads
//! (single and multi-shot), writes (queued, vectored, or `try_write` at once), the write-side
//! shutdown, accepting from a listener, and taking over sockets the caller made, as libuv's
//! `stream.c` serves `tcp.c` and `pipe.c`. Each connection keeps a read queue and a write
//! queue of op ids, in order.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll, Waker};

use socket2::{Domain, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::buf::{ReadBuf, ReadInner, WriteBuf};
use crate::handle::Handle;
use crate::op::{Key, Op, OpCode, OpState};
use crate::opqueue::OpQueue;
use crate::runtime::Runtime;
use crate::socket::{Conn, ListenSocket, Listener, Resource, StreamSocket};
use crate::status::Status;

/// What a write's first `send` left to do (see `Runtime::write_now`).
enum WriteNow {
    /// The write is over: every byte sent, or the error that ended it.
    Finished(Result<usize, Status>),
    /// The write queues, with this many bytes already sent.
    Queue(usize),
}

/// How many iovecs one vectored write gathers from queued writes.
const MAX_IOV: usize = 64;
/// Full buffers a multi-shot read takes in a row before it lets other sockets go first.
const MULTISHOT_BURST: usize = 4;

impl Runtime {
    /// Reads up to `buf.capacity()` bytes. Completes with the count, 0 at end of stream.
    /// Queued reads complete in order; a cancelled read takes no bytes.
    pub fn read(&mut self, h: Handle, buf: ReadBuf, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if buf.capacity() == 0 || buf.capacity() > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        self.queue_read(h, user_data, OpState::Read(buf))
    }

    /// Reads continuously, as libuv's `uv_read_start`: every chunk read (at most `cap`
    /// bytes) completes with its count and an owned buffer holding it, flagged
    /// [`FLAG_MORE`](crate::FLAG_MORE), and the operation stays armed, so a consumer that keeps reading does
    /// not submit a read per chunk. It ends with one completion without `FLAG_MORE`: 0 at end
    /// of stream, an error, or `Canceled` (by [`cancel`](Self::cancel) with its `user_data`,
    /// or [`close`](Self::close)); every byte read before that was in an earlier completion.
    /// It queues with single reads, in order. Hand the buffers back with
    /// [`recycle`](Self::recycle) to spare an allocation per chunk. A chunk of at most
    /// 8 KiB read with a `cap` of 32 KiB or more comes in a small buffer (a copy; the large
    /// one stays with the runtime), so a completion holds what was read.
    pub fn read_multishot(&mut self, h: Handle, cap: usize, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if cap == 0 || cap > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        self.queue_read(h, user_data, OpState::ReadMulti { cap, once: false })
    }

    /// Reads up to `cap` bytes, as [`read`](Self::read), into a buffer the runtime takes
    /// from its recycled ones (see [`recycle`](Self::recycle)) only when bytes arrive: the
    /// completion hands it over, holding the bytes, and a read waiting on an idle
    /// connection holds no buffer. Completes with the count, 0 at end of stream (and no
    /// buffer); queues with other reads, in order. A few bytes read with a large `cap` come
    /// in a small buffer, as with [`read_multishot`](Self::read_multishot).
    pub fn read_pooled(&mut self, h: Handle, cap: usize, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if cap == 0 || cap > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        self.queue_read(h, user_data, OpState::ReadMulti { cap, once: true })
    }

    /// Appends a read (single or multi-shot) to `h`'s read queue; at the front, it starts
    /// inline.
    fn queue_read(&mut self, h: Handle, user_data: u64, state: OpState) -> Result<(), Status> {
        self.conn_mut(h)?;
        let id = self.new_op(user_data, OpCode::Read, h, state)?;
        let conn = self.conn_mut(h)?;
        conn.reads.push_back(id);
        if conn.reads.len() == 1 {
            self.inline_io(|rt| rt.progress_read(h));
        }
        Ok(())
    }

    /// Gives a completion's buffer back for later multi-shot reads (a few are kept).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.q.spare(buf);
    }

    /// Writes all of `buf`. Completes with its length once every byte is with the kernel.
    /// Queued writes go out in order, gathered into vectored writes.
    pub fn write(&mut self, h: Handle, buf: WriteBuf, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if buf.len() > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        let done = match self.write_now(h, &buf)? {
            WriteNow::Finished(r) => {
                // Every byte is with the kernel, or the send failed: the op completes
                // here, without entering the op table.
                self.q
                    .post_done(user_data, OpCode::Write, r, h, buf.into_vec());
                return Ok(());
            }
            WriteNow::Queue(done) => done,
        };
        self.queue_write(h, user_data, OpCode::Write, OpState::Write { buf, done })
    }

    /// A write's first `send`, made at once when nothing is queued before it on `h` (tokio
    /// skips it when it knows the socket to be unwritable): whether that ends the write, or
    /// how many bytes it took before the rest must queue.
    fn write_now(&mut self, h: Handle, buf: &WriteBuf) -> Result<WriteNow, Status> {
        let conn = self.conn_mut(h)?;
        if !conn.writes.is_empty() || buf.is_empty() {
            return Ok(WriteNow::Queue(0));
        }
        let bytes = buf.as_slice();
        let fd = conn.stream.as_raw_fd();
        let sent = conn.stream.try_io(Interest::WRITABLE, || {
            // SAFETY: `fd` is the connection's open socket and `bytes` borrows `buf`, alive
            // for the whole call.
            let n =
                unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        Ok(match sent {
            Ok(n) if n == bytes.len() => WriteNow::Finished(Ok(n)),
            Ok(n) => WriteNow::Queue(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => WriteNow::Queue(0),
            Err(e) => WriteNow::Finished(Err(Status::from(e))),
        })
    }

    /// Writes what the kernel takes of `bufs` now, in order, without an operation and so
    /// without a completion (libuv's `uv_try_write`). Returns the bytes taken: 0 when the
    /// socket is not writable now or when writes or a shutdown are already queued on `h`
    /// (bytes written now would overtake them). Queue the rest with [`write`](Self::write).
    /// Errors (`BrokenPipe`, `ConnectionReset`, ...) mean the connection failed.
    pub fn try_write(&mut self, h: Handle, bufs: &[&[u8]]) -> Result<usize, Status> {
        self.live()?;
        let conn = self.conn_mut(h)?;
        if !conn.writes.is_empty() || bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        let mut iov = Iovecs::new();
        for b in bufs.iter().filter(|b| !b.is_empty()) {
            if !iov.push(b) {
                break;
            }
        }
        let fd = conn.stream.as_raw_fd();
        // SAFETY: the iovecs borrow `bufs`, alive for the whole call.
        match conn.stream.try_io(Interest::WRITABLE, || unsafe {
            send_iov(fd, iov.as_slice())
        }) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(Status::from(e)),
        }
    }

    /// Shuts down the write side once every queued write is sent (the peer reads EOF).
    /// Completes with 0.
    pub fn shutdown(&mut self, h: Handle, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        self.queue_write(h, user_data, OpCode::Shutdown, OpState::Shutdown)
    }

    /// Appends a write or shutdown to `h`'s write queue; at the front, it starts inline.
    fn queue_write(
        &mut self,
        h: Handle,
        user_data: u64,
        code: OpCode,
        state: OpState,
    ) -> Result<(), Status> {
        self.conn_mut(h)?;
        let id = self.new_op(user_data, code, h, state)?;
        let conn = self.conn_mut(h)?;
        conn.writes.push_back(id);
        if conn.writes.len() == 1 {
            self.inline_io(|rt| rt.progress_write(h));
        }
        Ok(())
    }

    /// Writes and shutdowns queued on connection `h` that have not completed: 0 when the
    /// kernel took every byte (a write that completed inline), 0 for a stale handle.
    pub fn pending_writes(&self, h: Handle) -> usize {
        match self.resources.get(h) {
            Some(Resource::Conn(c)) => self.q.live_count(&c.writes),
            Some(Resource::Listener(_) | Resource::Udp(_) | Resource::File(_)) | None => 0,
        }
    }

    /// Bytes of the writes queued on connection `h` that the kernel has not taken yet (a
    /// queued write the kernel took part of counts its rest): with what the binding still
    /// buffers, the backlog asyncio's `get_write_buffer_size` and libuv's
    /// `write_queue_size` report. 0 for a stale handle.
    pub fn unsent_bytes(&self, h: Handle) -> usize {
        let Some(Resource::Conn(c)) = self.resources.get(h) else {
            return 0;
        };
        c.writes
            .iter()
            .filter_map(|id| match self.q.op(id) {
                Some(Op {
                    state: OpState::Write { buf, done },
                    ..
                }) => Some(buf.len() - done),
                _ => None,
            })
            .sum()
    }

    /// Accepts one connection on `listener`. Completes with `result = 0` and the new
    /// connection's handle. Several accepts may be queued; they complete in order.
    pub fn accept(&mut self, listener: Handle, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        match self.resources.get(listener) {
            Some(Resource::Listener(_)) => {}
            Some(Resource::Conn(_) | Resource::Udp(_) | Resource::File(_)) => {
                return Err(Status::InvalidArgument);
            }
            None => return Err(Status::BadHandle),
        }
        let id = self.new_op(user_data, OpCode::Accept, listener, OpState::Accept)?;
        let first = match self.resources.get_mut(listener) {
            Some(Resource::Listener(l)) => {
                l.accepts.push_back(id);
                l.accepts.len() == 1
            }
            Some(Resource::Conn(_) | Resource::Udp(_) | Resource::File(_)) | None => false,
        };
        if first {
            self.inline(|rt| rt.progress_accept(listener));
        }
        Ok(())
    }

    /// Takes over a connected stream socket the caller made (TCP over IPv4 or IPv6, or Unix):
    /// it becomes a connection handle, as one from a connect, and is closed with it. Made
    /// non-blocking here. `InvalidArgument` for a socket of another type or family, or one
    /// that is not connected (`NotConnected`); the fd is closed on every error.
    pub fn adopt_stream(&mut self, fd: OwnedFd) -> Result<Handle, Status> {
        self.live()?;
        let socket = Socket::from(fd);
        if socket.r#type()? != Type::STREAM {
            return Err(Status::InvalidArgument);
        }
        let domain = socket.local_addr()?.domain();
        socket.peer_addr()?;
        socket.set_nonblocking(true)?;
        let stream = {
            let _e = self.tokio.enter();
            if domain == Domain::UNIX {
                StreamSocket::Unix(UnixStream::from_std(socket.into())?)
            } else if domain == Domain::IPV4 || domain == Domain::IPV6 {
                StreamSocket::Tcp(TcpStream::from_std(socket.into())?)
            } else {
                return Err(Status::InvalidArgument);
            }
        };
        self.add_conn(stream)
    }

    /// Takes over a listening stream socket the caller made (TCP or Unix): it becomes a
    /// listener handle, as one from a listen, and is closed with it (a Unix socket's file is
    /// left in place: the caller bound it). Made non-blocking here. `InvalidArgument` for a
    /// socket of another type or family, or one that is not listening; the fd is closed on
    /// every error.
    pub fn adopt_listener(&mut self, fd: OwnedFd) -> Result<Handle, Status> {
        self.live()?;
        let socket = Socket::from(fd);
        if socket.r#type()? != Type::STREAM || !socket.is_listener()? {
            return Err(Status::InvalidArgument);
        }
        let domain = socket.local_addr()?.domain();
        socket.set_nonblocking(true)?;
        let listener = {
            let _e = self.tokio.enter();
            if domain == Domain::UNIX {
                ListenSocket::Unix {
                    listener: UnixListener::from_std(socket.into())?,
                    file: None,
                }
            } else if domain == Domain::IPV4 || domain == Domain::IPV6 {
                ListenSocket::Tcp(TcpListener::from_std(socket.into())?)
            } else {
                return Err(Status::InvalidArgument);
            }
        };
        self.add_listener(listener)
    }

    /// Registers a listening socket as a new listener handle.
    pub(crate) fn add_listener(&mut self, socket: ListenSocket) -> Result<Handle, Status> {
        let h = self
            .resources
            .insert(Resource::Listener(Listener {
                socket,
                accepts: OpQueue::new(),
                waker: Waker::noop().clone(),
            }))
            .ok_or(Status::QueueFull)?;
        let w = self.waker_for(Key::Accept(h));
        if let Some(Resource::Listener(l)) = self.resources.get_mut(h) {
            l.waker = w;
        }
        Ok(h)
    }

    /// Registers a connected socket as a new connection handle.
    pub(crate) fn add_conn(&mut self, stream: StreamSocket) -> Result<Handle, Status> {
        let noop = Waker::noop().clone();
        let h = self
            .resources
            .insert(Resource::Conn(Conn {
                stream,
                reads: OpQueue::new(),
                writes: OpQueue::new(),
                read_waker: noop.clone(),
                write_waker: noop,
            }))
            .ok_or(Status::QueueFull)?;
        let (rw, ww) = self.waker_pair([Key::Read(h), Key::Write(h)]);
        if let Some(Resource::Conn(c)) = self.resources.get_mut(h) {
            c.read_waker = rw;
            c.write_waker = ww;
        }
        Ok(h)
    }

    pub(crate) fn conn_mut(&mut self, h: Handle) -> Result<&mut Conn, Status> {
        match self.resources.get_mut(h) {
            Some(Resource::Conn(c)) => Ok(c),
            Some(Resource::Listener(_) | Resource::Udp(_) | Resource::File(_)) => {
                Err(Status::InvalidArgument)
            }
            None => Err(Status::BadHandle),
        }
    }

    // ---- addresses and the raw socket --------------------------------------------------

    pub(crate) fn with_socket<T>(
        &self,
        h: Handle,
        f: impl FnOnce(SockRef<'_>) -> io::Result<T>,
    ) -> Result<T, Status> {
        match self.resources.get(h) {
            Some(r) => f(r.sock_ref()).map_err(Status::from),
            None => Err(Status::BadHandle),
        }
    }

    /// The local address of a TCP connection or listener, or of a UDP socket
    /// (`InvalidArgument` for a Unix one: see [`unix_local_path`](Self::unix_local_path)).
    pub fn local_addr(&self, h: Handle) -> Result<SocketAddr, Status> {
        self.with_socket(h, |s| s.local_addr())
            .and_then(|a| a.as_socket().ok_or(Status::InvalidArgument))
    }

    /// The socket's file descriptor, for options the runtime does not wrap (`setsockopt`).
    /// The runtime keeps owning it: the caller must not close it, and it is invalid once the
    /// handle is closed.
    pub fn raw_fd(&self, h: Handle) -> Result<RawFd, Status> {
        self.with_socket(h, |s| Ok(s.as_raw_fd()))
    }

    /// The peer address of a TCP connection or of a connected UDP socket (`NotConnected`
    /// for one that is not; `InvalidArgument` for a Unix one: see
    /// [`unix_peer_path`](Self::unix_peer_path)).
    pub fn peer_addr(&self, h: Handle) -> Result<SocketAddr, Status> {
        match self.resources.get(h) {
            Some(Resource::Listener(_)) => Err(Status::NotConnected),
            Some(Resource::Conn(_) | Resource::Udp(_) | Resource::File(_)) | None => self
                .with_socket(h, |s| s.peer_addr())
                .and_then(|a| a.as_socket().ok_or(Status::InvalidArgument)),
        }
    }

    // ---- progress ----------------------------------------------------------------------

    pub(crate) fn progress_read(&mut self, h: Handle) {
        let Some(Resource::Conn(conn)) = self.resources.get_mut(h) else {
            return;
        };
        let q = &mut self.q;
        let mut bursts = 0;
        while let Some(id) = conn.reads.front() {
            let multi = match q.op(id) {
                Some(Op {
                    state: OpState::Read(_),
                    ..
                }) => None,
                Some(Op {
                    state: OpState::ReadMulti { cap, once },
                    ..
                }) => Some((*cap, *once)),
                _ => {
                    conn.reads.pop_front();
                    continue;
                }
            };
            let mut cx = Context::from_waker(&conn.read_waker);
            match conn.stream.poll_read_ready(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Err(e)) => {
                    conn.reads.pop_front();
                    q.finish(id, Err(Status::from(e)), h);
                    continue;
                }
                Poll::Ready(Ok(())) => {}
            }
            let Some((cap, once)) = multi else {
                let Some(Op {
                    state: OpState::Read(buf),
                    ..
                }) = q.op_mut(id)
                else {
                    return;
                };
                match recv_into(&conn.stream, buf, usize::MAX) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    r => {
                        conn.reads.pop_front();
                        q.finish(id, r.map_err(Status::from), h);
                    }
                }
                continue;
            };
            let mut buf = ReadBuf::from_vec(q.take_buf(cap));
            let r = recv_into(&conn.stream, &mut buf, cap);
            let ReadBuf(ReadInner::Owned(v)) = buf else {
                return;
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => q.spare(v),
                Ok(n) if n > 0 && once => {
                    // A single pooled read: its one completion carries the buffer.
                    let v = q.fit(v);
                    conn.reads.pop_front();
                    if let Some(op) = q.op_mut(id) {
                        op.state = OpState::Read(ReadBuf(ReadInner::Owned(v)));
                    }
                    q.finish(id, Ok(n), h);
                }
                Ok(n) if n > 0 => {
                    let v = q.fit(v);
                    q.post_more(id, n, h, v);
                    if n == cap {
                        // Maybe more waiting: take a few more, then let other sockets go
                        // first and come back in the next round of this turn.
                        bursts += 1;
                        if bursts == MULTISHOT_BURST {
                            self.shared.push(Key::Read(h).encode());
                            return;
                        }
                    }
                }
                r => {
                    // End of stream or an error: the last completion.
                    q.spare(v);
                    conn.reads.pop_front();
                    q.finish(id, r.map_err(Status::from), h);
                }
            }
        }
    }

    pub(crate) fn progress_write(&mut self, h: Handle) {
        let Some(Resource::Conn(conn)) = self.resources.get_mut(h) else {
            return;
        };
        let q = &mut self.q;
        while let Some(id) = conn.writes.front() {
            let Some(op) = q.op_mut(id) else {
                conn.writes.pop_front();
                continue;
            };
            match &op.state {
                OpState::Shutdown => {
                    conn.writes.pop_front();
                    let r = conn.stream.sock_ref().shutdown(std::net::Shutdown::Write);
                    q.finish(id, r.map(|_| 0).map_err(Status::from), h);
                    continue;
                }
                OpState::Write { buf, done } if *done == buf.len() => {
                    let n = buf.len();
                    conn.writes.pop_front();
                    q.finish(id, Ok(n), h);
                    continue;
                }
                _ => {}
            }
            let mut cx = Context::from_waker(&conn.write_waker);
            match conn.stream.poll_write_ready(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Err(e)) => {
                    conn.writes.pop_front();
                    q.finish(id, Err(Status::from(e)), h);
                    continue;
                }
                Poll::Ready(Ok(())) => {}
            }
            // Gather the queued writes (up to the first shutdown) into one sendmsg.
            let mut iov = Iovecs::new();
            for wid in conn.writes.iter() {
                match q.op(wid) {
                    Some(Op {
                        state: OpState::Write { buf, done },
                        ..
                    }) if iov.push(&buf.as_slice()[*done..]) => {}
                    _ => break,
                }
            }
            let fd = conn.stream.as_raw_fd();
            // SAFETY: the iovecs borrow buffers owned by queued ops, alive for the whole call.
            let sent = conn.stream.try_io(Interest::WRITABLE, || unsafe {
                send_iov(fd, iov.as_slice())
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    conn.writes.pop_front();
                    q.finish(id, Err(Status::from(e)), h);
                }
                Ok(mut n) => {
                    while n > 0 {
                        let Some(wid) = conn.writes.front() else {
                            break;
                        };
                        let Some(Op {
                            state: OpState::Write { buf, done },
                            ..
                        }) = q.op_mut(wid)
                        else {
                            break;
                        };
                        let take = n.min(buf.len() - *done);
                        *done += take;
                        n -= take;
                        if *done == buf.len() {
                            let len = buf.len();
                            conn.writes.pop_front();
                            q.finish(wid, Ok(len), h);
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn progress_accept(&mut self, h: Handle) {
        loop {
            let Some(Resource::Listener(l)) = self.resources.get_mut(h) else {
                return;
            };
            // Skip accepts cancelled while further back in the queue.
            let Some(id) = l.accepts.front() else { return };
            if self.q.op(id).is_none() {
                l.accepts.pop_front();
                continue;
            }
            let mut cx = Context::from_waker(&l.waker);
            let accepted = match l.socket.poll_accept(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(r) => r,
            };
            l.accepts.pop_front();
            match accepted
                .map_err(Status::from)
                .and_then(|s| self.add_conn(s))
            {
                Ok(conn) => self.q.finish(id, Ok(0), conn),
                Err(s) => self.q.finish(id, Err(s), Handle::NONE),
            }
        }
    }
}

/// One `recv` of at most `max` bytes into `buf`'s free space (a short read clears tokio's
/// readiness, as its own `poll_read` does, so that the next read waits for the next event
/// instead of trying a recv that would only say EAGAIN). Returns the bytes read; an owned
/// buffer grows by them.
fn recv_into(stream: &StreamSocket, buf: &mut ReadBuf, max: usize) -> io::Result<usize> {
    let (ptr, len) = match &mut buf.0 {
        ReadInner::Owned(v) => (
            v.spare_capacity_mut().as_mut_ptr().cast::<u8>(),
            (v.capacity() - v.len()).min(max),
        ),
        ReadInner::Raw(ptr, len) => (*ptr, (*len).min(max)),
    };
    let fd = stream.as_raw_fd();
    let mut short = None;
    let r = stream.try_io(Interest::READABLE, || {
        // SAFETY: `ptr..ptr+len` is writable: a Vec's spare capacity, or raw memory its
        // submitter guaranteed until this op completes.
        let n = unsafe { libc::recv(fd, ptr.cast(), len, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n > 0 && n < len {
            short = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    let r = short.map_or(r, Ok);
    if let (Ok(n), ReadInner::Owned(v)) = (&r, &mut buf.0) {
        // SAFETY: recv initialised `n` bytes of the spare capacity.
        unsafe { v.set_len(v.len() + n) };
    }
    r
}

/// Up to `MAX_IOV` iovecs on the stack, left uninitialised past the ones pushed (a zeroed
/// array would cost a 1 KiB memset per write).
struct Iovecs<'a> {
    iov: [std::mem::MaybeUninit<libc::iovec>; MAX_IOV],
    n: usize,
    _bufs: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> Iovecs<'a> {
    fn new() -> Iovecs<'a> {
        Iovecs {
            iov: [std::mem::MaybeUninit::uninit(); MAX_IOV],
            n: 0,
            _bufs: std::marker::PhantomData,
        }
    }

    /// Adds `b`; false when full.
    fn push(&mut self, b: &'a [u8]) -> bool {
        if self.n == MAX_IOV {
            return false;
        }
        self.iov[self.n].write(libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        });
        self.n += 1;
        true
    }

    fn as_slice(&self) -> &[libc::iovec] {
        // SAFETY: the first `n` entries were written by `push`.
        unsafe { std::slice::from_raw_parts(self.iov.as_ptr().cast(), self.n) }
    }
}

/// One `send` (a single buffer) or `sendmsg` (several) on socket `fd`, with `MSG_NOSIGNAL`
/// (EPIPE instead of SIGPIPE).
///
/// # Safety
/// `fd` is an open socket and every iovec points at `iov_len` readable bytes.
unsafe fn send_iov(fd: RawFd, iov: &[libc::iovec]) -> io::Result<usize> {
    let n = if let [one] = iov {
        // SAFETY: the caller's guarantee; one buffer needs no msghdr.
        unsafe { libc::send(fd, one.iov_base, one.iov_len, libc::MSG_NOSIGNAL) }
    } else {
        // SAFETY: a zeroed msghdr is valid; it points at the caller's iovecs.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut _;
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: the caller's guarantee.
        unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) }
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
