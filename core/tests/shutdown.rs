//! Shutdown: `shutdown_all` with a thousand operations in flight, submissions afterwards,
//! and dropping runtimes with work in flight (promptly, joining threads, closing fds), on
//! both backends.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BACKENDS, Reaper, blackhole, listen, pair, runtime};
use polyio_core::{Backend, Completion, ListenOptions, OpCode, ReadBuf, Runtime, Status, WriteBuf};

/// Turns until nothing is in flight and nothing is queued.
fn drain(rt: &mut Runtime) -> Vec<Completion> {
    let mut out = Vec::new();
    let start = Instant::now();
    loop {
        let n = rt.turn(&mut out, 100);
        if n == 0 && rt.stats().in_flight == 0 && rt.next_timeout().is_none() {
            return out;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "drain stuck");
    }
}

#[test]
fn shutdown_all_cancels_a_thousand_ops_exactly_once() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (hole, _keep) = blackhole();
        let mut kinds: HashMap<u64, OpCode> = HashMap::new();
        let mut ud = 0u64;
        let mut next = |op: OpCode| {
            ud += 1;
            kinds.insert(ud, op);
            ud
        };

        // An outside peer, to see the connection closed afterwards.
        let (l0, port0) = listen(&mut rt);
        rt.accept(l0, 1_000_000).unwrap();
        let mut peer = std::net::TcpStream::connect(("127.0.0.1", port0)).unwrap();
        let sp = r.wait(&mut rt, 1_000_000).handle;

        // 500 reads: 10 on each end of 24 idle pairs, and 20 on the peer's connection.
        let mut conns = vec![sp];
        for _ in 0..24 {
            let (c, s, _) = pair(&mut rt, &mut r);
            conns.extend([c, s]);
        }
        for (i, &h) in conns.iter().enumerate() {
            let per = if i == 0 { 20 } else { 10 };
            for _ in 0..per {
                let u = next(OpCode::Read);
                rt.read(h, ReadBuf::with_capacity(16), u).unwrap();
            }
        }
        // 200 accepts nobody connects to.
        let (l, port) = listen(&mut rt);
        for _ in 0..200 {
            let u = next(OpCode::Accept);
            rt.accept(l, u).unwrap();
        }
        // 200 timers, some with deadlines of their own.
        for i in 0..200 {
            let u = next(OpCode::Timer);
            rt.timer(60_000 + i, u).unwrap();
            if i % 4 == 0 {
                rt.deadline(u, 30_000).unwrap();
            }
        }
        // 100 connects that stay in flight.
        for _ in 0..100 {
            let u = next(OpCode::Connect);
            rt.tcp_connect("127.0.0.1", hole.port(), u).unwrap();
        }
        assert_eq!(kinds.len(), 1000);
        assert_eq!(rt.stats().in_flight, 1000);
        let before = rt.stats().completions;

        rt.shutdown_all();
        assert!(rt.is_shut_down());
        assert_eq!(rt.stats().in_flight, 0);
        assert_eq!(rt.stats().completions - before, 1000);
        assert_eq!(rt.next_timeout(), Some(Duration::ZERO), "completions wait");

        let out = drain(&mut rt);
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for c in &out {
            let op = kinds
                .get(&c.user_data)
                .unwrap_or_else(|| panic!("unknown completion {c:?}"));
            assert_eq!(c.op, *op, "{c:?}");
            assert_eq!(c.status(), Status::Canceled, "{c:?}");
            *seen.entry(c.user_data).or_default() += 1;
        }
        assert_eq!(seen.len(), 1000, "{backend:?}: some op never completed");
        assert!(seen.values().all(|&n| n == 1), "an op completed twice");
        assert_eq!(rt.next_timeout(), None);

        // Connections and listeners are closed.
        let mut buf = [0u8; 8];
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(peer.read(&mut buf).unwrap(), 0, "the peer sees EOF");
        assert_eq!(
            std::net::TcpStream::connect(("127.0.0.1", port))
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        // Nothing else ever arrives.
        let mut more = Vec::new();
        assert_eq!(rt.reap(&mut more, 16, Some(Duration::from_millis(20))), 0);
        assert_eq!(rt.reap(&mut more, 16, None), 0, "nothing can complete");
    }
}

#[test]
fn submissions_after_shutdown_fail_with_shutdown_and_post_nothing() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, l) = pair(&mut rt, &mut r);
        rt.read(s, ReadBuf::with_capacity(8), 1).unwrap();
        rt.shutdown_all();
        assert_eq!(
            rt.read(c, ReadBuf::with_capacity(8), 10),
            Err(Status::Shutdown)
        );
        assert_eq!(
            rt.write(c, WriteBuf::from_vec(b"x".to_vec()), 11),
            Err(Status::Shutdown)
        );
        assert_eq!(rt.shutdown(c, 12), Err(Status::Shutdown));
        assert_eq!(rt.accept(l, 13), Err(Status::Shutdown));
        assert_eq!(rt.tcp_connect("127.0.0.1", 9, 14), Err(Status::Shutdown));
        assert_eq!(rt.timer(0, 15), Err(Status::Shutdown));
        assert_eq!(
            rt.tcp_listen("127.0.0.1", 0, ListenOptions::default()),
            Err(Status::Shutdown)
        );
        for ud in 10..=15 {
            assert_eq!(rt.cancel(ud), Err(Status::NotFound));
            assert_eq!(rt.deadline(ud, 1), Err(Status::NotFound));
        }
        // Handles were closed by the shutdown.
        assert_eq!(rt.close(c), Err(Status::BadHandle));
        assert_eq!(rt.local_addr(l), Err(Status::BadHandle));

        let out = drain(&mut rt);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].user_data, out[0].status()), (1, Status::Canceled));
        // Shutting down again changes nothing.
        rt.shutdown_all();
        assert!(drain(&mut rt).is_empty());
    }
}

