//! TCP: connecting (by address, or by name with Happy Eyeballs over every address found),
//! listening (on IP literals and `localhost` only: it never waits for a lookup), and the
//! options only TCP has. Reads, writes and accepts are the shared stream ops of
//! `stream.rs`.

use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, TcpKeepalive, Type};
use tokio::net::{TcpListener, TcpStream};

use crate::handle::Handle;
use crate::op::OpCode;
use crate::resolve::{LookupHints, check_host, ip_literal};
use crate::runtime::Runtime;
use crate::socket::{ListenSocket, StreamSocket};
use crate::status::Status;
use crate::task::{Done, TaskFuture, wake_at};

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

/// How a connect by name tries the addresses it finds (RFC 8305, Happy Eyeballs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// How long an attempt runs alone before the next address is tried beside it (the
    /// "connection attempt delay"; asyncio's `happy_eyeballs_delay`, Node's
    /// `autoSelectFamilyAttemptTimeout`). `None`: one address after another, each after the
    /// previous one failed (asyncio's default). A failed attempt starts the next at once.
    pub attempt_delay: Option<Duration>,
    /// Reorders the addresses so families alternate, `interleave` addresses of the first
    /// family then one of the other, and so on (asyncio's `interleave`). 0: the resolver's
    /// order.
    pub interleave: usize,
    /// The address family a name is looked up for: `AF_INET`, `AF_INET6`, or 0 for both.
    /// Ignored for an IP literal.
    pub family: i32,
}

impl Default for ConnectOptions {
    /// Happy Eyeballs as RFC 8305 recommends and Node does: 250 ms, families interleaved.
    fn default() -> ConnectOptions {
        ConnectOptions {
            attempt_delay: Some(Duration::from_millis(250)),
            interleave: 1,
            family: 0,
        }
    }
}

impl Runtime {
    /// Connects to `host:port` with the default [`ConnectOptions`] (Happy Eyeballs).
    pub fn tcp_connect(&mut self, host: &str, port: u16, user_data: u64) -> Result<(), Status> {
        self.tcp_connect_with(host, port, ConnectOptions::default(), user_data)
    }

    /// Connects to `host:port`. `host` is an IPv4 or IPv6 literal (brackets allowed) or a
    /// name, looked up on the pool (as [`getaddrinfo`](Self::getaddrinfo), `SOCK_STREAM`);
    /// every address found is tried as `options` says, the first to connect wins and the
    /// other attempts are closed. Completes with `result = 0` and the new connection's
    /// handle, or an error: `NameNotResolved` / `NameTryAgain` from the lookup, or when
    /// every attempt failed the most telling of their errors (a refusal over a timeout over
    /// an unreachable host or network over the rest). A host the host rule rejects (see
    /// [`MAX_HOST_LEN`](crate::MAX_HOST_LEN)) or port 0 is `InvalidArgument`, posting nothing.
    pub fn tcp_connect_with(
        &mut self,
        host: &str,
        port: u16,
        options: ConnectOptions,
        user_data: u64,
    ) -> Result<(), Status> {
        self.admit()?;
        if port == 0 {
            return Err(Status::InvalidArgument);
        }
        check_host(host)?;
        let fut: TaskFuture = match ip_literal(host) {
            Some(ip) => Box::pin(connect_addrs(vec![SocketAddr::new(ip, port)], options)),
            None => {
                let hints = LookupHints {
                    family: options.family,
                    socktype: libc::SOCK_STREAM,
                    ..LookupHints::default()
                };
                let lookup = self.lookup(Some(host), None, hints)?;
                Box::pin(async move {
                    let addrs = lookup.await?;
                    let addrs = addrs
                        .into_iter()
                        .map(|a| SocketAddr::new(a.addr.ip(), port))
                        .collect();
                    connect_addrs(addrs, options).await
                })
            }
        };
        self.submit_task(user_data, OpCode::Connect, fut)
    }

