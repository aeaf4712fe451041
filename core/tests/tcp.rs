//! TCP: connect, listen, accept, read, write, shutdown, close, options, addresses, the
//! inline fast path, sockets taken over from the caller, on both backends.

mod common;

use common::{BACKENDS, Reaper, listen, pair, runtime};
use polyio_core::{
    FLAG_INLINE, ListenOptions, MAX_KEEPALIVE_IDLE_SECS, OpCode, ReadBuf, Runtime, Status, WriteBuf,
};

#[test]
fn echo_round_trip() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        rt.write(c, WriteBuf::from_vec(b"hello polyio".to_vec()), 1)
            .unwrap();
        rt.read(s, ReadBuf::with_capacity(64), 2).unwrap();
        let w = r.wait(&mut rt, 1);
        assert_eq!((w.op, w.result, w.handle), (OpCode::Write, 12, c));
        let rd = r.wait(&mut rt, 2);
        assert_eq!(rd.op, OpCode::Read);
        assert_eq!(rd.buf.as_deref(), Some(&b"hello polyio"[..]));
    }
}

#[test]
fn large_transfer_with_queued_writes_arrives_intact() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        let data: Vec<u8> = (0..4 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for (i, chunk) in data.chunks(256 << 10).enumerate() {
            rt.write(c, WriteBuf::from_vec(chunk.to_vec()), 100 + i as u64)
                .unwrap();
        }
        rt.shutdown(c, 99).unwrap();
        let mut got = Vec::new();
        loop {
            rt.read(s, ReadBuf::with_capacity(64 << 10), 7).unwrap();
            let rd = r.wait(&mut rt, 7);
            assert!(rd.result >= 0, "read failed: {:?}", rd.status());
            if rd.result == 0 {
                break;
            }
            got.extend_from_slice(rd.buf.as_deref().unwrap());
        }
        assert_eq!(got.len(), data.len());
        assert!(got == data, "corrupted transfer");
        for i in 0..16 {
            assert_eq!(r.wait(&mut rt, 100 + i).result, 256 << 10);
        }
        assert_eq!(r.wait(&mut rt, 99).status(), Status::Ok);
    }
}

#[test]
fn half_close_lets_the_other_side_keep_writing() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        rt.shutdown(c, 1).unwrap();
        assert_eq!(r.wait(&mut rt, 1).status(), Status::Ok);
        rt.read(s, ReadBuf::with_capacity(16), 2).unwrap();
        assert_eq!(r.wait(&mut rt, 2).result, 0, "server sees EOF");
        rt.write(s, WriteBuf::from_vec(b"still here".to_vec()), 3)
            .unwrap();
        rt.read(c, ReadBuf::with_capacity(16), 4).unwrap();
        assert_eq!(r.wait(&mut rt, 4).buf.as_deref(), Some(&b"still here"[..]));
    }
}

#[test]
fn refused_connect_reports_connection_refused() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (l, port) = listen(&mut rt);
        rt.close(l).unwrap();
        rt.tcp_connect("127.0.0.1", port, 1).unwrap();
        let c = r.wait(&mut rt, 1);
        assert_eq!(c.status(), Status::ConnectionRefused);
    }
}

#[test]
fn connect_by_name_and_ipv6_literal() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (l, port) = listen(&mut rt);
    rt.accept(l, 1).unwrap();
    rt.tcp_connect("localhost", port, 2).unwrap();
    // Every address of "localhost" is tried (::1 first on some hosts, refused here).
    assert_eq!(r.wait(&mut rt, 2).status(), Status::Ok);
    assert_eq!(r.wait(&mut rt, 1).status(), Status::Ok);
    if let Ok(l6) = rt.tcp_listen("::1", 0, ListenOptions::default()) {
        let port6 = rt.local_addr(l6).unwrap().port();
        rt.accept(l6, 3).unwrap();
        rt.tcp_connect("[::1]", port6, 4).unwrap();
        assert_eq!(r.wait(&mut rt, 4).status(), Status::Ok);
        assert_eq!(r.wait(&mut rt, 3).status(), Status::Ok);
    }
    rt.tcp_connect("no-such-host.invalid", 80, 5).unwrap();
    assert_eq!(r.wait(&mut rt, 5).status(), Status::NameNotResolved);
}

