//! Name lookups: results as the system's resolver gives them, the one host rule, listen
//! without lookups, cancel, deadline and shutdown of lookups that never answer (a freed
//! runtime never waits for them), and Happy Eyeballs on loopback with a resolver that
//! supplies both families. No test sends a packet off the machine.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{BACKENDS, Reaper, runtime};
use polyio_core::{
    AddrInfo, Completion, ConnectOptions, Handle, ListenOptions, LookupHints, MAX_HOST_LEN, OpCode,
    Query, Resolve, Runtime, Status,
};
use socket2::{Domain, Socket, Type};

fn stream_hints() -> LookupHints {
    LookupHints {
        socktype: libc::SOCK_STREAM,
        ..LookupHints::default()
    }
}

#[test]
fn localhost_resolves_as_the_system_does() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        rt.getaddrinfo(Some("localhost"), Some("8080"), stream_hints(), 1)
            .unwrap();
        let c = r.wait(&mut rt, 1);
        assert_eq!(
            (c.op, c.status(), c.handle),
            (OpCode::Lookup, Status::Ok, Handle::NONE)
        );
        let addrs = c.addrs.expect("addresses");
        assert_eq!(c.result as usize, addrs.len());
        let got: Vec<SocketAddr> = addrs.iter().map(|a| a.addr).collect();
        let want: Vec<SocketAddr> = ("localhost", 8080).to_socket_addrs().unwrap().collect();
        assert_eq!(got, want);
        for a in addrs.iter() {
            assert_eq!(a.socktype, libc::SOCK_STREAM);
            assert_eq!(a.protocol, libc::IPPROTO_TCP);
            let fam = if a.addr.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            assert_eq!(a.family, fam);
        }
    }
}

#[test]
fn numeric_hosts_services_and_canonname() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let hints = LookupHints {
        family: libc::AF_INET6,
        socktype: libc::SOCK_DGRAM,
        flags: libc::AI_NUMERICHOST,
        ..LookupHints::default()
    };
    rt.getaddrinfo(Some("::1"), Some("53"), hints, 1).unwrap();
    let c = r.wait(&mut rt, 1);
    let addrs = c.addrs.unwrap();
    assert_eq!(addrs.len(), 1);
    assert_eq!(
        addrs[0].addr,
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 53)
    );
    assert_eq!(addrs[0].socktype, libc::SOCK_DGRAM);

    // No host: the loopback addresses (without AI_PASSIVE), as getaddrinfo(3) says.
    rt.getaddrinfo(None, Some("80"), stream_hints(), 2).unwrap();
    let c = r.wait(&mut rt, 2);
    assert!(c.addrs.unwrap().iter().all(|a| a.addr.ip().is_loopback()));

    let hints = LookupHints {
        flags: libc::AI_CANONNAME,
        ..stream_hints()
    };
    rt.getaddrinfo(Some("localhost"), None, hints, 3).unwrap();
    let c = r.wait(&mut rt, 3);
    let addrs = c.addrs.unwrap();
    assert_eq!(addrs[0].canonname.as_deref(), Some("localhost"));
    assert_eq!(addrs[0].addr.port(), 0);
}

#[test]
fn lookup_failures_complete_with_a_status() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    // AI_NUMERICHOST: a name fails without asking any server.
    let numeric = LookupHints {
        flags: libc::AI_NUMERICHOST,
        ..stream_hints()
    };
    rt.getaddrinfo(Some("no-such-host.invalid"), None, numeric, 1)
        .unwrap();
    let c = r.wait(&mut rt, 1);
    assert_eq!(
        (c.op, c.status()),
        (OpCode::Lookup, Status::NameNotResolved)
    );
    assert!(c.addrs.is_none());
    // A service /etc/services does not know; a family getaddrinfo does not do.
    rt.getaddrinfo(
        Some("127.0.0.1"),
        Some("no-such-service"),
        stream_hints(),
        2,
    )
    .unwrap();
    assert_eq!(r.wait(&mut rt, 2).status(), Status::InvalidArgument);
    let bad_family = LookupHints {
        family: 12345,
        ..LookupHints::default()
    };
    rt.getaddrinfo(Some("127.0.0.1"), None, bad_family, 3)
        .unwrap();
    assert_eq!(r.wait(&mut rt, 3).status(), Status::InvalidArgument);
}

