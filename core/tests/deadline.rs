//! Deadlines on pending operations: expiry, no expiry when the op finishes first, unknown
//! user_data, replacement, and other op kinds, on both backends.

mod common;

use std::time::{Duration, Instant};

use common::{BACKENDS, Reaper, blackhole, listen, pair, runtime};
use polyio_core::{Completion, Handle, OpCode, ReadBuf, Runtime, Status, WriteBuf};

/// Runs turns for `ms` and returns everything that completed (including the backlog).
fn settle(rt: &mut Runtime, r: &mut Reaper, ms: u64) -> Vec<Completion> {
    let mut out: Vec<Completion> = r.backlog.drain(..).collect();
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        rt.reap(&mut out, 64, Some(Duration::from_millis(5)));
    }
    rt.turn(&mut out, 64);
    out
}

#[test]
fn a_read_with_no_data_times_out_once_and_loses_nothing() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        let start = Instant::now();
        rt.read(s, ReadBuf::with_capacity(64), 1).unwrap();
        rt.deadline(1, 20).unwrap();
        let rd = r.wait(&mut rt, 1);
        assert_eq!(rd.status(), Status::TimedOut);
        assert_eq!((rd.op, rd.handle), (OpCode::Read, s));
        assert_eq!(rd.buf.as_deref(), Some(&[][..]));
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "not before it"
        );
        assert_eq!(rt.stats().in_flight, 0);
        assert_eq!(rt.next_timeout(), None);

        // The connection is fine, and the next read gets the peer's bytes.
        rt.write(c, WriteBuf::from_vec(b"late".to_vec()), 2)
            .unwrap();
        rt.read(s, ReadBuf::with_capacity(64), 3).unwrap();
        assert_eq!(r.wait(&mut rt, 3).buf.as_deref(), Some(&b"late"[..]));
        let rest = settle(&mut rt, &mut r, 20);
        assert!(rest.iter().all(|c| c.user_data == 2), "{rest:?}");
    }
}

#[test]
fn a_read_that_completes_first_is_not_timed_out() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        rt.read(s, ReadBuf::with_capacity(64), 1).unwrap();
        rt.deadline(1, 30).unwrap();
        rt.write(c, WriteBuf::from_vec(b"in time".to_vec()), 2)
            .unwrap();
        let rd = r.wait(&mut rt, 1);
        assert_eq!(rd.status(), Status::Ok);
        assert_eq!(rd.buf.as_deref(), Some(&b"in time"[..]));
        // The deadline is gone with the op: the runtime is idle, nothing else shows.
        assert_eq!(r.wait(&mut rt, 2).result, 7);
        assert_eq!(rt.next_timeout(), None);
        let rest = settle(&mut rt, &mut r, 60);
        assert!(rest.is_empty(), "a second completion: {rest:?}");
        assert_eq!(rt.deadline(1, 10), Err(Status::NotFound));
    }
}

#[test]
fn a_deadline_on_an_unknown_user_data_is_not_found() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        assert_eq!(rt.deadline(1, 10), Err(Status::NotFound));
        rt.timer(60_000, 2).unwrap();
        assert_eq!(rt.deadline(3, 0), Err(Status::NotFound));
        assert!(settle(&mut rt, &mut r, 10).is_empty());
        assert_eq!(rt.stats().in_flight, 1);
        // A delay that is a negative number in disguise is refused, and sets nothing.
        assert_eq!(rt.deadline(2, u64::MAX), Err(Status::InvalidArgument));
        assert!(rt.next_timeout().unwrap() > Duration::from_secs(1));
    }
}

#[test]
fn a_later_deadline_replaces_an_earlier_shorter_one() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        rt.read(s, ReadBuf::with_capacity(64), 1).unwrap();
        rt.deadline(1, 10).unwrap();
        rt.deadline(1, 60_000).unwrap();
        assert!(rt.next_timeout().unwrap() > Duration::from_millis(10));
        let rest = settle(&mut rt, &mut r, 50);
        assert!(rest.is_empty(), "the replaced deadline fired: {rest:?}");
        rt.write(c, WriteBuf::from_vec(b"ok".to_vec()), 2).unwrap();
        assert_eq!(r.wait(&mut rt, 1).buf.as_deref(), Some(&b"ok"[..]));
        assert_eq!(rt.next_timeout(), None);
    }
}