#[test]
fn bad_connect_arguments_are_refused_without_a_completion() {
    let mut rt = runtime(BACKENDS[0]);
    assert_eq!(
        rt.tcp_connect("127.0.0.1", 0, 1),
        Err(Status::InvalidArgument)
    );
    assert_eq!(rt.tcp_connect("", 80, 1), Err(Status::InvalidArgument));
    assert_eq!(rt.tcp_connect("a\0b", 80, 1), Err(Status::InvalidArgument));
    assert_eq!(rt.stats().in_flight, 0);
    let mut out = Vec::new();
    assert_eq!(rt.turn(&mut out, 16), 0);
}

#[test]
fn addresses_and_options() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, s, l) = pair(&mut rt, &mut r);
    assert_eq!(rt.peer_addr(c).unwrap(), rt.local_addr(s).unwrap());
    assert_eq!(rt.peer_addr(s).unwrap(), rt.local_addr(c).unwrap());
    assert_eq!(rt.peer_addr(l), Err(Status::NotConnected));
    rt.set_nodelay(c, true).unwrap();
    rt.set_keepalive(c, Some(std::time::Duration::from_secs(30)))
        .unwrap();
    rt.set_keepalive(c, None).unwrap();
    assert_eq!(rt.set_nodelay(l, true), Err(Status::InvalidArgument));
    assert!(rt.raw_fd(c).unwrap() >= 0);
    assert!(rt.raw_fd(l).unwrap() >= 0);
    rt.close(c).unwrap();
    assert_eq!(rt.raw_fd(c), Err(Status::BadHandle));
}

#[test]
fn reuse_port_lets_two_listeners_share_a_port() {
    let mut rt = runtime(BACKENDS[0]);
    let opts = ListenOptions {
        reuse_port: true,
        ..ListenOptions::default()
    };
    let a = rt.tcp_listen("127.0.0.1", 0, opts).unwrap();
    let port = rt.local_addr(a).unwrap().port();
    rt.tcp_listen("127.0.0.1", port, opts).unwrap();
    assert_eq!(
        rt.tcp_listen("127.0.0.1", port, ListenOptions::default()),
        Err(Status::AddressInUse)
    );
}

#[test]
fn ready_reads_and_writes_complete_inline() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        rt.write(c, WriteBuf::from_vec(vec![7; 100]), 1).unwrap();
        rt.read(s, ReadBuf::with_capacity(10), 2).unwrap();
        r.wait(&mut rt, 1);
        assert_eq!(r.wait(&mut rt, 2).result, 10);
        // 90 bytes are buffered and the reactor knows the socket is readable: the next reads
        // complete during the submit call.
        let before = rt.stats().inline_completions;
        for i in 0..9 {
            rt.read(s, ReadBuf::with_capacity(10), 10 + i).unwrap();
            let rd = r.wait(&mut rt, 10 + i);
            assert_eq!(rd.result, 10);
            assert_ne!(rd.flags & FLAG_INLINE, 0, "read {i} was not inline");
        }
        assert!(rt.stats().inline_completions >= before + 9);
        // The socket is known writable now, so a write completes inline too.
        rt.write(c, WriteBuf::from_vec(vec![1; 10]), 30).unwrap();
        assert_ne!(r.wait(&mut rt, 30).flags & FLAG_INLINE, 0);
    }
}

#[test]
fn queued_accepts_complete_in_order() {
    let mut rt = runtime(BACKENDS[0]);
    let (l, port) = listen(&mut rt);
    for i in 0..5 {
        rt.accept(l, 100 + i).unwrap();
    }
    for i in 0..5 {
        rt.tcp_connect("127.0.0.1", port, 200 + i).unwrap();
    }
    let mut out = Vec::new();
    while out
        .iter()
        .filter(|c: &&polyio_core::Completion| c.op == OpCode::Accept)
        .count()
        < 5
    {
        rt.reap(&mut out, 64, Some(std::time::Duration::from_secs(5)));
    }
    let accepts: Vec<u64> = out
        .iter()
        .filter(|c| c.op == OpCode::Accept)
        .map(|c| c.user_data)
        .collect();
    assert_eq!(accepts, vec![100, 101, 102, 103, 104]);
}