/// Hosts the one rule rejects, for every call that takes a host.
fn garbage_hosts() -> Vec<String> {
    vec![
        String::new(),
        "a\0b".into(),
        "bücher.example".into(),
        "has space".into(),
        "a..b".into(),
        ".".into(),
        format!("{}.com", "a".repeat(64)),
        format!("{}xy", "a.".repeat(126)), // 254 bytes
    ]
}

#[test]
fn one_rule_for_garbage_hosts() {
    let mut rt = runtime(BACKENDS[0]);
    let numeric = LookupHints {
        flags: libc::AI_NUMERICHOST,
        ..LookupHints::default()
    };
    for host in garbage_hosts() {
        assert_eq!(
            rt.getaddrinfo(Some(&host), None, numeric, 1),
            Err(Status::InvalidArgument),
            "{host:?}"
        );
        assert_eq!(
            rt.tcp_connect(&host, 80, 1),
            Err(Status::InvalidArgument),
            "{host:?}"
        );
        assert_eq!(
            rt.tcp_listen(&host, 0, ListenOptions::default())
                .map(|_| ()),
            Err(Status::InvalidArgument),
            "{host:?}"
        );
    }
    assert_eq!(
        rt.getaddrinfo(None, None, numeric, 1),
        Err(Status::InvalidArgument)
    );
    assert_eq!(
        rt.getaddrinfo(Some("localhost"), Some("8\u{0}0"), numeric, 1),
        Err(Status::InvalidArgument)
    );
    // A submit that fails posts nothing.
    assert_eq!(rt.stats().in_flight, 0);
    let mut out = Vec::new();
    assert_eq!(rt.turn(&mut out, 16), 0);

    // The longest name is accepted (and, asked numerically, not found): 253 bytes, or 254
    // with the root's trailing dot; labels of 63.
    let longest = format!("{}.{}", "b".repeat(63), "a.".repeat(93) + "xyz");
    assert_eq!(longest.len(), MAX_HOST_LEN);
    let mut r = Reaper::new();
    for (i, host) in [longest.clone(), format!("{longest}.")].iter().enumerate() {
        rt.getaddrinfo(Some(host), None, numeric, 10 + i as u64)
            .unwrap();
        assert_eq!(
            r.wait(&mut rt, 10 + i as u64).status(),
            Status::NameNotResolved
        );
    }
}

