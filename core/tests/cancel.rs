//! Cancellation by user_data: reads (losing no bytes), accepts, timers, connects in flight,
//! queued writes, unknown user_data, and queue order after a cancel, on both backends.

mod common;

use std::time::Duration;

use common::{BACKENDS, Reaper, blackhole, listen, pair, runtime};
use polyio_core::{Completion, Handle, OpCode, ReadBuf, Runtime, Status, WriteBuf};

/// Runs turns for a while and returns everything that completed.
fn settle(rt: &mut Runtime, r: &mut Reaper, ms: u64) -> Vec<Completion> {
    let mut out: Vec<Completion> = r.backlog.drain(..).collect();
    let end = std::time::Instant::now() + Duration::from_millis(ms);
    while std::time::Instant::now() < end {
        rt.reap(&mut out, 64, Some(Duration::from_millis(5)));
    }
    rt.turn(&mut out, 64);
    out
}

/// Reads from `h` until `n` bytes have arrived (or EOF), one read in flight at a time.
fn read_exactly(rt: &mut Runtime, r: &mut Reaper, h: Handle, n: usize, ud: u64) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        rt.read(h, ReadBuf::with_capacity(64 << 10), ud).unwrap();
        let rd = r.wait(rt, ud);
        assert!(rd.result > 0, "read ended early: {:?}", rd.status());
        got.extend_from_slice(rd.buf.as_deref().unwrap());
    }
    got
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect()
}

#[test]
fn a_canceled_read_completes_canceled_once_and_takes_no_bytes() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);

        rt.read(s, ReadBuf::with_capacity(64), 1).unwrap();
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 16), 0, "an idle read stays pending");
        assert_eq!(rt.cancel(1), Ok(()));
        assert_eq!(rt.cancel(1), Err(Status::NotFound), "already canceled");
        let rd = r.wait(&mut rt, 1);
        assert_eq!(rd.status(), Status::Canceled);
        assert_eq!((rd.op, rd.handle), (OpCode::Read, s));
        assert_eq!(
            rd.buf.as_deref(),
            Some(&[][..]),
            "the buffer comes back empty"
        );

        rt.write(c, WriteBuf::from_vec(b"hello after cancel".to_vec()), 2)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 2).result, 18);
        rt.read(s, ReadBuf::with_capacity(64), 3).unwrap();
        let next = r.wait(&mut rt, 3);
        assert_eq!(next.buf.as_deref(), Some(&b"hello after cancel"[..]));

        let rest = settle(&mut rt, &mut r, 30);
        assert!(rest.is_empty(), "nothing else completes: {rest:?}");
    }
}

#[test]
fn bytes_that_arrive_before_the_cancel_go_to_the_next_read() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        let data = pattern(200 << 10);

        rt.read(s, ReadBuf::with_capacity(64 << 10), 1).unwrap();
        // The peer's bytes reach the kernel (the write runs inline), but no turn has let
        // the pending read see them before it is canceled.
        rt.write(c, WriteBuf::from_vec(data.clone()), 2).unwrap();
        assert_eq!(rt.cancel(1), Ok(()));
        let rd = r.wait(&mut rt, 1);
        assert_eq!(rd.status(), Status::Canceled);
        assert_eq!(rd.buf.as_deref(), Some(&[][..]));

        let got = read_exactly(&mut rt, &mut r, s, data.len(), 3);
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes lost or reordered by the canceled read");
        assert_eq!(r.wait(&mut rt, 2).result, data.len() as i64);
    }
}

