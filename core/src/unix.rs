//! Unix domain stream sockets: connecting and listening by path (a filesystem path or a Linux
//! abstract name, given as bytes), the peer's credentials, and the bound and peer paths.
//! Reads, writes and accepts are the shared stream ops of `stream.rs`.

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::{UnixListener, UnixStream};

use crate::handle::Handle;
use crate::op::OpCode;
use crate::runtime::Runtime;
use crate::socket::{ListenSocket, Resource, SocketFile, StreamSocket};
use crate::status::Status;
use crate::task::{Done, TaskFuture};
use crate::tcp::ListenOptions;

/// Bytes in `sockaddr_un.sun_path` on Linux.
pub const UNIX_PATH_MAX: usize = 108;

/// The credentials of the process at the other end of a Unix connection, as the kernel
/// recorded them when the connection was made (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

impl Runtime {
    /// Connects to the Unix stream socket at `path`: a filesystem path, or a Linux abstract
    /// name when its first byte is NUL. Completes with `result = 0` and the new connection's
    /// handle, or an error (`NotFound`: no socket there; `ConnectionRefused`: nothing listens;
    /// `PermissionDenied`; `TryAgain` (EAGAIN): the listener's backlog is full — a Unix
    /// connect does not wait for room, as in libuv). `InvalidArgument` at once for an empty path, a path longer than
    /// `sun_path` (107 bytes for a filesystem path, 108 with an abstract name's NUL), or a
    /// filesystem path with a NUL inside.
    pub fn unix_connect(&mut self, path: &[u8], user_data: u64) -> Result<(), Status> {
        self.admit()?;
        let addr = unix_addr(path)?;
        // A Unix connect never waits: it is queued on the listener (or refused) at once.
        let connected = connect_now(&addr);
        let fut: TaskFuture = Box::pin(async move {
            let std = connected?;
            let stream = UnixStream::from_std(std)?;
            Ok(Done::Stream(StreamSocket::Unix(stream)))
        });
        self.submit_task(user_data, OpCode::Connect, fut)
    }

