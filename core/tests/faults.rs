//! Faults from outside, one per test, on both backends: a peer that resets in the middle of
//! a write, one that half-closes and vanishes, one that accepts and never reads, one that
//! trickles a byte at a time, tiny socket buffers, and in child processes: running out of
//! file descriptors (`EMFILE`), sends the kernel refuses (`ENOBUFS`, `ENOMEM`, forced by
//! `tests/faults/inject.c` under LD_PRELOAD) and a caller that closes the backend fd under
//! the runtime. Each ends in the status docs/reliability.md lists, and afterwards the
//! runtime still echoes on a connection it had before the fault.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{BACKENDS, Reaper, listen, pair, runtime};
use polyio_core::{Backend, FLAG_PARTIAL, Handle, ReadBuf, Runtime, Status, UdpOptions, WriteBuf};

/// Echoes `n` bytes from `a` to `b` and back through the runtime: it still serves.
fn still_serves(rt: &mut Runtime, r: &mut Reaper, a: Handle, b: Handle) {
    let msg: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    rt.write(a, WriteBuf::from_vec(msg.clone()), 71).unwrap();
    let mut got = Vec::new();
    let mut ud = 72;
    while got.len() < msg.len() {
        rt.read(b, ReadBuf::with_capacity(8192), ud).unwrap();
        let c = r.wait(rt, ud);
        assert!(c.result > 0, "{c:?}");
        got.extend_from_slice(c.buf.as_deref().unwrap());
        ud += 1;
    }
    assert_eq!(r.wait(rt, 71).result, msg.len() as i64);
    assert_eq!(got, msg);
}

fn set_int(fd: i32, level: i32, name: i32, value: i32) {
    // SAFETY: a valid socket and an int option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Closing `s` sends a reset instead of a FIN.
fn reset_on_close(s: &TcpStream) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// A polyio connection to an outside peer: (polyio's handle, the peer's socket).
fn outside_peer(rt: &mut Runtime, r: &mut Reaper) -> (Handle, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    rt.tcp_connect("127.0.0.1", port, 61).unwrap();
    let (s, _) = l.accept().unwrap();
    let c = r.wait(rt, 61);
    assert_eq!(c.status(), Status::Ok, "{c:?}");
    (c.handle, s)
}

#[test]
fn peer_resets_in_the_middle_of_a_write() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (a, b, _) = pair(&mut rt, &mut r);
        let (h, peer) = outside_peer(&mut rt, &mut r);
        let len = 8 << 20;
        rt.write(h, WriteBuf::from_vec(vec![1; len]), 1).unwrap();
        // Let some of it reach the peer, then reset.
        let mut peer = peer;
        let mut buf = vec![0u8; 64 << 10];
        let n = peer.read(&mut buf).unwrap();
        assert!(n > 0);
        reset_on_close(&peer);
        drop(peer);
        let c = r.wait(&mut rt, 1);
        assert!(
            matches!(c.status(), Status::ConnectionReset | Status::BrokenPipe),
            "{backend:?}: {c:?}"
        );
        assert!(c.flags & FLAG_PARTIAL != 0 && c.partial > 0, "{c:?}");
        assert!((c.partial as usize) < len, "{c:?}");
        // Later calls on the dead connection fail with an error, not a hang.
        rt.read(h, ReadBuf::with_capacity(16), 2).unwrap();
        let c = r.wait(&mut rt, 2);
        assert!(c.result <= 0, "{backend:?}: {c:?}");
        rt.close(h).unwrap();
        still_serves(&mut rt, &mut r, a, b);
    }
}