    /// Binds and listens on `host:port` (port 0: an ephemeral port; see
    /// [`local_addr`](Self::local_addr)). Sets `SO_REUSEADDR`. Synchronous: no completion.
    /// `host` is an IP literal or `localhost` (which means 127.0.0.1, with no lookup):
    /// listening resolves no names, so it never blocks; look other names up with
    /// [`getaddrinfo`](Self::getaddrinfo) first. Any other host is `InvalidArgument`.
    pub fn tcp_listen(
        &mut self,
        host: &str,
        port: u16,
        options: ListenOptions,
    ) -> Result<Handle, Status> {
        self.live()?;
        let backlog = options.backlog()?;
        let ip = match ip_literal(host) {
            Some(ip) => ip,
            None if host.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => return Err(Status::InvalidArgument),
        };
        let addr = SocketAddr::new(ip, port);
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

    /// Sets or clears `TCP_NODELAY` on a connection (`InvalidArgument` on a Unix one).
    pub fn set_nodelay(&mut self, h: Handle, on: bool) -> Result<(), Status> {
        self.tcp_conn(h)?;
        self.with_socket(h, |s| s.set_tcp_nodelay(on))
    }

    /// Turns TCP keepalive off (`None`) or on with the given idle time before the first
    /// probe: whole seconds from 1 to 32,767 (Linux's limit for `TCP_KEEPIDLE`; a fraction
    /// of a second is dropped). Outside that range: `InvalidArgument`, and nothing changes.
    /// `InvalidArgument` on a Unix connection.
    pub fn set_keepalive(&mut self, h: Handle, idle: Option<Duration>) -> Result<(), Status> {
        self.tcp_conn(h)?;
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

impl Runtime {
    /// Checks that `h` is a TCP connection: `InvalidArgument` for another kind or a listener.
    fn tcp_conn(&mut self, h: Handle) -> Result<(), Status> {
        match self.conn_mut(h)?.stream {
            StreamSocket::Tcp(_) => Ok(()),
            StreamSocket::Unix(_) => Err(Status::InvalidArgument),
        }
    }
}

/// Happy Eyeballs over `addrs` (RFC 8305 section 5): attempts start in order, the next one
/// when the last started has run `attempt_delay` alone or when any attempt fails; the first
/// to connect wins and the others are dropped (closed). When all fail, the most telling
/// error.
async fn connect_addrs(addrs: Vec<SocketAddr>, options: ConnectOptions) -> Result<Done, Status> {
    let addrs = interleave(addrs, options.interleave);
    let mut next = 0;
    let mut attempts: Vec<Pin<Box<Attempt>>> = Vec::new();
    let mut error: Option<Status> = None;
    let mut next_at: Option<Instant> = None;
    std::future::poll_fn(|cx| {
        loop {
            let due = next_at.is_some_and(|at| Instant::now() >= at);
            if next < addrs.len() && (attempts.is_empty() || due) {
                attempts.push(Box::pin(TcpStream::connect(addrs[next])));
                next += 1;
                next_at = options.attempt_delay.map(|d| Instant::now() + d);
            }
            let mut failed = false;
            let mut i = 0;
            while i < attempts.len() {
                match attempts[i].as_mut().poll(cx) {
                    Poll::Ready(Ok(s)) => {
                        return Poll::Ready(Ok(Done::Stream(StreamSocket::Tcp(s))));
                    }
                    Poll::Ready(Err(e)) => {
                        let s = Status::from(e);
                        error = Some(error.map_or(s, |old| more_telling(old, s)));
                        drop(attempts.swap_remove(i));
                        failed = true;
                    }
                    Poll::Pending => i += 1,
                }
            }
            if next >= addrs.len() {
                if attempts.is_empty() {
                    return Poll::Ready(Err(error.unwrap_or(Status::NameNotResolved)));
                }
                return Poll::Pending;
            }
            if failed {
                // A failure starts the next attempt at once.
                next_at = Some(Instant::now());
                continue;
            }
            match next_at {
                Some(at) if Instant::now() >= at => continue,
                Some(at) => wake_at(at),
                None => {}
            }
            return Poll::Pending;
        }
    })
    .await
}

type Attempt = dyn Future<Output = std::io::Result<TcpStream>> + Send;

/// `addrs` reordered so that families alternate: `first` of the first address's family,
/// then one of the other, and so on (RFC 8305 section 4, asyncio's `_interleave_addrinfos`).
fn interleave(addrs: Vec<SocketAddr>, first: usize) -> Vec<SocketAddr> {
    let Some(lead) = addrs.first().map(SocketAddr::is_ipv6) else {
        return addrs;
    };
    if first == 0 {
        return addrs;
    }
    let (mut a, mut b): (VecDeque<_>, VecDeque<_>) =
        addrs.into_iter().partition(|x| x.is_ipv6() == lead);
    let mut out = Vec::with_capacity(a.len() + b.len());
    for _ in 0..first - 1 {
        out.extend(a.pop_front());
    }
    while !a.is_empty() || !b.is_empty() {
        out.extend(a.pop_front());
        out.extend(b.pop_front());
    }
    out
}

/// Of two attempts' errors, the one that says more about why the peer cannot be reached:
/// the host answered (refused, reset) over no answer (timed out) over unreachable over the
/// rest; on a tie, the earlier.
fn more_telling(old: Status, new: Status) -> Status {
    let rank = |s: Status| match s {
        Status::ConnectionRefused | Status::ConnectionReset => 4,
        Status::TimedOut => 3,
        Status::HostUnreachable => 2,
        Status::NetworkUnreachable => 1,
        _ => 0,
    };
    if rank(new) > rank(old) { new } else { old }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_alternates_families() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let v = vec![
            a("[::1]:1"),
            a("[::2]:1"),
            a("[::3]:1"),
            a("1.0.0.1:1"),
            a("1.0.0.2:1"),
        ];
        let got = interleave(v.clone(), 1);
        let want = vec![
            a("[::1]:1"),
            a("1.0.0.1:1"),
            a("[::2]:1"),
            a("1.0.0.2:1"),
            a("[::3]:1"),
        ];
        assert_eq!(got, want);
        let got = interleave(v.clone(), 2);
        let want = vec![
            a("[::1]:1"),
            a("[::2]:1"),
            a("1.0.0.1:1"),
            a("[::3]:1"),
            a("1.0.0.2:1"),
        ];
        assert_eq!(got, want);
        assert_eq!(interleave(v.clone(), 0), v);
    }

    #[test]
    fn a_refusal_says_more_than_unreachable() {
        use Status::*;
        assert_eq!(
            more_telling(NetworkUnreachable, ConnectionRefused),
            ConnectionRefused
        );
        assert_eq!(more_telling(ConnectionRefused, TimedOut), ConnectionRefused);
        assert_eq!(
            more_telling(AddressNotAvailable, HostUnreachable),
            HostUnreachable
        );
    }
}
