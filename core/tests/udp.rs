//! UDP: datagrams with their source addresses, order from one sender, truncation, multi-shot
//! receive, cancel, deadlines, close with receives pending, connected sockets, ICMP errors,
//! IPv6 and the socket options, on both backends, against std's UdpSocket as the peer.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{BACKENDS, Reaper, runtime};
use polyio_core::{
    Completion, FLAG_MORE, FLAG_TRUNC, Handle, OpCode, ReadBuf, Runtime, Status, UdpOptions,
    WriteBuf,
};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn bind(rt: &mut Runtime) -> (Handle, SocketAddr) {
    let h = rt.udp_bind(local(), UdpOptions::default()).unwrap();
    let addr = rt.local_addr(h).unwrap();
    (h, addr)
}

fn peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind(local()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn recv(rt: &mut Runtime, r: &mut Reaper, h: Handle, cap: usize, user_data: u64) -> Completion {
    rt.udp_recv(h, ReadBuf::with_capacity(cap), user_data)
        .unwrap();
    r.wait(rt, user_data)
}

#[test]
fn a_datagram_arrives_whole_with_its_source_and_sends_reach_the_peer() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (h, addr) = bind(&mut rt);
        let (p, paddr) = peer();
        p.send_to(b"hello", addr).unwrap();
        let c = recv(&mut rt, &mut r, h, 64, 1);
        assert_eq!((c.op, c.result, c.handle), (OpCode::Recv, 5, h));
        assert_eq!(c.buf.as_deref(), Some(&b"hello"[..]));
        assert_eq!(c.addr, Some(paddr));
        assert_eq!(c.flags & FLAG_TRUNC, 0);

        rt.udp_send(h, WriteBuf::from_vec(b"back".to_vec()), Some(paddr), 2)
            .unwrap();
        let c = r.wait(&mut rt, 2);
        assert_eq!((c.op, c.result, c.addr), (OpCode::Send, 4, None));
        let mut buf = [0u8; 16];
        let (n, from) = p.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], addr));

        // An empty datagram is a datagram.
        p.send_to(b"", addr).unwrap();
        let c = recv(&mut rt, &mut r, h, 64, 3);
        assert_eq!((c.result, c.addr), (0, Some(paddr)));
    }
}

#[test]
fn datagrams_from_one_sender_complete_in_order() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (h, addr) = bind(&mut rt);
        let (p, _) = peer();
        for i in 0..50u64 {
            rt.udp_recv(h, ReadBuf::with_capacity(16), 100 + i).unwrap();
        }
        for i in 0..50u32 {
            p.send_to(&i.to_be_bytes(), addr).unwrap();
        }
        for i in 0..50u32 {
            let c = r.wait(&mut rt, 100 + u64::from(i));
            assert_eq!(c.buf.as_deref(), Some(&i.to_be_bytes()[..]));
        }
        // Queued sends go out in order.
        for i in 0..50u32 {
            let to = Some(p.local_addr().unwrap());
            rt.udp_send(h, WriteBuf::from_vec(i.to_be_bytes().to_vec()), to, 200)
                .unwrap();
        }
        for i in 0..50u32 {
            let mut buf = [0u8; 4];
            let (n, from) = p.recv_from(&mut buf).unwrap();
            assert_eq!((n, from, u32::from_be_bytes(buf)), (4, addr, i));
        }
        for _ in 0..50 {
            assert_eq!(r.wait(&mut rt, 200).result, 4);
        }
    }
}

#[test]
fn a_datagram_longer_than_the_buffer_is_cut_and_flagged() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (h, addr) = bind(&mut rt);
        let (p, paddr) = peer();
        p.send_to(b"0123456789", addr).unwrap();
        p.send_to(b"abc", addr).unwrap();
        let c = recv(&mut rt, &mut r, h, 4, 1);
        assert_eq!((c.result, c.flags & FLAG_TRUNC), (4, FLAG_TRUNC));
        assert_eq!(c.buf.as_deref(), Some(&b"0123"[..]));
        assert_eq!(c.addr, Some(paddr));
        // The rest of the long datagram is gone; the next is whole.
        let c = recv(&mut rt, &mut r, h, 4, 2);
        assert_eq!((c.result, c.flags & FLAG_TRUNC), (3, 0));
        assert_eq!(c.buf.as_deref(), Some(&b"abc"[..]));

        rt.udp_recv_multishot(h, 4, 3).unwrap();
        p.send_to(b"0123456789", addr).unwrap();
        let c = r.wait(&mut rt, 3);
        assert_eq!(c.flags & (FLAG_MORE | FLAG_TRUNC), FLAG_MORE | FLAG_TRUNC);
        assert_eq!(c.buf.as_deref(), Some(&b"0123"[..]));
    }
}