#[test]
fn peer_half_closes_then_vanishes() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (a, b, _) = pair(&mut rt, &mut r);
        let (h, mut peer) = outside_peer(&mut rt, &mut r);
        peer.write_all(b"last words").unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let mut ud = 10;
        loop {
            rt.read(h, ReadBuf::with_capacity(64), ud).unwrap();
            let c = r.wait(&mut rt, ud);
            ud += 1;
            assert!(c.result >= 0, "{c:?}");
            if c.result == 0 {
                break;
            }
            got.extend_from_slice(c.buf.as_deref().unwrap());
        }
        assert_eq!(got, b"last words");
        // Half-closed: our direction still works.
        rt.write(h, WriteBuf::from_vec(b"reply".to_vec()), 30)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 30).result, 5);
        let mut buf = [0u8; 5];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"reply");
        // Then it vanishes (with a reset): writes end in an error, never a hang.
        reset_on_close(&peer);
        drop(peer);
        let mut last = Status::Ok;
        for i in 0..64 {
            rt.write(h, WriteBuf::from_vec(vec![2; 64 << 10]), 100 + i)
                .unwrap();
            let c = r.wait(&mut rt, 100 + i);
            last = c.status();
            if c.result < 0 {
                break;
            }
        }
        assert!(
            matches!(last, Status::ConnectionReset | Status::BrokenPipe),
            "{backend:?}: {last:?}"
        );
        rt.close(h).unwrap();
        still_serves(&mut rt, &mut r, a, b);
    }
}

#[test]
fn peer_accepts_and_never_reads() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (a, b, _) = pair(&mut rt, &mut r);
        let (h, _peer) = outside_peer(&mut rt, &mut r);
        // More than the kernel buffers on both sides: the write stays pending.
        let len = 32 << 20;
        rt.write(h, WriteBuf::from_vec(vec![3; len]), 1).unwrap();
        rt.write(h, WriteBuf::from_vec(vec![3; 10]), 2).unwrap();
        // The runtime keeps serving while it waits.
        still_serves(&mut rt, &mut r, a, b);
        assert_eq!(rt.pending_writes(h), 2);
        rt.deadline(1, 0).unwrap();
        let c = r.wait(&mut rt, 1);
        assert_eq!(c.status(), Status::TimedOut, "{backend:?}: {c:?}");
        assert!(c.flags & FLAG_PARTIAL != 0, "{c:?}");
        assert!(c.partial > 0 && (c.partial as usize) < len, "{c:?}");
        // The write queued behind it stays queued (the stream now has a gap: close it);
        // closing the connection cancels it.
        assert_eq!(rt.pending_writes(h), 1);
        rt.close(h).unwrap();
        let c = r.wait(&mut rt, 2);
        assert_eq!(c.status(), Status::Canceled, "{backend:?}: {c:?}");
        still_serves(&mut rt, &mut r, a, b);
    }
}

#[test]
fn peer_trickles_a_byte_at_a_time() {
    // 8 bytes 150 ms apart (POLYIO_TRICKLE_MS=1000: one a second, as a slow attacker).
    let gap = std::env::var("POLYIO_TRICKLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (a, b, _) = pair(&mut rt, &mut r);
        let (h, mut peer) = outside_peer(&mut rt, &mut r);
        // Before the first byte: a read with a deadline ends TIMED_OUT and takes nothing.
        rt.read(h, ReadBuf::with_capacity(64), 1).unwrap();
        rt.deadline(1, 20).unwrap();
        let c = r.wait(&mut rt, 1);
        assert_eq!(c.status(), Status::TimedOut, "{backend:?}: {c:?}");
        let msg = b"trickle!";
        let (go, started) = std::sync::mpsc::channel::<()>();
        let trickler = std::thread::spawn(move || {
            started.recv().unwrap();
            for &byte in msg {
                std::thread::sleep(Duration::from_millis(gap));
                peer.write_all(&[byte]).unwrap();
            }
            peer
        });
        go.send(()).unwrap();
        // Reads complete with what arrived; every other one has a short deadline, which ends
        // it TIMED_OUT between bytes (or it takes a byte first). The pair keeps echoing.
        let mut got = Vec::new();
        let (mut ud, mut timeouts) = (10, 0);
        while got.len() < msg.len() {
            rt.read(h, ReadBuf::with_capacity(64), ud).unwrap();
            if ud % 2 == 0 {
                // Err: the read already completed (bytes were waiting).
                let _ = rt.deadline(ud, 5);
            }
            still_serves(&mut rt, &mut r, a, b);
            let c = r.wait(&mut rt, ud);
            match c.status() {
                Status::TimedOut => timeouts += 1,
                _ => {
                    assert!(c.result > 0, "{backend:?}: {c:?}");
                    got.extend_from_slice(c.buf.as_deref().unwrap());
                }
            }
            ud += 1;
        }
        assert_eq!(got, msg, "{backend:?}: every byte, in order");
        println!("{backend:?}: {} reads, {timeouts} timed out", ud - 10);
        let _peer = trickler.join().unwrap();
        still_serves(&mut rt, &mut r, a, b);
    }
}

