//! A reap with no time limit sleeps until work comes, on each backend (on the epoll backend,
//! inside tokio's own epoll_wait): it wakes for a peer's bytes, for a wake from another
//! thread, and for a lookup that finishes on another thread. A watchdog turns a reap that
//! sleeps through its wakeup into a failure instead of a hang.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use common::{BACKENDS, Reaper, listen, runtime};
use polyio_core::{LookupHints, OpCode, ReadBuf, Status};

/// Exits the process if the returned sender is not used (or dropped) within 30 s.
fn watchdog(what: &'static str) -> Sender<()> {
    let (done, watch) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = watch.recv_timeout(Duration::from_secs(30)) {
            eprintln!("reap slept through {what}");
            std::process::exit(1);
        }
    });
    done
}

#[test]
fn reap_without_a_limit_wakes_for_a_peers_bytes() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (l, port) = listen(&mut rt);
        rt.accept(l, 1).unwrap();
        let mut peer = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let conn = r.wait(&mut rt, 1).handle;
        rt.read(conn, ReadBuf::with_capacity(64), 2).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            peer.write_all(b"hello").unwrap();
            peer
        });
        let done = watchdog("a peer's bytes");
        let mut out = Vec::new();
        let n = rt.reap(&mut out, 16, None);
        drop(done);
        assert_eq!(n, 1, "{backend:?}");
        assert_eq!(
            (out[0].op, out[0].user_data, out[0].result),
            (OpCode::Read, 2, 5)
        );
        drop(writer.join());
    }
}

#[test]
fn reap_without_a_limit_returns_for_a_wake_from_another_thread() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (l, port) = listen(&mut rt);
        rt.accept(l, 1).unwrap();
        let _peer = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let conn = r.wait(&mut rt, 1).handle;
        // A read in flight that nothing will complete: only the wake can end the reap.
        rt.read(conn, ReadBuf::with_capacity(64), 2).unwrap();
        let waker = rt.waker();
        let waking = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            waker.wake();
        });
        let done = watchdog("a wake from another thread");
        let mut out = Vec::new();
        assert_eq!(rt.reap(&mut out, 16, None), 0, "{backend:?}");
        drop(done);
        waking.join().unwrap();
        assert_eq!(rt.stats().in_flight, 1);
    }
}

#[test]
fn reap_without_a_limit_wakes_for_a_lookup_done_on_another_thread() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.getaddrinfo(Some("localhost"), Some("80"), LookupHints::default(), 3)
            .unwrap();
        let done = watchdog("a lookup's end");
        let mut out = Vec::new();
        let mut n = 0;
        while n == 0 {
            n = rt.reap(&mut out, 16, None);
        }
        drop(done);
        assert_eq!((out[0].op, out[0].user_data), (OpCode::Lookup, 3));
        assert_eq!(out[0].status(), Status::Ok, "{backend:?}");
    }
}
