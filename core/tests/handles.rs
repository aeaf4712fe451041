//! Handles are ids: closed, stale, foreign and made-up handles get `BadHandle`; a handle of
//! the wrong kind gets `InvalidArgument`; and the runtime's waker, on both backends.

mod common;

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{BACKENDS, Reaper, listen, pair, runtime};
use polyio_core::{Handle, ReadBuf, Runtime, Status, WriteBuf};

/// Every handle-taking call must refuse `h` with `want`, post nothing and leave nothing in
/// flight.
fn assert_refused(rt: &mut Runtime, h: Handle, want: Status) {
    let before = rt.stats();
    assert_eq!(
        rt.read(h, ReadBuf::with_capacity(8), 1),
        Err(want),
        "read {h:?}"
    );
    assert_eq!(
        rt.write(h, WriteBuf::from_vec(b"x".to_vec()), 2),
        Err(want),
        "write {h:?}"
    );
    assert_eq!(rt.shutdown(h, 3), Err(want), "shutdown {h:?}");
    assert_eq!(rt.accept(h, 4), Err(want), "accept {h:?}");
    assert_eq!(rt.local_addr(h), Err(want), "local_addr {h:?}");
    assert_eq!(rt.peer_addr(h), Err(want), "peer_addr {h:?}");
    assert_eq!(rt.set_nodelay(h, true), Err(want), "set_nodelay {h:?}");
    assert_eq!(rt.close(h), Err(want), "close {h:?}");
    let after = rt.stats();
    assert_eq!(after.in_flight, before.in_flight);
    assert_eq!(after.completions, before.completions);
    for ud in 1..=4 {
        assert_eq!(rt.cancel(ud), Err(Status::NotFound));
    }
}

#[test]
fn closed_handles_are_bad() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, l) = pair(&mut rt, &mut r);
        rt.close(c).unwrap();
        rt.close(l).unwrap();
        assert_refused(&mut rt, c, Status::BadHandle);
        assert_refused(&mut rt, l, Status::BadHandle);
        // The other end of the pair is untouched.
        assert!(rt.local_addr(s).is_ok());
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 16), 0);
    }
}

#[test]
fn a_stale_handle_whose_slot_was_reused_is_bad() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, l) = pair(&mut rt, &mut r);
        let port = rt.local_addr(l).unwrap().port();
        rt.close(s).unwrap();
        // A new connection takes the freed slot, with a new generation.
        rt.accept(l, 10).unwrap();
        rt.tcp_connect("127.0.0.1", port, 11).unwrap();
        let s2 = r.wait(&mut rt, 10).handle;
        let c2 = r.wait(&mut rt, 11).handle;
        let slot = |h: Handle| h.into_raw() & 0xff_ffff;
        assert!(
            slot(s2) == slot(s) || slot(c2) == slot(s),
            "the slot was not reused: {s:?} {s2:?} {c2:?}"
        );
        assert_ne!(s2, s);
        assert_ne!(c2, s);
        assert_refused(&mut rt, s, Status::BadHandle);
        // The new occupant works, and the old handle could not touch it.
        rt.write(c, WriteBuf::from_vec(b"old".to_vec()), 20)
            .unwrap();
        rt.write(c2, WriteBuf::from_vec(b"new".to_vec()), 21)
            .unwrap();
        rt.read(s2, ReadBuf::with_capacity(8), 22).unwrap();
        assert_eq!(r.wait(&mut rt, 22).buf.as_deref(), Some(&b"new"[..]));
    }
}

#[test]
fn a_handle_from_another_runtime_is_bad() {
    for backend in BACKENDS {
        let mut a = runtime(backend);
        let mut b = runtime(backend);
        assert_ne!(a.id(), b.id());
        // Same slot and generation in both runtimes: only the runtime id differs.
        let (la, _) = listen(&mut a);
        let (lb, _) = listen(&mut b);
        assert_eq!(
            la.into_raw() & ((1 << 48) - 1),
            lb.into_raw() & ((1 << 48) - 1)
        );
        assert_refused(&mut a, lb, Status::BadHandle);
        assert_refused(&mut b, la, Status::BadHandle);

        let mut ra = Reaper::new();
        let (ca, sa, _) = pair(&mut a, &mut ra);
        assert_refused(&mut b, ca, Status::BadHandle);
        assert_refused(&mut b, sa, Status::BadHandle);
        assert!(a.local_addr(ca).is_ok(), "still fine where it belongs");
    }
}

#[test]
fn none_and_made_up_handles_are_bad() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, _s, l) = pair(&mut rt, &mut r);
        let id = u64::from(rt.id()) << 48;
        let made_up = [
            Handle::NONE,
            Handle::from_raw(u64::MAX),
            Handle::from_raw(12345),
            Handle::from_raw(1),
            Handle::from_raw(id),                         // generation 0, slot 0
            Handle::from_raw(id | 0xff_ffff),             // generation 0, a huge slot
            Handle::from_raw(id | (1 << 24) | 0xff_fffe), // generation 1, an unused slot
            Handle::from_raw(c.into_raw() + (1 << 24)),   // a live slot, the next generation
            Handle::from_raw(l.into_raw() ^ (1 << 24)),   // a live slot, another generation
        ];
        for h in made_up {
            assert_refused(&mut rt, h, Status::BadHandle);
        }
        assert_eq!(Handle::default(), Handle::NONE);
        assert_eq!(Handle::NONE.into_raw(), 0);
    }
}