#[test]
fn tiny_socket_buffers_lose_no_byte() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (a, b, _) = pair(&mut rt, &mut r);
        // The smallest send buffers Linux allows (it rounds 1 up to its minimum), and small
        // receive buffers (at the minimum, loopback's 64 KiB MSS leaves the window below one
        // segment and every few KiB waits for the persist timer: correct, but slow to test).
        for h in [a, b] {
            rt.set_nodelay(h, true).unwrap();
            let fd = rt.raw_fd(h).unwrap();
            set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 1);
            set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 16 << 10);
        }
        let msg: Vec<u8> = (0..(512u32 << 10)).map(|i| (i % 251) as u8).collect();
        rt.write(a, WriteBuf::from_vec(msg.clone()), 1).unwrap();
        let mut got = Vec::new();
        let mut ud = 2;
        while got.len() < msg.len() {
            rt.read(b, ReadBuf::with_capacity(1 << 16), ud).unwrap();
            let c = r.wait(&mut rt, ud);
            assert!(c.result > 0, "{c:?}");
            got.extend_from_slice(c.buf.as_deref().unwrap());
            ud += 1;
        }
        assert_eq!(r.wait(&mut rt, 1).result, msg.len() as i64);
        assert!(got == msg, "{backend:?}: bytes differ");
        still_serves(&mut rt, &mut r, b, a);
    }
}

/// Set in the environment of the child processes the EMFILE and backend-fd tests run in.
const CHILD: &str = "POLYIO_FAULTS_CHILD";
/// How the backend-fd child waits after the close: `poll` (reaps with a timeout: a poll on
/// the backend fd), `park` (reaps without one: parked in tokio's driver on the epoll
/// backend) or `turn` (turns only: tokio's driver polled with a zero timeout).
const WAIT: &str = "POLYIO_FAULTS_WAIT";

/// Runs test `name` of this binary in a child process with `CHILD=backend` and `envs`;
/// returns its output after checking it passed.
fn in_child(name: &str, backend: Backend, envs: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.envs(envs.iter().copied());
    let mut child = cmd
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{backend:?}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A hang is a failure too: give it 60 s.
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{name} {backend:?} in a child: {text}"
    );
    text
}

/// The backend this process is the child for, if it is one.
fn child_backend() -> Option<Backend> {
    match std::env::var(CHILD).ok()?.as_str() {
        "Epoll" => Some(Backend::Epoll),
        _ => Some(Backend::Thread),
    }
}

#[test]
fn emfile_fails_accepts_and_connects_then_recovers() {
    for backend in BACKENDS {
        let text = in_child("emfile_child", backend, &[]);
        assert!(text.contains("emfile child done"), "{text}");
        assert!(text.contains("connect under EMFILE"), "{text}");
    }
}

/// In a child: runs out of descriptors, sees accept and connect fail with
/// `TooManyOpenFiles`, frees some, and serves again.
#[test]
fn emfile_child() {
    let Some(backend) = child_backend() else {
        return;
    };
    let mut rt = runtime(backend);
    let mut r = Reaper::new();
    let (a, b, _) = pair(&mut rt, &mut r);
    let (l, port) = listen(&mut rt);
    // A client made before the limit: its connection waits in the backlog.
    let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Fill the table up to a low limit.
    let mut hog = Vec::new();
    let lim = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 256,
    };
    // SAFETY: a valid rlimit struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    rt.accept(l, 1).unwrap();
    let c = r.wait(&mut rt, 1);
    assert_eq!(c.status(), Status::TooManyOpenFiles, "accept: {c:?}");
    match rt.tcp_connect("127.0.0.1", port, 2) {
        Err(e) => {
            assert_eq!(e, Status::TooManyOpenFiles, "connect refused");
            println!("connect under EMFILE: refused at submission");
        }
        Ok(()) => {
            let c = r.wait(&mut rt, 2);
            assert_eq!(c.status(), Status::TooManyOpenFiles, "connect: {c:?}");
            println!("connect under EMFILE: completed with {:?}", c.status());
        }
    }
    still_serves(&mut rt, &mut r, a, b);
    // Descriptors back: the waiting connection is accepted.
    hog.truncate(hog.len().saturating_sub(16));
    rt.accept(l, 3).unwrap();
    let c = r.wait(&mut rt, 3);
    assert_eq!(c.status(), Status::Ok, "accept after: {c:?}");
    still_serves(&mut rt, &mut r, a, b);
    println!("emfile child done");
}

