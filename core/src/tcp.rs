//! TCP: connecting (by address or by name, resolved on tokio's blocking pool), listening,
//! and the options only TCP has. Reads, writes and accepts are the shared stream ops of
//! `stream.rs`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, Socket, TcpKeepalive, Type};
use tokio::net::{TcpListener, TcpStream};

use crate::handle::Handle;
use crate::op::OpCode;
use crate::runtime::Runtime;
use crate::socket::{ListenSocket, StreamSocket};
use crate::status::Status;
use crate::task::{Done, TaskFuture};

/// The longest keepalive idle time Linux accepts (`MAX_TCP_KEEPIDLE`), in seconds.
pub const MAX_KEEPALIVE_IDLE_SECS: u64 = 32_767;

/// Listener settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListenOptions {
    /// Accept queue length; 0 means the default (511, as libuv and Node).
    pub backlog: u32,
    /// Sets `SO_REUSEPORT`, so several runtimes (one per core) can share a port.
    pub reuse_port: bool,
    /// Sets `IPV6_V6ONLY` on an IPv6 listener (ignored for IPv4), so that it can share its
    /// port with an IPv4 listener, as asyncio binds `host=None` (one listener per family).
    /// Off: the system default (on Linux, `::` also accepts IPv4, as Node and libuv).
    pub ipv6_only: bool,
}

impl ListenOptions {
    /// The backlog to pass to `listen(2)`; `InvalidArgument` past `i32::MAX`.
    pub(crate) fn backlog(&self) -> Result<i32, Status> {
        match self.backlog {
            0 => Ok(511),
            b => i32::try_from(b).map_err(|_| Status::InvalidArgument),
        }
    }
}

impl Runtime {
    /// Connects to `host:port`. `host` is an IPv4 or IPv6 literal (brackets allowed) or a name,
    /// resolved on tokio's blocking pool. Completes with `result = 0` and the new
    /// connection's handle, or an error (`ConnectionRefused`, `NameNotResolved`, ...).
    pub fn tcp_connect(&mut self, host: &str, port: u16, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if port == 0 || host.is_empty() || host.len() > 1024 || host.contains('\0') {
            return Err(Status::InvalidArgument);
        }
        let fut: TaskFuture = match ip_literal(host) {
            Some(ip) => Box::pin(connect_addrs(vec![SocketAddr::new(ip, port)])),
            None => {
                let host = host.to_owned();
                Box::pin(async move {
                    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                        .await
                        .map_err(|_| Status::NameNotResolved)?
                        .collect();
                    connect_addrs(addrs).await
                })
            }
        };
        self.submit_task(user_data, OpCode::Connect, fut)
    }

    /// Binds and listens on `host:port` (port 0: an ephemeral port; see
    /// [`local_addr`](Self::local_addr)). Sets `SO_REUSEADDR`. Synchronous: no completion.
    pub fn tcp_listen(
        &mut self,
        host: &str,
        port: u16,
        options: ListenOptions,
    ) -> Result<Handle, Status> {
        self.live()?;
        if host.is_empty() || host.contains('\0') {
            return Err(Status::InvalidArgument);
        }
        let backlog = options.backlog()?;
        let addr = match ip_literal(host) {
            Some(ip) => SocketAddr::new(ip, port),
            None => (host, port)
                .to_socket_addrs()
                .map_err(|_| Status::NameNotResolved)?
                .next()
                .ok_or(Status::NameNotResolved)?,
        };
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if options.ipv6_only && addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        if options.reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(backlog)?;
        let listener = {
            let _e = self.tokio.enter();
            TcpListener::from_std(socket.into())?
        };
        self.add_listener(ListenSocket::Tcp(listener))
    }

    /// Sets or clears `TCP_NODELAY` on a connection.
    pub fn set_nodelay(&mut self, h: Handle, on: bool) -> Result<(), Status> {
        self.conn_mut(h)?;
        self.with_socket(h, |s| s.set_tcp_nodelay(on))
    }

    /// Turns TCP keepalive off (`None`) or on with the given idle time before the first
    /// probe: whole seconds from 1 to 32,767 (Linux's limit for `TCP_KEEPIDLE`; a fraction
    /// of a second is dropped). Outside that range: `InvalidArgument`, and nothing changes.
    pub fn set_keepalive(&mut self, h: Handle, idle: Option<Duration>) -> Result<(), Status> {
        self.conn_mut(h)?;
        match idle {
            None => self.with_socket(h, |s| s.set_keepalive(false)),
            Some(d) if !(1..=MAX_KEEPALIVE_IDLE_SECS).contains(&d.as_secs()) => {
                Err(Status::InvalidArgument)
            }
            Some(d) => self.with_socket(h, |s| {
                s.set_tcp_keepalive(&TcpKeepalive::new().with_time(d))
            }),
        }
    }
}

/// The IP address `host` spells, with or without IPv6 brackets (`"::1"`, `"[::1]"`).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Tries each address in turn; the first that connects wins, else the last error.
async fn connect_addrs(addrs: Vec<SocketAddr>) -> Result<Done, Status> {
    let mut last = Status::NameNotResolved;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(Done::Stream(StreamSocket::Tcp(s))),
            Err(e) => last = Status::from(e),
        }
    }
    Err(last)
}