#[test]
fn a_handle_of_the_wrong_kind_is_an_invalid_argument() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, _s, l) = pair(&mut rt, &mut r);
        assert_eq!(
            rt.read(l, ReadBuf::with_capacity(8), 1),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            rt.write(l, WriteBuf::from_vec(b"x".to_vec()), 2),
            Err(Status::InvalidArgument)
        );
        assert_eq!(rt.shutdown(l, 3), Err(Status::InvalidArgument));
        assert_eq!(rt.accept(c, 4), Err(Status::InvalidArgument));
        assert_eq!(rt.set_nodelay(l, true), Err(Status::InvalidArgument));
        // A read with no room is invalid too.
        assert_eq!(
            rt.read(c, ReadBuf::with_capacity(0), 5),
            Err(Status::InvalidArgument)
        );
        assert_eq!(rt.stats().in_flight, 0);
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 16), 0);
        // Both still work for what they are.
        assert!(rt.local_addr(l).is_ok());
        rt.accept(l, 6).unwrap();
        rt.cancel(6).unwrap();
        assert_eq!(r.wait(&mut rt, 6).status(), Status::Canceled);
    }
}

#[test]
fn handles_are_unique_while_alive() {
    let mut rt = runtime(BACKENDS[0]);
    let mut seen = std::collections::HashSet::new();
    let mut live = Vec::new();
    for round in 0..50 {
        let (l, _) = listen(&mut rt);
        assert!(seen.insert(l), "handle {l:?} issued twice");
        live.push(l);
        if round % 3 == 0 {
            let h = live.remove(0);
            rt.close(h).unwrap();
        }
    }
    for h in live {
        rt.close(h).unwrap();
    }
}

fn readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd that lives across the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

#[test]
fn a_wake_from_another_thread_makes_the_backend_fd_readable() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let fd = rt.backend_fd();
        assert!(fd >= 0);
        let mut out = Vec::new();
        rt.turn(&mut out, 16);
        assert!(
            !readable(fd, 0),
            "{backend:?}: an idle runtime's fd is quiet"
        );
        for round in 0..3 {
            let waker = rt.waker();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                waker.wake();
                waker.wake(); // coalesced
            });
            assert!(
                readable(fd, 5000),
                "{backend:?} round {round}: the wake did not reach the fd"
            );
            t.join().unwrap();
            assert_eq!(rt.turn(&mut out, 16), 0, "a wake posts no completion");
            assert!(!readable(fd, 0), "{backend:?}: the turn drained the wake");
        }
        // Waking from the driving thread works too, and a waker outliving its runtime is
        // harmless.
        let waker = rt.waker();
        waker.wake();
        assert!(readable(fd, 5000));
        drop(rt);
        waker.wake();
    }
}

#[test]
fn wakes_racing_with_turns_are_never_lost() {
    // A wake that lands while a turn drains the previous one must not leave the runtime
    // believing it is signaled while its fd is quiet: every later wake would be swallowed.
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let fd = rt.backend_fd();
        let mut out = Vec::new();
        for cycle in 0..1000 {
            let stop = Arc::new(AtomicBool::new(false));
            let (waker, stop2) = (rt.waker(), stop.clone());
            let t = std::thread::spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    waker.wake();
                }
            });
            for _ in 0..20 {
                rt.turn(&mut out, 16);
            }
            stop.store(true, Ordering::Relaxed);
            t.join().unwrap();
            // Quiescent now. A fresh wake must make the fd readable, and the turn that
            // follows must leave it quiet.
            rt.waker().wake();
            assert!(
                readable(fd, 5000),
                "{backend:?} cycle {cycle}: a wake was lost"
            );
            rt.turn(&mut out, 16);
            assert!(
                !readable(fd, 0),
                "{backend:?} cycle {cycle}: fd still readable after the turn"
            );
        }
        assert!(out.is_empty());
    }
}

#[test]
fn a_peer_s_bytes_make_the_backend_fd_readable() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (l, port) = listen(&mut rt);
        rt.accept(l, 1).unwrap();
        let mut peer = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let s = r.wait(&mut rt, 1).handle;
        rt.read(s, ReadBuf::with_capacity(16), 2).unwrap();
        let mut out = Vec::new();
        for _ in 0..3 {
            rt.turn(&mut out, 16);
        }
        assert!(out.is_empty());
        let fd = rt.backend_fd();
        assert!(
            !readable(fd, 0),
            "{backend:?}: quiet before the peer writes"
        );
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            std::io::Write::write_all(&mut peer, b"ping").unwrap();
            peer
        });
        assert!(
            readable(fd, 5000),
            "{backend:?}: the peer's bytes did not wake"
        );
        let _peer = t.join().unwrap();
        assert_eq!(r.wait(&mut rt, 2).buf.as_deref(), Some(&b"ping"[..]));
    }
}

#[test]
fn a_wake_while_nobody_reaps_is_remembered_by_the_next_reap() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.timer(60_000, 1).unwrap(); // keeps the runtime from being idle
        rt.waker().wake();
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 16), 0, "the turn drains the backend fd");

        // If the wake were forgotten, this reap would sleep until the rescuer wakes it.
        let (done, rescued) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (waker, done2, rescued2) = (rt.waker(), done.clone(), rescued.clone());
        let rescuer = std::thread::spawn(move || {
            for _ in 0..300 {
                if done2.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            rescued2.store(true, Ordering::Release);
            waker.wake();
        });
        assert_eq!(rt.reap(&mut out, 16, None), 0);
        done.store(true, Ordering::Release);
        rescuer.join().unwrap();
        assert!(
            !rescued.load(Ordering::Acquire),
            "{backend:?}: the reap slept through a remembered wake"
        );
        // Consumed: the reap after it waits again (here until its timeout).
        assert_eq!(rt.reap(&mut out, 16, Some(Duration::from_millis(20))), 0);
    }
}