/// The send-error interposer (`tests/faults/inject.c`): `POLYIO_INJECT_SO` if set (the
/// Makefile builds it), else built here with `cc`.
fn inject_library() -> PathBuf {
    if let Some(so) = std::env::var_os("POLYIO_INJECT_SO") {
        return PathBuf::from(so);
    }
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/faults/inject.c");
    let so = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("libpolyio_inject.so");
    let status = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(src)
        .arg("-ldl")
        .status()
        .expect("cc");
    assert!(status.success(), "building {src}");
    so
}

#[test]
fn send_errors_end_in_their_status() {
    let so = inject_library();
    for backend in BACKENDS {
        for errno in ["ENOBUFS", "ENOMEM"] {
            // A port for the child's peers, free a moment ago (TCP and UDP each).
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
                .to_string();
            let text = in_child(
                "send_error_child",
                backend,
                &[
                    ("LD_PRELOAD", so.to_str().unwrap()),
                    ("POLYIO_INJECT_ERRNO", errno),
                    ("POLYIO_INJECT_PORT", &port),
                    ("POLYIO_INJECT_COUNT", "6"),
                ],
            );
            assert!(text.contains("send error child done"), "{text}");
            let injected = text.lines().filter(|l| l.starts_with("inject: ")).count();
            assert_eq!(injected, 6, "{backend:?} {errno}: {text}");
        }
    }
}