#[test]
fn writes_to_a_reset_peer_fail_with_a_status_not_a_signal() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, s, _) = pair(&mut rt, &mut r);
    rt.close(s).unwrap();
    let mut failed = None;
    for i in 0..64 {
        rt.write(c, WriteBuf::from_vec(vec![0; 64 << 10]), 1000 + i)
            .unwrap();
        let w = r.wait(&mut rt, 1000 + i);
        if w.result < 0 {
            failed = Some(w.status());
            break;
        }
    }
    let s = failed.expect("writes to a closed peer must fail");
    assert!(
        matches!(s, Status::BrokenPipe | Status::ConnectionReset),
        "{s:?}"
    );
}

#[test]
fn drain_takes_inline_completions_without_a_turn() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        rt.write(c, WriteBuf::from_vec(vec![7; 100]), 1).unwrap();
        rt.read(s, ReadBuf::with_capacity(10), 2).unwrap();
        r.wait(&mut rt, 1);
        r.wait(&mut rt, 2);
        let turns = rt.stats().turns;
        rt.read(s, ReadBuf::with_capacity(10), 3).unwrap();
        let mut out = Vec::new();
        assert_eq!(rt.drain(&mut out, 8), 1);
        assert_eq!((out[0].user_data, out[0].result), (3, 10));
        assert_ne!(out[0].flags & FLAG_INLINE, 0);
        assert_eq!(rt.stats().turns, turns, "drain must not run a turn");
        assert_eq!(rt.drain(&mut out, 8), 0);
    }
}

#[test]
fn inline_completions_cannot_starve_other_sockets() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (a_client, a, _) = pair(&mut rt, &mut r);
        let (b_client, b, _) = pair(&mut rt, &mut r);
        // `a` has far more buffered than we will read: its reads always complete inline, so
        // a completion is always waiting when the consumer turns.
        rt.write(a_client, WriteBuf::from_vec(vec![1; 256 << 10]), 1)
            .unwrap();
        rt.read(a, ReadBuf::with_capacity(16), 2).unwrap();
        r.wait(&mut rt, 2);
        rt.read(b, ReadBuf::with_capacity(16), 3).unwrap();
        rt.write(b_client, WriteBuf::from_vec(b"for b".to_vec()), 4)
            .unwrap();
        let mut seen = Vec::new();
        for i in 0..500u64 {
            rt.read(a, ReadBuf::with_capacity(16), 100 + i).unwrap();
            let mut out = Vec::new();
            rt.turn(&mut out, 1);
            seen.extend(out.iter().map(|c| c.user_data));
            if seen.contains(&3) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            seen.contains(&3),
            "b's read never completed while a's reads kept completing inline"
        );
    }
}

#[test]
fn ipv6_only_lets_v4_and_v6_listeners_share_a_port() {
    let mut rt = runtime(BACKENDS[0]);
    let v4 = rt
        .tcp_listen("0.0.0.0", 0, ListenOptions::default())
        .unwrap();
    let port = rt.local_addr(v4).unwrap().port();
    let opts = ListenOptions {
        ipv6_only: true,
        ..ListenOptions::default()
    };
    match rt.tcp_listen("::", port, opts) {
        Ok(v6) => assert_eq!(rt.local_addr(v6).unwrap().port(), port),
        // No IPv6 on this machine.
        Err(s) => assert_ne!(s, Status::AddressInUse),
    }
    // Ignored for IPv4.
    rt.tcp_listen("127.0.0.1", 0, opts).unwrap();
}

