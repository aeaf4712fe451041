//! The resources a runtime holds: connected streams and listeners, each with the queues of
//! operations waiting on it. One enum per role lists every socket kind (TCP, Unix), so the
//! stream ops in `stream.rs` are written once for all of them, as libuv's `stream.c` is.
//! UDP sockets are a resource of their own, with receive and send queues.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use socket2::SockRef;
use tokio::io::{Interest, Ready};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

use crate::opqueue::OpQueue;

/// A connected stream socket of any kind.
pub(crate) enum StreamSocket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl StreamSocket {
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            StreamSocket::Tcp(s) => s.poll_read_ready(cx),
            StreamSocket::Unix(s) => s.poll_read_ready(cx),
        }
    }

    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            StreamSocket::Tcp(s) => s.poll_write_ready(cx),
            StreamSocket::Unix(s) => s.poll_write_ready(cx),
        }
    }

    /// Runs the syscall `f` if tokio says the socket is ready for `interest`, and clears that
    /// readiness when `f` says `WouldBlock` (tokio's `try_io`).
    pub(crate) fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        match self {
            StreamSocket::Tcp(s) => s.try_io(interest, f),
            StreamSocket::Unix(s) => s.try_io(interest, f),
        }
    }

    pub(crate) fn sock_ref(&self) -> SockRef<'_> {
        match self {
            StreamSocket::Tcp(s) => SockRef::from(s),
            StreamSocket::Unix(s) => SockRef::from(s),
        }
    }
}

impl AsRawFd for StreamSocket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            StreamSocket::Tcp(s) => s.as_raw_fd(),
            StreamSocket::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// A listening socket of any kind.
pub(crate) enum ListenSocket {
    Tcp(TcpListener),
    /// A Unix listener, and the socket file it removes when it closes (none for an abstract
    /// name). Fields drop in order: the socket closes before its file goes.
    Unix {
        listener: UnixListener,
        /// Dropped after `listener`.
        file: Option<SocketFile>,
    },
}

impl ListenSocket {
    /// Accepts one pending connection, or registers `cx`'s waker for the next.
    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<StreamSocket>> {
        match self {
            ListenSocket::Tcp(l) => l
                .poll_accept(cx)
                .map(|r| r.map(|(s, _)| StreamSocket::Tcp(s))),
            ListenSocket::Unix { listener: l, .. } => l
                .poll_accept(cx)
                .map(|r| r.map(|(s, _)| StreamSocket::Unix(s))),
        }
    }

    pub(crate) fn sock_ref(&self) -> SockRef<'_> {
        match self {
            ListenSocket::Tcp(l) => SockRef::from(l),
            ListenSocket::Unix { listener: l, .. } => SockRef::from(l),
        }
    }
}

/// The filesystem entry a Unix listener bound, removed when the listener closes — but only
/// while the path still names that same socket (same device and inode, as CPython 3.13's
/// `cleanup_socket` checks), so a file put there since is left alone.
pub(crate) struct SocketFile {
    /// `None` once kept ([`keep`](Self::keep)): nothing to remove.
    path: Option<PathBuf>,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// Records the socket file now at `path` (just bound); `None` if it cannot be seen.
    pub(crate) fn bound_at(path: PathBuf) -> Option<SocketFile> {
        let meta = std::fs::symlink_metadata(&path).ok()?;
        Some(SocketFile {
            dev: meta.dev(),
            ino: meta.ino(),
            path: Some(path),
        })
    }

    /// Leaves the file in place when this is dropped.
    pub(crate) fn keep(&mut self) {
        self.path = None;
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else { return };
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.file_type().is_socket()
            && meta.dev() == self.dev
            && meta.ino() == self.ino
        {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A connection: its socket, its queued reads and writes (op ids, in submission order) and
/// the wakers that queue its read and write keys.
pub(crate) struct Conn {
    pub(crate) stream: StreamSocket,
    pub(crate) reads: OpQueue,
    pub(crate) writes: OpQueue,
    pub(crate) read_waker: Waker,
    pub(crate) write_waker: Waker,
}

/// A listener: its socket, its queued accepts and the waker that queues its accept key.
pub(crate) struct Listener {
    pub(crate) socket: ListenSocket,
    pub(crate) accepts: OpQueue,
    pub(crate) waker: Waker,
}

/// A UDP socket: its queued receives and sends (op ids, in submission order), the wakers
/// that queue its receive and send keys, and, once connected, the watch that sees an error
/// the kernel queued on it (an ICMP port unreachable raises EPOLLERR without EPOLLIN, which
/// tokio's read readiness does not report).
pub(crate) struct Udp {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) errors: Option<ErrorWatch>,
    pub(crate) recvs: OpQueue,
    pub(crate) sends: OpQueue,
    pub(crate) recv_waker: Waker,
    pub(crate) send_waker: Waker,
}

/// Resolves when a socket has an error pending (tokio's `ready(Interest::ERROR)`).
pub(crate) type ErrorWatch = Pin<Box<dyn Future<Output = io::Result<Ready>> + Send>>;

/// An open file (`fs/`): its fd, shared with blocking-pool jobs that use it, so that it
/// closes only when the last of them is done.
pub(crate) struct OpenFile {
    pub(crate) fd: Arc<OwnedFd>,
}

/// Anything a handle from the resource table names.
pub(crate) enum Resource {
    Conn(Conn),
    Listener(Listener),
    Udp(Udp),
    File(OpenFile),
}

impl Resource {
    pub(crate) fn sock_ref(&self) -> SockRef<'_> {
        match self {
            Resource::Conn(c) => c.stream.sock_ref(),
            Resource::Listener(l) => l.socket.sock_ref(),
            Resource::Udp(u) => SockRef::from(&*u.socket),
            // Socket calls on a file fail with ENOTSOCK.
            Resource::File(f) => SockRef::from(&*f.fd),
        }
    }
}