/// In a child under the interposer: sends to `POLYIO_INJECT_PORT` fail with
/// `POLYIO_INJECT_ERRNO` for the first 6 calls. Three TCP writes and three UDP sends each
/// complete once with that status and send nothing; then both sockets send again, and the
/// pair made before keeps echoing.
#[test]
fn send_error_child() {
    let Some(backend) = child_backend() else {
        return;
    };
    let expect = match std::env::var("POLYIO_INJECT_ERRNO").unwrap().as_str() {
        "ENOBUFS" => Status::NoBufferSpace,
        _ => Status::NoMemory,
    };
    let port: u16 = std::env::var("POLYIO_INJECT_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let mut rt = runtime(backend);
    let mut r = Reaper::new();
    let (a, b, _) = pair(&mut rt, &mut r);
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    rt.tcp_connect("127.0.0.1", port, 1).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    let h = r.wait(&mut rt, 1).handle;
    for i in 0..3 {
        rt.write(h, WriteBuf::from_vec(vec![i; 1000]), 10 + u64::from(i))
            .unwrap();
    }
    for ud in 10..13 {
        let c = r.wait(&mut rt, ud);
        assert_eq!(c.status(), expect, "{backend:?} write: {c:?}");
        assert_eq!(c.flags & FLAG_PARTIAL, 0, "nothing was sent: {c:?}");
    }
    still_serves(&mut rt, &mut r, a, b);
    let rx = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let to = rx.local_addr().unwrap();
    let u = rt
        .udp_bind("127.0.0.1:0".parse().unwrap(), UdpOptions::default())
        .unwrap();
    for i in 0..3 {
        rt.udp_send(
            u,
            WriteBuf::from_vec(vec![i; 100]),
            Some(to),
            20 + u64::from(i),
        )
        .unwrap();
    }
    for ud in 20..23 {
        let c = r.wait(&mut rt, ud);
        assert_eq!(c.status(), expect, "{backend:?} send: {c:?}");
    }
    assert_eq!(rt.pending_writes(h), 0);
    assert_eq!(rt.udp_pending_sends(u), 0);
    // The failures are spent: both send again, and only what was sent arrives.
    rt.write(h, WriteBuf::from_vec(b"after".to_vec()), 30)
        .unwrap();
    assert_eq!(r.wait(&mut rt, 30).result, 5);
    rt.udp_send(u, WriteBuf::from_vec(b"after".to_vec()), Some(to), 31)
        .unwrap();
    assert_eq!(r.wait(&mut rt, 31).result, 5);
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = peer.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after", "the failed writes sent nothing");
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after", "the failed sends sent nothing");
    still_serves(&mut rt, &mut r, a, b);
    rt.close(h).unwrap();
    println!("send error child done");
}

#[test]
fn closing_the_backend_fd_under_the_runtime() {
    for backend in BACKENDS {
        for wait in ["poll", "park", "turn"] {
            // A turn on the thread backend does not look at the backend fd (its reactor
            // thread polls tokio's own epoll): only waits notice there.
            if wait == "turn" && backend == Backend::Thread {
                continue;
            }
            let text = in_child("backend_fd_child", backend, &[(WAIT, wait)]);
            assert!(text.contains("backend fd child done"), "{wait}: {text}");
        }
    }
}

/// In a child: a buggy caller closes the runtime's backend fd. The runtime notices at its
/// next wait on it (or, on the epoll backend, its next turn) and shuts itself down: every op
/// completes once (CANCELED, or its result if it finished first), later submissions fail
/// with SHUTDOWN, freeing it neither crashes (debug builds check I/O safety) nor hangs nor
/// leaves an fd open, and another runtime keeps serving.
#[test]
fn backend_fd_child() {
    let Some(backend) = child_backend() else {
        return;
    };
    let mut other = runtime(backend);
    let mut ro = Reaper::new();
    let (oa, ob, _) = pair(&mut other, &mut ro);
    let fds_before = open_fds();
    let mut rt = runtime(backend);
    let mut r = Reaper::new();
    let (a, b, _) = pair(&mut rt, &mut r);
    let fd = rt.backend_fd();
    // SAFETY: deliberately the bug under test: the fd belongs to the runtime.
    assert_eq!(unsafe { libc::close(fd) }, 0);
    rt.write(a, WriteBuf::from_vec(b"ping".to_vec()), 6)
        .unwrap();
    rt.read(b, ReadBuf::with_capacity(16), 7).unwrap();
    // `poll`: a timer far away, and reaps with a timeout wait in poll(2) on the backend fd,
    // where the runtime notices (POLLNVAL). `park`: a read nothing answers, and reaps
    // without a timeout park in tokio's driver (epoll backend); `turn`: turns poll it. There
    // tokio's driver panics (EBADF), drops its epoll fd while unwinding (after the runtime's
    // panic hook put /dev/null on the number) and the runtime catches the panic.
    let wait = std::env::var(WAIT).unwrap_or_default();
    if wait == "park" {
        rt.read(a, ReadBuf::with_capacity(16), 8).unwrap();
    } else {
        rt.timer(60_000, 8).unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..20 {
        let mut out = Vec::new();
        match wait.as_str() {
            "park" => rt.reap(&mut out, 16, None),
            "turn" => {
                std::thread::sleep(Duration::from_millis(10));
                rt.turn(&mut out, 16)
            }
            _ => rt.reap(&mut out, 16, Some(Duration::from_millis(50))),
        };
        for c in out {
            println!("after close: {} {:?} {}", c.user_data, c.status(), c.result);
            assert!(c.result >= 0 || c.status() == Status::Canceled, "{c:?}");
            seen.push(c.user_data);
        }
        if seen.len() == 3 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, [6, 7, 8], "each op completed once");
    assert_eq!(rt.timer(0, 9), Err(Status::Shutdown));
    assert!(rt.is_shut_down());
    drop(rt);
    assert_eq!(open_fds(), fds_before, "every fd the runtime had is closed");
    still_serves(&mut other, &mut ro, oa, ob);
    println!("backend fd child done");
}

/// The open fds of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