#[test]
fn a_later_deadline_replaces_an_earlier_longer_one() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (_c, s, _) = pair(&mut rt, &mut r);
        rt.read(s, ReadBuf::with_capacity(64), 1).unwrap();
        rt.deadline(1, 60_000).unwrap();
        rt.deadline(1, 5).unwrap();
        assert_eq!(r.wait(&mut rt, 1).status(), Status::TimedOut);
        assert_eq!(rt.next_timeout(), None, "the first deadline is gone too");
        assert!(settle(&mut rt, &mut r, 20).is_empty());
    }
}

#[test]
fn a_zero_deadline_times_out_on_the_next_turn() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (_c, s, _) = pair(&mut rt, &mut r);
        rt.read(s, ReadBuf::with_capacity(64), 1).unwrap();
        rt.deadline(1, 0).unwrap();
        assert_eq!(rt.next_timeout(), Some(Duration::ZERO));
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 16), 1);
        assert_eq!(out[0].status(), Status::TimedOut);
    }
}

#[test]
fn deadlines_time_out_accepts_connects_writes_and_timers() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, _s, _) = pair(&mut rt, &mut r);
        let (l, _) = listen(&mut rt);
        let (addr, _keep) = blackhole();

        rt.accept(l, 1).unwrap();
        rt.tcp_connect("127.0.0.1", addr.port(), 2).unwrap();
        rt.write(c, WriteBuf::from_vec(vec![9; 16 << 20]), 3)
            .unwrap();
        rt.write(c, WriteBuf::from_vec(vec![1; 10]), 4).unwrap();
        rt.timer(60_000, 5).unwrap();
        for ud in 1..=5 {
            rt.deadline(ud, 10).unwrap();
        }
        let mut got = Vec::new();
        for ud in 1..=5 {
            let op = r.wait(&mut rt, ud);
            assert_eq!(op.status(), Status::TimedOut, "{op:?}");
            got.push(op.op);
        }
        assert_eq!(
            got,
            [
                OpCode::Accept,
                OpCode::Connect,
                OpCode::Write,
                OpCode::Write,
                OpCode::Timer
            ]
        );
        assert!(settle(&mut rt, &mut r, 20).is_empty());
        assert_eq!(rt.stats().in_flight, 0);
        assert_eq!(rt.next_timeout(), None);
    }
}

#[test]
fn cancel_before_the_deadline_completes_once_with_canceled() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (_c, s, _) = pair(&mut rt, &mut r);
        rt.read(s, ReadBuf::with_capacity(64), 1).unwrap();
        rt.deadline(1, 10).unwrap();
        rt.cancel(1).unwrap();
        let out = settle(&mut rt, &mut r, 40);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].status(), Status::Canceled);
        assert_eq!(rt.next_timeout(), None);
    }
}

#[test]
fn close_before_the_deadline_completes_once_with_canceled() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (_c, s, _) = pair(&mut rt, &mut r);
        rt.read(s, ReadBuf::with_capacity(64), 1).unwrap();
        rt.deadline(1, 10).unwrap();
        rt.close(s).unwrap();
        let out = settle(&mut rt, &mut r, 40);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].status(), out[0].handle), (Status::Canceled, s));
        assert_eq!(rt.next_timeout(), None);
    }
}

#[test]
fn a_deadline_covers_every_pending_op_with_that_user_data() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        rt.read(c, ReadBuf::with_capacity(8), 7).unwrap();
        rt.read(s, ReadBuf::with_capacity(8), 7).unwrap();
        rt.timer(60_000, 8).unwrap();
        rt.deadline(7, 5).unwrap();
        let mut out = Vec::new();
        let start = Instant::now();
        while out.len() < 2 {
            assert!(start.elapsed() < Duration::from_secs(10));
            rt.reap(&mut out, 64, Some(Duration::from_millis(100)));
        }
        assert_eq!(out.len(), 2, "{out:?}");
        let handles: Vec<Handle> = out.iter().map(|c| c.handle).collect();
        assert!(handles.contains(&c) && handles.contains(&s));
        assert!(
            out.iter()
                .all(|o| o.user_data == 7 && o.status() == Status::TimedOut)
        );
        assert_eq!(rt.stats().in_flight, 1);
    }
}

#[test]
fn a_deadline_after_completion_but_before_reaping_is_not_found() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.timer(0, 1).unwrap();
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 0), 0, "fired, not yet handed out");
        assert_eq!(rt.deadline(1, 0), Err(Status::NotFound));
        assert_eq!(rt.turn(&mut out, 16), 1);
        assert_eq!(
            (out[0].user_data, out[0].result),
            (1, 0),
            "the completion stands"
        );
        assert_eq!(rt.turn(&mut out, 16), 0);
    }
}