#[test]
fn completions_posted_before_shutdown_survive_it() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.timer(0, 1).unwrap();
        rt.timer(60_000, 2).unwrap();
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 0), 0, "timer 1 fired, not handed out");
        rt.shutdown_all();
        let out = drain(&mut rt);
        let got: Vec<(u64, Status)> = out.iter().map(|c| (c.user_data, c.status())).collect();
        assert_eq!(got, [(1, Status::Ok), (2, Status::Canceled)]);
    }
}

// ---- dropping runtimes ------------------------------------------------------------------

fn tasks() -> Vec<(String, String)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            (
                e.file_name().to_string_lossy().into_owned(),
                comm.trim().to_owned(),
            )
        })
        .collect()
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Runs `name` alone in a child process of this test binary (so that no other test's
/// threads or fds move the counts), with `POLYIO_CHILD` set. Fails if it fails or hangs.
fn run_alone(name: &str) -> bool {
    if std::env::var_os("POLYIO_CHILD").is_some() {
        return false;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env("POLYIO_CHILD", "1")
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{name} failed in its own process");
            return true;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} hung (a drop that never returns?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A runtime with every kind of operation in flight and completions not yet reaped.
fn busy_runtime(backend: Backend, hole: SocketAddr) -> Runtime {
    let mut rt = runtime(backend);
    let mut r = Reaper::new();
    let (c, s, l) = pair(&mut rt, &mut r);
    let (l2, _) = listen(&mut rt);
    // Reads on `c`, which nobody writes to; writes from `c` to `s`, which nobody reads.
    rt.read(c, ReadBuf::with_capacity(64), 1).unwrap();
    rt.read(c, ReadBuf::with_capacity(64), 2).unwrap();
    rt.write(c, WriteBuf::from_vec(vec![5; 8 << 20]), 3)
        .unwrap();
    rt.write(c, WriteBuf::from_vec(vec![6; 64]), 4).unwrap();
    rt.shutdown(c, 5).unwrap();
    rt.accept(l, 6).unwrap();
    rt.accept(l2, 7).unwrap();
    rt.tcp_connect("127.0.0.1", hole.port(), 8).unwrap();
    rt.timer(60_000, 9).unwrap();
    rt.timer(0, 10).unwrap();
    rt.deadline(1, 60_000).unwrap();
    let mut out = Vec::new();
    rt.turn(&mut out, 0); // timer 10 fires; its completion stays queued
    assert_eq!(rt.stats().in_flight, 9, "{:?}", rt.stats());
    let _ = s;
    rt
}

#[test]
fn dropping_runtimes_with_ops_in_flight_leaks_no_threads_or_fds() {
    if run_alone("dropping_runtimes_with_ops_in_flight_leaks_no_threads_or_fds") {
        return;
    }
    let (hole, _keep) = blackhole();
    let threads_before = tasks();
    let fds_before = fd_count();
    for backend in BACKENDS {
        for _ in 0..20 {
            let rt = busy_runtime(backend, hole);
            drop(rt);
        }
    }
    // A joined thread's /proc entry can outlive its join by a moment: let it settle.
    let start = Instant::now();
    let mut threads_after = tasks();
    while threads_after.len() != threads_before.len() && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
        threads_after = tasks();
    }
    assert_eq!(
        threads_after.len(),
        threads_before.len(),
        "threads leaked: before {threads_before:?} after {threads_after:?}"
    );
    assert_eq!(fd_count(), fds_before, "fds leaked");
}

#[test]
fn the_reactor_thread_is_joined_on_drop() {
    if run_alone("the_reactor_thread_is_joined_on_drop") {
        return;
    }
    let reactors = || {
        tasks()
            .into_iter()
            .filter(|(_, comm)| comm == "polyio-reactor")
            .count()
    };
    assert_eq!(reactors(), 0);
    let (hole, _keep) = blackhole();
    let a = busy_runtime(Backend::Thread, hole);
    let b = busy_runtime(Backend::Thread, hole);
    let e = busy_runtime(Backend::Epoll, hole);
    assert_eq!(
        reactors(),
        2,
        "one reactor per Thread runtime, none for Epoll"
    );
    drop(a);
    drop(e);
    let settled = |want: usize| {
        let start = Instant::now();
        while reactors() != want && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        reactors()
    };
    assert_eq!(settled(1), 1);
    drop(b);
    assert_eq!(settled(0), 0);
}

#[test]
fn dropping_a_shut_down_runtime_and_one_never_driven_is_fine() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.timer(60_000, 1).unwrap();
        rt.shutdown_all();
        drop(rt);
        drop(runtime(backend));
    }
}