#[test]
fn pending_writes_counts_what_the_kernel_has_not_taken() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, _s, _l) = pair(&mut rt, &mut r);
    rt.write(c, WriteBuf::from_vec(b"small".to_vec()), 10)
        .unwrap();
    assert_eq!(rt.pending_writes(c), 0); // completed inline
    assert_eq!(r.wait(&mut rt, 10).result, 5);
    // The peer does not read: a large write stays queued.
    rt.write(c, WriteBuf::from_vec(vec![7; 64 << 20]), 11)
        .unwrap();
    assert_eq!(rt.pending_writes(c), 1);
    rt.close(c).unwrap();
    assert_eq!(rt.pending_writes(c), 0); // stale handle
    assert_eq!(r.wait(&mut rt, 11).status(), Status::Canceled);
}

#[test]
fn unsent_bytes_counts_what_the_kernel_has_not_taken_of_queued_writes() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, s, _l) = pair(&mut rt, &mut r);
    rt.write(c, WriteBuf::from_vec(b"small".to_vec()), 10)
        .unwrap();
    assert_eq!(rt.unsent_bytes(c), 0); // completed inline
    assert_eq!(r.wait(&mut rt, 10).result, 5);
    // The peer does not read: the kernel takes part of a large write, the rest stays queued.
    let big = 64 << 20;
    rt.write(c, WriteBuf::from_vec(vec![7; big]), 11).unwrap();
    rt.write(c, WriteBuf::from_vec(vec![8; 1000]), 12).unwrap();
    let unsent = rt.unsent_bytes(c);
    assert!(unsent > 1000 && unsent < big + 1000, "{unsent}");
    // The peer reads 1 MiB: the kernel takes that much more of the queued write.
    let mut got = 0;
    while got < 1 << 20 {
        rt.read(s, ReadBuf::with_capacity((1 << 20) - got), 13)
            .unwrap();
        got += r.wait(&mut rt, 13).result as usize;
    }
    let mut later = rt.unsent_bytes(c);
    for _ in 0..1000 {
        if later < unsent {
            break;
        }
        let mut out = Vec::new();
        rt.reap(&mut out, 64, Some(std::time::Duration::from_millis(10)));
        r.backlog.extend(out);
        later = rt.unsent_bytes(c);
    }
    assert!(
        later < unsent,
        "{later} after the peer read, {unsent} before"
    );
    rt.close(c).unwrap();
    assert_eq!(rt.unsent_bytes(c), 0); // stale handle
}

#[test]
fn try_write_sends_now_without_a_completion_and_never_overtakes_a_queued_write() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _l) = pair(&mut rt, &mut r);
        // Writability is known once a write has gone through the queue (or a turn ran).
        rt.write(c, WriteBuf::from_vec(b"first ".to_vec()), 1)
            .unwrap();
        r.wait(&mut rt, 1);
        let before = rt.stats();
        assert_eq!(rt.try_write(c, &[b"sec", b"", b"ond"]).unwrap(), 6);
        assert_eq!(rt.try_write(c, &[]).unwrap(), 0);
        assert_eq!(rt.stats().completions, before.completions, "no completion");
        assert_eq!(rt.stats().in_flight, before.in_flight, "no operation");
        // The peer does not read: a large write stays queued, and try_write must not jump it.
        rt.write(c, WriteBuf::from_vec(vec![b'x'; 64 << 20]), 2)
            .unwrap();
        assert_eq!(rt.pending_writes(c), 1);
        assert_eq!(rt.try_write(c, &[b"late"]).unwrap(), 0);
        rt.read(s, ReadBuf::with_capacity(12), 3).unwrap();
        assert_eq!(
            r.wait(&mut rt, 3).buf.as_deref(),
            Some(&b"first second"[..])
        );
        rt.close(c).unwrap();
        assert_eq!(r.wait(&mut rt, 2).status(), Status::Canceled);
        assert_eq!(rt.try_write(c, &[b"x"]), Err(Status::BadHandle));
    }
}