#[test]
fn multishot_receive_completes_once_per_datagram_until_cancelled() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (h, addr) = bind(&mut rt);
        let (p, paddr) = peer();
        let (p2, paddr2) = peer();
        rt.udp_recv_multishot(h, 2048, 7).unwrap();
        for i in 0..100u32 {
            let s = if i % 2 == 0 { &p } else { &p2 };
            s.send_to(&vec![i as u8; i as usize + 1], addr).unwrap();
        }
        let mut from_p = Vec::new();
        let mut from_p2 = Vec::new();
        for _ in 0..100 {
            let c = r.wait(&mut rt, 7);
            assert_eq!(c.flags & FLAG_MORE, FLAG_MORE, "{c:?}");
            let buf = c.buf.expect("a datagram's bytes");
            assert_eq!(buf.len(), c.result as usize);
            let i = buf[0] as usize;
            assert_eq!(buf, vec![i as u8; i + 1]);
            match c.addr {
                Some(a) if a == paddr => from_p.push(i),
                Some(a) if a == paddr2 => from_p2.push(i),
                a => panic!("from {a:?}"),
            }
            rt.recycle(buf);
        }
        // Each sender's datagrams in its order.
        assert_eq!(from_p, (0..100).step_by(2).collect::<Vec<_>>());
        assert_eq!(from_p2, (1..100).step_by(2).collect::<Vec<_>>());
        rt.cancel(7).unwrap();
        let c = r.wait(&mut rt, 7);
        assert_eq!((c.status(), c.flags & FLAG_MORE), (Status::Canceled, 0));
        assert_eq!(rt.cancel(7), Err(Status::NotFound));
    }
}

#[test]
fn a_cancelled_receive_takes_no_datagram() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (h, addr) = bind(&mut rt);
        let (p, _) = peer();
        rt.udp_recv(h, ReadBuf::with_capacity(16), 1).unwrap();
        rt.udp_recv(h, ReadBuf::with_capacity(16), 2).unwrap();
        rt.udp_recv(h, ReadBuf::with_capacity(16), 3).unwrap();
        rt.cancel(1).unwrap();
        rt.cancel(2).unwrap();
        assert_eq!(r.wait(&mut rt, 1).status(), Status::Canceled);
        assert_eq!(r.wait(&mut rt, 2).status(), Status::Canceled);
        p.send_to(b"x", addr).unwrap();
        let c = r.wait(&mut rt, 3);
        assert_eq!(c.buf.as_deref(), Some(&b"x"[..]));
    }
}

#[test]
fn a_deadline_ends_a_receive_with_timed_out() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (h, addr) = bind(&mut rt);
        let (p, _) = peer();
        rt.udp_recv(h, ReadBuf::with_capacity(16), 1).unwrap();
        rt.udp_recv_multishot(h, 16, 2).unwrap();
        rt.deadline(1, 10).unwrap();
        assert_eq!(r.wait(&mut rt, 1).status(), Status::TimedOut);
        // The multi-shot receive behind it now gets the datagrams.
        p.send_to(b"y", addr).unwrap();
        let c = r.wait(&mut rt, 2);
        assert_eq!(
            (c.flags & FLAG_MORE, c.buf.as_deref()),
            (FLAG_MORE, Some(&b"y"[..]))
        );
        rt.deadline(2, 0).unwrap();
        let c = r.wait(&mut rt, 2);
        assert_eq!((c.status(), c.flags & FLAG_MORE), (Status::TimedOut, 0));
    }
}

#[test]
fn closing_completes_pending_receives_with_canceled() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (h, _) = bind(&mut rt);
        rt.udp_recv(h, ReadBuf::with_capacity(16), 1).unwrap();
        rt.udp_recv_multishot(h, 16, 2).unwrap();
        rt.udp_recv(h, ReadBuf::with_capacity(16), 3).unwrap();
        rt.close(h).unwrap();
        for ud in [1, 2, 3] {
            let c = r.wait(&mut rt, ud);
            assert_eq!((c.status(), c.flags & FLAG_MORE), (Status::Canceled, 0));
        }
        assert_eq!(rt.stats().in_flight, 0);
        assert_eq!(
            rt.udp_recv(h, ReadBuf::with_capacity(1), 4),
            Err(Status::BadHandle)
        );
        assert_eq!(rt.close(h), Err(Status::BadHandle));
    }
}