#[test]
fn canceling_the_front_read_lets_the_next_queued_read_proceed() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);

        // Data arrives after the cancel.
        rt.read(s, ReadBuf::with_capacity(64), 1).unwrap();
        rt.read(s, ReadBuf::with_capacity(64), 2).unwrap();
        rt.cancel(1).unwrap();
        rt.write(c, WriteBuf::from_vec(b"first".to_vec()), 10)
            .unwrap();
        let second = r.wait(&mut rt, 2);
        assert_eq!(second.buf.as_deref(), Some(&b"first"[..]));
        assert_eq!(r.wait(&mut rt, 1).status(), Status::Canceled);

        // Data already in the kernel when the front read is canceled (no turn between).
        rt.read(s, ReadBuf::with_capacity(64), 3).unwrap();
        rt.read(s, ReadBuf::with_capacity(64), 4).unwrap();
        let mut out = Vec::new();
        rt.turn(&mut out, 16);
        assert!(out.is_empty());
        rt.write(c, WriteBuf::from_vec(b"second".to_vec()), 11)
            .unwrap();
        rt.cancel(3).unwrap();
        let fourth = r.wait(&mut rt, 4);
        assert_eq!(fourth.buf.as_deref(), Some(&b"second"[..]));
        assert_eq!(r.wait(&mut rt, 3).status(), Status::Canceled);

        // A canceled read in the middle of the queue keeps the others in order.
        for ud in 20..23 {
            rt.read(s, ReadBuf::with_capacity(3), ud).unwrap();
        }
        rt.cancel(21).unwrap();
        rt.write(c, WriteBuf::from_vec(b"abcdef".to_vec()), 12)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 20).buf.as_deref(), Some(&b"abc"[..]));
        assert_eq!(r.wait(&mut rt, 22).buf.as_deref(), Some(&b"def"[..]));
        assert_eq!(r.wait(&mut rt, 21).status(), Status::Canceled);
    }
}

#[test]
fn cancel_an_accept() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (l, port) = listen(&mut rt);
        rt.accept(l, 1).unwrap();
        rt.cancel(1).unwrap();
        let a = r.wait(&mut rt, 1);
        assert_eq!((a.op, a.status()), (OpCode::Accept, Status::Canceled));

        // The listener still works, and the canceled accept took no connection.
        rt.tcp_connect("127.0.0.1", port, 2).unwrap();
        assert_eq!(r.wait(&mut rt, 2).status(), Status::Ok);
        rt.accept(l, 3).unwrap();
        let a = r.wait(&mut rt, 3);
        assert_eq!(a.status(), Status::Ok);
        assert_ne!(a.handle, Handle::NONE);
        assert!(settle(&mut rt, &mut r, 20).is_empty());
    }
}

#[test]
fn cancel_the_front_accept_passes_the_connection_to_the_next() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (l, port) = listen(&mut rt);
        rt.accept(l, 1).unwrap();
        rt.accept(l, 2).unwrap();
        rt.cancel(1).unwrap();
        rt.tcp_connect("127.0.0.1", port, 3).unwrap();
        assert_eq!(r.wait(&mut rt, 2).status(), Status::Ok);
        assert_eq!(r.wait(&mut rt, 3).status(), Status::Ok);
        assert_eq!(r.wait(&mut rt, 1).status(), Status::Canceled);
    }
}

#[test]
fn cancel_a_timer() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        rt.timer(20, 1).unwrap();
        rt.timer(20, 2).unwrap();
        rt.cancel(1).unwrap();
        let t = r.wait(&mut rt, 1);
        assert_eq!((t.op, t.status()), (OpCode::Timer, Status::Canceled));
        assert_eq!(r.wait(&mut rt, 2).result, 0, "the other timer still fires");
        let rest = settle(&mut rt, &mut r, 40);
        assert!(rest.is_empty(), "the canceled timer never fires: {rest:?}");
        assert_eq!(rt.next_timeout(), None);
    }
}

#[test]
fn cancel_a_connect_in_flight() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (addr, _keep) = blackhole();
        rt.tcp_connect("127.0.0.1", addr.port(), 1).unwrap();
        // Right after submit, before any turn.
        assert_eq!(rt.cancel(1), Ok(()));
        let c = r.wait(&mut rt, 1);
        assert_eq!((c.op, c.status()), (OpCode::Connect, Status::Canceled));
        assert_eq!(c.handle, Handle::NONE);
        assert_eq!(rt.stats().in_flight, 0);
        assert!(settle(&mut rt, &mut r, 30).is_empty());
    }
}