#[test]
fn listen_takes_literals_and_localhost_without_a_lookup() {
    let mut rt = runtime(BACKENDS[0]);
    for (host, ip) in [
        ("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ("LOCALHOST", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ("127.0.0.1", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ("::1", IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ("[::1]", IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ] {
        let l = rt.tcp_listen(host, 0, ListenOptions::default()).unwrap();
        assert_eq!(rt.local_addr(l).unwrap().ip(), ip, "{host}");
        rt.close(l).unwrap();
    }
    // Names are refused at once, even ones the system would resolve: no lookup blocks.
    let mut rt = runtime(BACKENDS[0]);
    rt.set_resolver(Arc::new(Stall::new(Duration::from_secs(60))));
    for host in ["example.com", "localhost.localdomain", "ip6-localhost"] {
        assert_eq!(
            rt.tcp_listen(host, 0, ListenOptions::default()).map(|_| ()),
            Err(Status::InvalidArgument),
            "{host}"
        );
    }
}

/// A resolver that answers nothing for `hold` (ignoring abandonment, as a blocked
/// getaddrinfo does) or, if it is `ZERO`, until the lookup is abandoned.
struct Stall {
    hold: Duration,
    started: AtomicUsize,
    abandoned: AtomicUsize,
}

impl Stall {
    fn new(hold: Duration) -> Stall {
        Stall {
            hold,
            started: AtomicUsize::new(0),
            abandoned: AtomicUsize::new(0),
        }
    }
}

impl Resolve for Stall {
    fn resolve(&self, q: &Query) -> Result<Vec<AddrInfo>, Status> {
        self.started.fetch_add(1, Ordering::SeqCst);
        if self.hold.is_zero() {
            let start = Instant::now();
            while !q.abandoned() && start.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.abandoned.fetch_add(1, Ordering::SeqCst);
        } else {
            std::thread::sleep(self.hold);
        }
        Err(Status::NameTryAgain)
    }
}

#[test]
fn cancel_and_deadline_end_a_lookup_that_never_answers() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let stall = Arc::new(Stall::new(Duration::ZERO));
        rt.set_resolver(stall.clone());
        let mut r = Reaper::new();
        rt.getaddrinfo(Some("slow.test"), Some("80"), stream_hints(), 1)
            .unwrap();
        rt.getaddrinfo(Some("slow.test"), Some("80"), stream_hints(), 2)
            .unwrap();
        rt.tcp_connect("slow.test", 80, 3).unwrap();
        rt.cancel(1).unwrap();
        rt.deadline(2, 20).unwrap();
        rt.deadline(3, 20).unwrap();
        let c = r.wait(&mut rt, 1);
        assert_eq!((c.op, c.status()), (OpCode::Lookup, Status::Canceled));
        let c = r.wait(&mut rt, 2);
        assert_eq!((c.op, c.status()), (OpCode::Lookup, Status::TimedOut));
        let c = r.wait(&mut rt, 3);
        assert_eq!((c.op, c.status()), (OpCode::Connect, Status::TimedOut));
        assert_eq!(rt.stats().in_flight, 0);
        // The resolver sees each lookup abandoned (none was waited for).
        let start = Instant::now();
        while stall.abandoned.load(Ordering::SeqCst) < stall.started.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Issue 9, hole 2: with lookups pending on a resolver that takes 3 s, shutdown and free
/// return at once and every op completes once, `Canceled`.
#[test]
fn shutdown_and_free_do_not_wait_for_lookups() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.set_resolver(Arc::new(Stall::new(Duration::from_secs(3))));
        for ud in 0..100 {
            rt.tcp_connect("slow.test", 80, ud).unwrap();
            rt.getaddrinfo(Some("slow.test"), None, stream_hints(), 1000 + ud)
                .unwrap();
        }
        let mut out = Vec::new();
        rt.turn(&mut out, 1024);
        assert!(out.is_empty(), "{out:?}");
        let start = Instant::now();
        rt.shutdown_all();
        let mut out: Vec<Completion> = Vec::new();
        while rt.turn(&mut out, 1024) > 0 {}
        let mut seen = HashSet::new();
        for c in &out {
            assert_eq!(c.status(), Status::Canceled, "{c:?}");
            let want = if c.user_data < 1000 {
                OpCode::Connect
            } else {
                OpCode::Lookup
            };
            assert_eq!(c.op, want);
            assert!(seen.insert(c.user_data), "two completions: {c:?}");
        }
        assert_eq!(seen.len(), 200);
        drop(rt);
        // A generous guard: the resolver holds each call 3 s.
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );

        // Freeing without a shutdown first does not wait either.
        let mut rt = runtime(backend);
        rt.set_resolver(Arc::new(Stall::new(Duration::from_secs(3))));
        for ud in 0..100 {
            rt.tcp_connect("slow.test", 80, ud).unwrap();
        }
        let start = Instant::now();
        drop(rt);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
}

/// Supplies fixed addresses for every name, as a hosts file giving `localhost` both
/// loopbacks would.
struct Fixed(Vec<IpAddr>);

impl Resolve for Fixed {
    fn resolve(&self, q: &Query) -> Result<Vec<AddrInfo>, Status> {
        let port = q
            .service
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(self
            .0
            .iter()
            .map(|ip| AddrInfo {
                family: if ip.is_ipv4() {
                    libc::AF_INET
                } else {
                    libc::AF_INET6
                },
                socktype: libc::SOCK_STREAM,
                protocol: libc::IPPROTO_TCP,
                addr: SocketAddr::new(*ip, port),
                canonname: None,
            })
            .collect())
    }
}