#[test]
fn a_connected_socket_sends_to_its_peer_and_ignores_other_senders() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (h, addr) = bind(&mut rt);
        let (p, paddr) = peer();
        let (other, _) = peer();
        assert_eq!(rt.peer_addr(h), Err(Status::NotConnected));
        rt.udp_connect(h, Some(paddr)).unwrap();
        assert_eq!(rt.peer_addr(h), Ok(paddr));
        other.send_to(b"other", addr).unwrap();
        p.send_to(b"peer", addr).unwrap();
        let c = recv(&mut rt, &mut r, h, 16, 1);
        assert_eq!(
            (c.buf.as_deref(), c.addr),
            (Some(&b"peer"[..]), Some(paddr))
        );

        rt.udp_send(h, WriteBuf::from_vec(b"to peer".to_vec()), None, 2)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 2).result, 7);
        let mut buf = [0u8; 16];
        let (n, from) = p.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"to peer"[..], addr));
        assert_eq!(rt.udp_try_send(h, b"try", None), Ok(true));
        let (n, _) = p.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"try");

        // Port 0 names no peer: refused, and the association stays (found by the fuzzer:
        // Linux took it, then getpeername said not connected).
        let zero = SocketAddr::new(paddr.ip(), 0);
        assert_eq!(rt.udp_connect(h, Some(zero)), Err(Status::InvalidArgument));
        assert_eq!(rt.peer_addr(h), Ok(paddr));

        // The unspecified address means this host, as Linux (and Node's dgram) take it: the
        // peer reads back as loopback, and datagrams reach the peer there (found by the
        // fuzzer, whose rule expected 0.0.0.0 back).
        let any = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), paddr.port());
        rt.udp_connect(h, Some(any)).unwrap();
        assert_eq!(rt.peer_addr(h), Ok(paddr));
        assert_eq!(rt.udp_try_send(h, b"any", None), Ok(true));
        let (n, _) = p.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"any");

        // Dissolved, it needs an address again.
        rt.udp_connect(h, None).unwrap();
        assert_eq!(rt.peer_addr(h), Err(Status::NotConnected));
        rt.udp_send(h, WriteBuf::from_vec(b"x".to_vec()), None, 3)
            .unwrap();
        assert!(r.wait(&mut rt, 3).result < 0);
    }
}

#[test]
fn an_icmp_port_unreachable_reaches_a_connected_socket_as_connection_refused() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (h, _) = bind(&mut rt);
        // A port nobody listens on: bind one, note it, close it.
        let closed = peer().1;
        rt.udp_connect(h, Some(closed)).unwrap();
        rt.udp_recv(h, ReadBuf::with_capacity(16), 1).unwrap();
        rt.udp_send(h, WriteBuf::from_vec(b"ping".to_vec()), None, 2)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 2).result, 4);
        assert_eq!(r.wait(&mut rt, 1).status(), Status::ConnectionRefused);

        // A multi-shot receive reports it flagged MORE and stays armed.
        let (p, paddr) = peer();
        rt.udp_recv_multishot(h, 16, 3).unwrap();
        rt.udp_send(h, WriteBuf::from_vec(b"ping".to_vec()), None, 4)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 4).result, 4);
        let c = r.wait(&mut rt, 3);
        assert_eq!(
            (c.status(), c.flags & FLAG_MORE),
            (Status::ConnectionRefused, FLAG_MORE)
        );
        rt.udp_connect(h, Some(paddr)).unwrap();
        p.send_to(b"still here", rt.local_addr(h).unwrap()).unwrap();
        let c = r.wait(&mut rt, 3);
        assert_eq!(c.buf.as_deref(), Some(&b"still here"[..]));
        rt.close(h).unwrap();
        assert_eq!(r.wait(&mut rt, 3).status(), Status::Canceled);
    }
}

#[test]
fn ipv6_datagrams_carry_ipv6_addresses() {
    let Ok(probe) = UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    };
    probe
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let paddr = probe.local_addr().unwrap();
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let options = UdpOptions {
            ipv6_only: true,
            ..UdpOptions::default()
        };
        let h = rt.udp_bind("[::1]:0".parse().unwrap(), options).unwrap();
        let addr = rt.local_addr(h).unwrap();
        assert!(addr.is_ipv6());
        probe.send_to(b"six", addr).unwrap();
        let c = recv(&mut rt, &mut r, h, 16, 1);
        assert_eq!((c.buf.as_deref(), c.addr), (Some(&b"six"[..]), Some(paddr)));
        rt.udp_send(h, WriteBuf::from_vec(b"back".to_vec()), Some(paddr), 2)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 2).result, 4);
        let mut buf = [0u8; 8];
        assert_eq!(probe.recv_from(&mut buf).unwrap(), (4, addr));
        rt.udp_set_ttl(h, 9).unwrap();
        rt.udp_set_multicast_ttl(h, 3).unwrap();
        rt.udp_set_multicast_loop(h, false).unwrap();
    }
}