    /// Binds and listens on `path` (as for [`unix_connect`](Self::unix_connect)).
    /// `AddressInUse` if a file exists there already (remove a stale socket first, as asyncio
    /// does). The socket file is removed when the listener closes ([`close`](Self::close),
    /// shutdown, or the runtime's drop) if it is still the one bound here. `options.backlog`
    /// as for TCP (0: 511); `reuse_port` is `InvalidArgument`; `ipv6_only` is ignored.
    /// Synchronous: no completion.
    pub fn unix_listen(&mut self, path: &[u8], options: ListenOptions) -> Result<Handle, Status> {
        self.live()?;
        let addr = unix_addr(path)?;
        if options.reuse_port {
            return Err(Status::InvalidArgument);
        }
        let backlog = options.backlog()?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr)?;
        let file = match path.first() {
            Some(0) | None => None,
            Some(_) => SocketFile::bound_at(PathBuf::from(OsStr::from_bytes(path))),
        };
        // From here the file is ours: dropping `file` on an error below removes it.
        socket.listen(backlog)?;
        let listener = {
            let _e = self.tokio.enter();
            UnixListener::from_std(socket.into())?
        };
        self.add_listener(ListenSocket::Unix { listener, file })
    }

    /// Leaves a Unix listener's socket file in place when it closes (asyncio's
    /// `cleanup_socket=False`). `InvalidArgument` for any other handle.
    pub fn unix_keep_path(&mut self, listener: Handle) -> Result<(), Status> {
        match self.resources.get_mut(listener) {
            Some(Resource::Listener(l)) => match &mut l.socket {
                ListenSocket::Unix { file, .. } => {
                    if let Some(f) = file {
                        f.keep();
                    }
                    Ok(())
                }
                ListenSocket::Tcp(_) => Err(Status::InvalidArgument),
            },
            Some(Resource::Conn(_) | Resource::Udp(_) | Resource::File(_)) => {
                Err(Status::InvalidArgument)
            }
            None => Err(Status::BadHandle),
        }
    }

    /// The path a Unix connection or listener is bound to: the filesystem path's bytes, an
    /// abstract name with its leading NUL, or empty for an unbound socket (a connecting
    /// client's end). `InvalidArgument` for a TCP handle.
    pub fn unix_local_path(&self, h: Handle) -> Result<Vec<u8>, Status> {
        self.unix_kind(h)?;
        self.with_socket(h, |s| s.local_addr())
            .map(|a| path_bytes(&a))
    }

    /// The path of a Unix connection's peer (as [`unix_local_path`](Self::unix_local_path)):
    /// a client sees the listener's path, the accepted end usually an empty one.
    /// `NotConnected` for a listener, `InvalidArgument` for a TCP handle.
    pub fn unix_peer_path(&self, h: Handle) -> Result<Vec<u8>, Status> {
        if self.unix_kind(h)? {
            return Err(Status::NotConnected);
        }
        self.with_socket(h, |s| s.peer_addr())
            .map(|a| path_bytes(&a))
    }

    /// The peer's pid, uid and gid on a Unix connection (`SO_PEERCRED`): the process that
    /// connected or listened, as of that moment. `InvalidArgument` for a TCP handle,
    /// `NotConnected` for a listener.
    pub fn unix_peer_cred(&self, h: Handle) -> Result<PeerCred, Status> {
        if self.unix_kind(h)? {
            return Err(Status::NotConnected);
        }
        self.with_socket(h, |s| {
            let mut cred = libc::ucred {
                pid: 0,
                uid: 0,
                gid: 0,
            };
            let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
            // SAFETY: `cred` is a writable ucred and `len` its size, as SO_PEERCRED expects.
            let r = unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_PEERCRED,
                    (&raw mut cred).cast(),
                    &mut len,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(PeerCred {
                pid: cred.pid,
                uid: cred.uid,
                gid: cred.gid,
            })
        })
    }

    /// Whether `h` is a Unix listener (true) or a Unix connection (false); `InvalidArgument`
    /// for any other kind.
    fn unix_kind(&self, h: Handle) -> Result<bool, Status> {
        match self.resources.get(h) {
            Some(Resource::Conn(c)) => match c.stream {
                StreamSocket::Unix(_) => Ok(false),
                StreamSocket::Tcp(_) => Err(Status::InvalidArgument),
            },
            Some(Resource::Listener(l)) => match l.socket {
                ListenSocket::Unix { .. } => Ok(true),
                ListenSocket::Tcp(_) => Err(Status::InvalidArgument),
            },
            Some(Resource::Udp(_) | Resource::File(_)) => Err(Status::InvalidArgument),
            None => Err(Status::BadHandle),
        }
    }
}

/// The socket address for `path`, or `InvalidArgument` for one `sun_path` cannot hold: empty,
/// too long, or a filesystem path with a NUL inside (the kernel would cut it there).
fn unix_addr(path: &[u8]) -> Result<SockAddr, Status> {
    let ok = match path {
        [] => false,
        [0, ..] => path.len() <= UNIX_PATH_MAX,
        _ => path.len() < UNIX_PATH_MAX && !path.contains(&0),
    };
    if !ok {
        return Err(Status::InvalidArgument);
    }
    SockAddr::unix(OsStr::from_bytes(path)).map_err(|_| Status::InvalidArgument)
}

/// A non-blocking connect to `addr`, finished at once (a Unix stream connect never reports
/// EINPROGRESS on Linux: it succeeds, or fails, or says EAGAIN when the backlog is full).
fn connect_now(addr: &SockAddr) -> Result<std::os::unix::net::UnixStream, Status> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(addr)?;
    Ok(socket.into())
}

/// An address's path as bytes: a filesystem path, an abstract name with its leading NUL, or
/// empty when unnamed.
fn path_bytes(addr: &SockAddr) -> Vec<u8> {
    if let Some(p) = addr.as_pathname() {
        return p.as_os_str().as_bytes().to_vec();
    }
    match addr.as_abstract_namespace() {
        Some(name) => [&[0u8][..], name].concat(),
        None => Vec::new(),
    }
}