const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A listener on `ip:port` that never accepts and whose accept queue is full, so the
/// kernel drops new SYNs: a connect to it stays pending. The sockets keep it so.
fn unanswered(ip: IpAddr, port: u16) -> Option<Vec<Socket>> {
    let addr = SocketAddr::new(ip, port);
    let l = Socket::new(Domain::for_address(addr), Type::STREAM, None).ok()?;
    if ip.is_ipv6() {
        l.set_only_v6(true).ok()?;
    }
    l.bind(&addr.into()).ok()?;
    l.listen(0).ok()?;
    let addr = l.local_addr().ok()?.as_socket()?;
    let mut keep = vec![l];
    for _ in 0..4 {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).ok()?;
        s.set_nonblocking(true).ok()?;
        let _ = s.connect(&addr.into());
        keep.push(s);
    }
    Some(keep)
}

/// A listener on `ip:port` in `rt`.
fn listener(rt: &mut Runtime, ip: IpAddr, port: u16) -> Option<Handle> {
    rt.tcp_listen(&ip.to_string(), port, ListenOptions::default())
        .ok()
}

#[test]
fn happy_eyeballs_skips_a_refused_family() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.set_resolver(Arc::new(Fixed(vec![V6, V4])));
        // Only 127.0.0.1 listens: ::1 refuses, then 127.0.0.1 wins.
        let l = listener(&mut rt, V4, 0).unwrap();
        let port = rt.local_addr(l).unwrap().port();
        let mut r = Reaper::new();
        rt.accept(l, 2).unwrap();
        rt.tcp_connect("localhost", port, 1).unwrap();
        let c = r.wait(&mut rt, 1);
        assert_eq!(c.status(), Status::Ok, "{c:?}");
        assert_eq!(rt.peer_addr(c.handle).unwrap(), SocketAddr::new(V4, port));
        assert_eq!(r.wait(&mut rt, 2).status(), Status::Ok);
        assert_eq!(rt.stats().in_flight, 0);

        // Nobody listens: both refuse; the refusal is the error.
        rt.close(l).unwrap();
        rt.tcp_connect("localhost", port, 3).unwrap();
        assert_eq!(r.wait(&mut rt, 3).status(), Status::ConnectionRefused);
        assert_eq!(rt.stats().in_flight, 0);
    }
}

#[test]
fn happy_eyeballs_moves_on_from_an_unanswered_family() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.set_resolver(Arc::new(Fixed(vec![V6, V4])));
        // ::1 drops the SYN; 127.0.0.1 on the same port accepts.
        let (keep, l, port) = (0..20)
            .find_map(|_| {
                let keep = unanswered(V6, 0)?;
                let port = keep[0].local_addr().ok()?.as_socket()?.port();
                let l = listener(&mut rt, V4, port)?;
                Some((keep, l, port))
            })
            .expect("a port free on both loopbacks");
        let mut r = Reaper::new();
        rt.accept(l, 2).unwrap();
        rt.tcp_connect("localhost", port, 1).unwrap();
        let c = r.wait(&mut rt, 1);
        assert_eq!(c.status(), Status::Ok, "{c:?}");
        assert_eq!(rt.peer_addr(c.handle).unwrap(), SocketAddr::new(V4, port));
        assert_eq!(r.wait(&mut rt, 2).status(), Status::Ok);
        // The ::1 attempt was dropped with the op: nothing in flight, no timer left.
        assert_eq!(rt.stats().in_flight, 0);
        assert_eq!(rt.next_timeout(), None);
        drop(keep);

        // Without Happy Eyeballs (one address after another), the same connect waits on
        // ::1 until its deadline.
        rt.set_resolver(Arc::new(Fixed(vec![V6, V4])));
        let keep = unanswered(V6, port);
        if keep.is_some() {
            let sequential = ConnectOptions {
                attempt_delay: None,
                interleave: 0,
                family: 0,
            };
            rt.tcp_connect_with("localhost", port, sequential, 3)
                .unwrap();
            rt.deadline(3, 600).unwrap();
            assert_eq!(r.wait(&mut rt, 3).status(), Status::TimedOut);
        }
    }
}