#[test]
fn options_bind_flags_and_argument_checks() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        // Two sockets share a port with SO_REUSEPORT; without it the second bind fails.
        let opts = UdpOptions {
            reuse_port: true,
            reuse_addr: true,
            ..UdpOptions::default()
        };
        let a = rt.udp_bind(local(), opts).unwrap();
        let port_addr = rt.local_addr(a).unwrap();
        let b = rt.udp_bind(port_addr, opts).unwrap();
        assert_eq!(
            rt.udp_bind(port_addr, UdpOptions::default()),
            Err(Status::AddressInUse)
        );
        rt.close(b).unwrap();

        // Broadcast needs SO_BROADCAST.
        let bcast: SocketAddr = "255.255.255.255:9".parse().unwrap();
        rt.udp_send(a, WriteBuf::from_vec(vec![1]), Some(bcast), 1)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 1).status(), Status::PermissionDenied);
        rt.udp_set_broadcast(a, true).unwrap();
        let fd = rt.raw_fd(a).unwrap();
        assert_eq!(sockopt(fd, libc::SOL_SOCKET, libc::SO_BROADCAST), 1);

        rt.udp_set_ttl(a, 17).unwrap();
        assert_eq!(sockopt(fd, libc::IPPROTO_IP, libc::IP_TTL), 17);
        assert_eq!(rt.udp_set_ttl(a, 0), Err(Status::InvalidArgument));
        assert_eq!(rt.udp_set_ttl(a, 256), Err(Status::InvalidArgument));
        rt.udp_set_multicast_ttl(a, 5).unwrap();
        assert_eq!(sockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL), 5);
        rt.udp_set_multicast_loop(a, false).unwrap();
        assert_eq!(sockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP), 0);
        let unicast = "10.0.0.1".parse().unwrap();
        assert_eq!(
            rt.udp_join_multicast(a, unicast, None),
            Err(Status::InvalidArgument)
        );
        // Joining needs a multicast route, which some sandboxes lack; when it works,
        // leaving works too.
        let group = "239.255.0.7".parse().unwrap();
        let lo = Some("127.0.0.1".parse().unwrap());
        if rt.udp_join_multicast(a, group, lo).is_ok() {
            rt.udp_leave_multicast(a, group, lo).unwrap();
        }

        // UDP ops on a stream handle and stream ops on a UDP handle are refused.
        let (l, _) = common::listen(&mut rt);
        assert_eq!(
            rt.udp_recv(l, ReadBuf::with_capacity(1), 2),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            rt.read(a, ReadBuf::with_capacity(1), 2),
            Err(Status::InvalidArgument)
        );
        assert_eq!(rt.accept(a, 2), Err(Status::InvalidArgument));
        assert_eq!(
            rt.udp_recv(a, ReadBuf::with_capacity(0), 2),
            Err(Status::InvalidArgument)
        );
        assert_eq!(rt.udp_recv_multishot(a, 0, 2), Err(Status::InvalidArgument));
        assert_eq!(rt.stats().in_flight, 0);
    }
}

#[test]
fn shutdown_cancels_udp_ops_and_refuses_new_sockets() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let (h, _) = bind(&mut rt);
        rt.udp_recv(h, ReadBuf::with_capacity(16), 1).unwrap();
        rt.udp_recv_multishot(h, 16, 2).unwrap();
        rt.shutdown_all();
        let mut out = Vec::new();
        rt.turn(&mut out, 16);
        let mut got: Vec<_> = out.iter().map(|c| (c.user_data, c.status())).collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(got, [(1, Status::Canceled), (2, Status::Canceled)]);
        assert_eq!(
            rt.udp_bind(local(), UdpOptions::default()),
            Err(Status::Shutdown)
        );
    }
}

fn sockopt(fd: i32, level: i32, name: i32) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd, and an int with its length.
    let r = unsafe { libc::getsockopt(fd, level, name, (&raw mut v).cast(), &mut len) };
    assert_eq!(r, 0);
    // IP_MULTICAST_TTL/LOOP may come back as one byte.
    if len == 1 { v & 0xff } else { v }
}