#[test]
fn try_write_to_a_reset_peer_fails_with_a_status() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, s, _l) = pair(&mut rt, &mut r);
    rt.write(c, WriteBuf::from_vec(b"x".to_vec()), 1).unwrap();
    r.wait(&mut rt, 1);
    rt.close(s).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut failed = None;
    for _ in 0..256 {
        match rt.try_write(c, &[&chunk]) {
            Ok(_) => {
                let mut out = Vec::new();
                rt.turn(&mut out, 8);
            }
            Err(s) => {
                failed = Some(s);
                break;
            }
        }
    }
    let s = failed.expect("try_write to a closed peer must fail");
    assert!(
        matches!(s, Status::BrokenPipe | Status::ConnectionReset),
        "{s:?}"
    );
}

#[test]
fn keepalive_idle_is_whole_seconds_from_1_to_32767() {
    use std::time::Duration;
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, _s, _l) = pair(&mut rt, &mut r);
    let idle = |rt: &Runtime| {
        let fd = rt.raw_fd(c).unwrap();
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: reads one c_int option of an open socket into a live local.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_KEEPIDLE,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0);
        v
    };
    rt.set_keepalive(c, Some(Duration::from_secs(1))).unwrap();
    assert_eq!(idle(&rt), 1);
    rt.set_keepalive(c, Some(Duration::from_secs(MAX_KEEPALIVE_IDLE_SECS)))
        .unwrap();
    assert_eq!(idle(&rt), 32_767);
    for bad in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(MAX_KEEPALIVE_IDLE_SECS + 1),
        Duration::from_secs(u64::MAX),
    ] {
        assert_eq!(
            rt.set_keepalive(c, Some(bad)),
            Err(Status::InvalidArgument),
            "{bad:?}"
        );
        assert_eq!(idle(&rt), 32_767, "a refused idle time changes nothing");
    }
    rt.set_keepalive(c, Some(Duration::from_millis(1500)))
        .unwrap();
    assert_eq!(idle(&rt), 1, "a fraction of a second is dropped");
}

#[test]
fn adopted_sockets_serve_as_connections_and_listeners() {
    use std::io::{Read, Write};
    use std::os::fd::OwnedFd;
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        // A listener the caller bound, then a connection the caller connected to it.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let l = rt.adopt_listener(OwnedFd::from(std_listener)).unwrap();
        assert_eq!(rt.local_addr(l).unwrap().port(), port);
        rt.accept(l, 1).unwrap();
        let std_client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let a = r.wait(&mut rt, 1);
        assert_eq!(a.status(), Status::Ok);
        let c = rt.adopt_stream(OwnedFd::from(std_client)).unwrap();
        rt.write(c, WriteBuf::from_vec(b"adopted".to_vec()), 2)
            .unwrap();
        rt.read(a.handle, ReadBuf::with_capacity(64), 3).unwrap();
        assert_eq!(r.wait(&mut rt, 2).result, 7);
        assert_eq!(r.wait(&mut rt, 3).buf.as_deref(), Some(&b"adopted"[..]));
        // A plain socket pair: the other end is not the runtime's.
        let (mine, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let u = rt.adopt_stream(OwnedFd::from(mine)).unwrap();
        theirs.write_all(b"unix").unwrap();
        rt.read(u, ReadBuf::with_capacity(64), 4).unwrap();
        assert_eq!(r.wait(&mut rt, 4).buf.as_deref(), Some(&b"unix"[..]));
        rt.close(u).unwrap();
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).unwrap(); // closing the handle closed the fd
        assert!(rest.is_empty());
    }
}

#[test]
fn adopting_a_socket_of_the_wrong_kind_is_refused() {
    use std::os::fd::OwnedFd;
    let mut rt = runtime(BACKENDS[0]);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        rt.adopt_stream(OwnedFd::from(udp)),
        Err(Status::InvalidArgument)
    );
    let unconnected = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None);
    let unconnected = OwnedFd::from(unconnected.unwrap());
    assert_eq!(rt.adopt_stream(unconnected), Err(Status::NotConnected));
    let not_listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let s = std::net::TcpStream::connect(not_listening.local_addr().unwrap()).unwrap();
    assert_eq!(
        rt.adopt_listener(OwnedFd::from(s)),
        Err(Status::InvalidArgument)
    );
}