#[test]
fn cancel_a_connect_right_after_submit_to_a_live_listener() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (_l, port) = listen(&mut rt);
        for ud in 0..20 {
            rt.tcp_connect("127.0.0.1", port, ud).unwrap();
            let canceled = rt.cancel(ud);
            let c = r.wait(&mut rt, ud);
            match canceled {
                Ok(()) => assert_eq!(c.status(), Status::Canceled),
                // It may have connected during the submit call itself.
                Err(e) => {
                    assert_eq!(e, Status::NotFound);
                    assert_eq!(c.status(), Status::Ok);
                    rt.close(c.handle).unwrap();
                }
            }
        }
        assert!(settle(&mut rt, &mut r, 30).is_empty());
    }
}

#[test]
fn cancel_a_queued_write_behind_a_blocked_one() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        // Far more than the socket buffers hold while nobody reads: it blocks.
        let big = pattern(16 << 20);
        rt.write(c, WriteBuf::from_vec(big.clone()), 1).unwrap();
        rt.write(c, WriteBuf::from_vec(b"TAIL".to_vec()), 2)
            .unwrap();
        rt.cancel(2).unwrap();
        let w = r.wait(&mut rt, 2);
        assert_eq!((w.op, w.status()), (OpCode::Write, Status::Canceled));
        assert_eq!(
            w.buf.as_deref(),
            Some(&b"TAIL"[..]),
            "the buffer comes back"
        );
        rt.shutdown(c, 3).unwrap();

        let mut got = Vec::new();
        loop {
            rt.read(s, ReadBuf::with_capacity(256 << 10), 4).unwrap();
            let rd = r.wait(&mut rt, 4);
            assert!(rd.result >= 0, "{:?}", rd.status());
            if rd.result == 0 {
                break;
            }
            got.extend_from_slice(rd.buf.as_deref().unwrap());
        }
        assert_eq!(got.len(), big.len(), "the canceled write sent nothing");
        assert!(got == big);
        assert_eq!(r.wait(&mut rt, 1).result, big.len() as i64);
        assert_eq!(r.wait(&mut rt, 3).status(), Status::Ok);
    }
}

#[test]
fn cancel_of_an_unknown_user_data_is_not_found_and_posts_nothing() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (_c, s, _) = pair(&mut rt, &mut r);
        rt.read(s, ReadBuf::with_capacity(8), 1).unwrap();
        let before = rt.stats().completions;
        for ud in [0, 2, 42, u64::MAX] {
            assert_eq!(rt.cancel(ud), Err(Status::NotFound));
        }
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 16), 0);
        assert_eq!(rt.stats().completions, before);
        assert_eq!(rt.stats().in_flight, 1, "the other read is untouched");
    }
}

#[test]
fn cancel_after_completion_but_before_reaping_is_not_found() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.timer(0, 1).unwrap();
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 0), 0, "fired, not yet handed out");
        assert_eq!(rt.cancel(1), Err(Status::NotFound));
        assert_eq!(rt.turn(&mut out, 16), 1);
        assert_eq!((out[0].user_data, out[0].result), (1, 0));
        assert_eq!(rt.turn(&mut out, 16), 0);
    }
}

#[test]
fn cancel_cancels_every_op_with_that_user_data() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        rt.read(c, ReadBuf::with_capacity(8), 5).unwrap();
        rt.read(s, ReadBuf::with_capacity(8), 5).unwrap();
        rt.timer(60_000, 5).unwrap();
        rt.timer(60_000, 6).unwrap();
        rt.cancel(5).unwrap();
        let out = settle(&mut rt, &mut r, 10);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(
            out.iter()
                .all(|c| c.user_data == 5 && c.status() == Status::Canceled)
        );
        assert_eq!(rt.stats().in_flight, 1);
    }
}

#[test]
fn a_read_canceled_in_the_middle_of_the_queue_is_skipped_and_loses_no_bytes() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        for ud in [1, 2, 3] {
            rt.read(s, ReadBuf::with_capacity(64), ud).unwrap();
        }
        rt.cancel(2).unwrap();
        let rd = r.wait(&mut rt, 2);
        assert_eq!(rd.status(), Status::Canceled);

        rt.write(c, WriteBuf::from_vec(b"one".to_vec()), 10)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 1).buf.as_deref(), Some(&b"one"[..]));
        rt.write(c, WriteBuf::from_vec(b"two".to_vec()), 11)
            .unwrap();
        assert_eq!(
            r.wait(&mut rt, 3).buf.as_deref(),
            Some(&b"two"[..]),
            "the read behind the canceled one gets the next bytes"
        );
        let rest = settle(&mut rt, &mut r, 20);
        assert!(
            rest.iter().all(|c| c.user_data != 2),
            "one completion only for the canceled read"
        );
    }
}

#[test]
fn reads_canceled_newest_first_leave_the_queue_usable() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        for ud in 1..=100 {
            rt.read(s, ReadBuf::with_capacity(64), ud).unwrap();
        }
        for ud in (1..=100).rev() {
            rt.cancel(ud).unwrap();
        }
        let done = settle(&mut rt, &mut r, 20);
        assert_eq!(done.len(), 100);
        assert!(done.iter().all(|c| c.status() == Status::Canceled));
        assert_eq!(rt.stats().in_flight, 0);

        rt.read(s, ReadBuf::with_capacity(64), 200).unwrap();
        rt.write(c, WriteBuf::from_vec(b"after".to_vec()), 201)
            .unwrap();
        assert_eq!(r.wait(&mut rt, 200).buf.as_deref(), Some(&b"after"[..]));
        assert_eq!(
            rt.try_write(c, &[b"x"]),
            Ok(1),
            "no stale write blocks try_write"
        );
    }
}

#[test]
fn an_accept_canceled_behind_another_is_skipped() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (l, port) = listen(&mut rt);
        rt.accept(l, 1).unwrap();
        rt.accept(l, 2).unwrap();
        rt.accept(l, 3).unwrap();
        rt.cancel(2).unwrap();
        assert_eq!(r.wait(&mut rt, 2).status(), Status::Canceled);
        rt.tcp_connect("127.0.0.1", port, 10).unwrap();
        rt.tcp_connect("127.0.0.1", port, 11).unwrap();
        let (a1, a3) = (r.wait(&mut rt, 1), r.wait(&mut rt, 3));
        assert_eq!((a1.status(), a3.status()), (Status::Ok, Status::Ok));
        assert_ne!(a1.handle, a3.handle);
        let rest = settle(&mut rt, &mut r, 20);
        assert!(rest.iter().all(|c| c.user_data != 2));
    }
}

#[test]
fn a_canceled_write_that_sent_part_of_its_buffer_says_how_much() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _) = pair(&mut rt, &mut r);
        // Far more than the socket buffers hold while nobody reads: part goes out, then it
        // blocks.
        let big = pattern(16 << 20);
        rt.write(c, WriteBuf::from_vec(big.clone()), 1).unwrap();
        settle(&mut rt, &mut r, 20);
        rt.cancel(1).unwrap();
        let w = r.wait(&mut rt, 1);
        assert_eq!(w.status(), Status::Canceled);
        assert_ne!(w.flags & polyio_core::FLAG_PARTIAL, 0, "flagged partial");
        assert!(w.partial > 0 && (w.partial as usize) < big.len());

        rt.close(c).unwrap();
        let mut got = Vec::new();
        loop {
            rt.read(s, ReadBuf::with_capacity(256 << 10), 4).unwrap();
            let rd = r.wait(&mut rt, 4);
            if rd.result <= 0 {
                break;
            }
            got.extend_from_slice(rd.buf.as_deref().unwrap());
        }
        assert_eq!(
            got.len() as u64,
            w.partial,
            "the peer got exactly that many"
        );
        assert!(got[..] == big[..got.len()]);
    }
}

#[test]
fn a_canceled_write_that_sent_nothing_is_not_partial() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, _s, _) = pair(&mut rt, &mut r);
        rt.write(c, WriteBuf::from_vec(pattern(16 << 20)), 1)
            .unwrap();
        rt.write(c, WriteBuf::from_vec(b"queued".to_vec()), 2)
            .unwrap();
        rt.cancel(2).unwrap();
        let w = r.wait(&mut rt, 2);
        assert_eq!(w.status(), Status::Canceled);
        assert_eq!((w.flags & polyio_core::FLAG_PARTIAL, w.partial), (0, 0));
    }
}
