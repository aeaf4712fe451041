//! Multi-shot reads: one submission, a completion flagged MORE per chunk, and exactly one
//! last completion without it (end of stream, an error, cancel or close), on both backends.

mod common;

use std::time::Duration;

use common::{BACKENDS, Reaper, pair, runtime};
use polyio_core::{Completion, FLAG_MORE, Handle, ReadBuf, Runtime, Status, WriteBuf};

/// Takes completions of `user_data` (in order) until one comes without FLAG_MORE; returns
/// the bytes of the MORE ones and that last completion. Asserts each chunk is at most `cap`.
fn collect_until_last(
    rt: &mut Runtime,
    r: &mut Reaper,
    user_data: u64,
    cap: usize,
) -> (Vec<u8>, Completion) {
    let mut data = Vec::new();
    loop {
        let c = r.wait(rt, user_data);
        if c.flags & FLAG_MORE == 0 {
            return (data, c);
        }
        assert!(c.result > 0 && c.result as usize <= cap, "{c:?}");
        let buf = c.buf.expect("a MORE completion carries its bytes");
        assert_eq!(buf.len(), c.result as usize);
        data.extend_from_slice(&buf);
        rt.recycle(buf);
    }
}

/// Takes MORE completions of `user_data` until `want` bytes arrived.
fn collect(rt: &mut Runtime, r: &mut Reaper, user_data: u64, want: usize) -> Vec<u8> {
    let mut data = Vec::new();
    while data.len() < want {
        let c = r.wait(rt, user_data);
        assert_eq!(c.flags & FLAG_MORE, FLAG_MORE, "{c:?}");
        data.extend_from_slice(c.buf.as_deref().unwrap());
    }
    assert_eq!(data.len(), want, "more than was sent");
    data
}

fn send(rt: &mut Runtime, r: &mut Reaper, h: Handle, data: &[u8], user_data: u64) {
    rt.write(h, WriteBuf::from_vec(data.to_vec()), user_data)
        .unwrap();
    assert_eq!(r.wait(rt, user_data).result, data.len() as i64);
}

#[test]
fn every_chunk_completes_with_more_and_end_of_stream_ends_it() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _l) = pair(&mut rt, &mut r);
        rt.read_multishot(s, 16, 7).unwrap();
        let msg: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        rt.write(c, WriteBuf::from_vec(msg.clone()), 1).unwrap();
        rt.shutdown(c, 2).unwrap();
        let (got, last) = collect_until_last(&mut rt, &mut r, 7, 16);
        assert_eq!(got, msg, "every byte, in order, in chunks of at most 16");
        assert_eq!((last.result, last.flags & FLAG_MORE), (0, 0));
        assert!(last.buf.is_none());
        assert_eq!(
            rt.stats().in_flight,
            0,
            "the operation ended with its last completion"
        );
    }
}

#[test]
fn cancel_ends_it_once_and_loses_no_bytes() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _l) = pair(&mut rt, &mut r);
        rt.read_multishot(s, 64, 7).unwrap();
        send(&mut rt, &mut r, c, b"first", 1);
        let mut got = collect(&mut rt, &mut r, 7, 5);
        rt.cancel(7).unwrap();
        let (more, last) = collect_until_last(&mut rt, &mut r, 7, 64);
        assert!(more.is_empty());
        assert_eq!(last.status(), Status::Canceled);
        assert_eq!(
            rt.cancel(7),
            Err(Status::NotFound),
            "ended: nothing left to cancel"
        );
        // Sent after the cancel: left for the next read.
        send(&mut rt, &mut r, c, b" second", 2);
        rt.read(s, ReadBuf::with_capacity(64), 3).unwrap();
        got.extend_from_slice(r.wait(&mut rt, 3).buf.as_deref().unwrap());
        assert_eq!(got, b"first second");
    }
}

#[test]
fn close_ends_it_with_canceled_and_a_reset_peer_with_an_error() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _l) = pair(&mut rt, &mut r);
        rt.read_multishot(s, 64, 7).unwrap();
        rt.close(s).unwrap();
        let (more, last) = collect_until_last(&mut rt, &mut r, 7, 64);
        assert!(more.is_empty());
        assert_eq!(last.status(), Status::Canceled);
        // The closed side's RST fails the peer's multi-shot read (or it reads end of stream,
        // when the close raced nothing unread): either way, exactly one last completion.
        rt.read_multishot(c, 64, 8).unwrap();
        let (_, last) = collect_until_last(&mut rt, &mut r, 8, 64);
        assert!(last.result <= 0, "{last:?}");
        assert_eq!(rt.stats().in_flight, 0);
    }
}

#[test]
fn single_reads_queue_behind_it_in_order() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, s, _l) = pair(&mut rt, &mut r);
    rt.read_multishot(s, 64, 7).unwrap();
    rt.read(s, ReadBuf::with_capacity(64), 8).unwrap();
    send(&mut rt, &mut r, c, b"to the multi-shot", 1);
    assert_eq!(collect(&mut rt, &mut r, 7, 17), b"to the multi-shot");
    rt.cancel(7).unwrap();
    let (_, last) = collect_until_last(&mut rt, &mut r, 7, 64);
    assert_eq!(last.status(), Status::Canceled);
    send(&mut rt, &mut r, c, b"to the single read", 2);
    assert_eq!(
        r.wait(&mut rt, 8).buf.as_deref(),
        Some(&b"to the single read"[..])
    );
}

#[test]
fn recycled_buffers_are_reused() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (c, s, _l) = pair(&mut rt, &mut r);
    rt.read_multishot(s, 64, 7).unwrap();
    send(&mut rt, &mut r, c, b"one", 1);
    let first = r.wait(&mut rt, 7).buf.unwrap();
    let ptr = first.as_ptr();
    rt.recycle(first);
    send(&mut rt, &mut r, c, b"two", 2);
    let second = r.wait(&mut rt, 7);
    let buf = second.buf.expect("bytes");
    assert_eq!(buf, b"two");
    assert_eq!(buf.as_ptr(), ptr, "the recycled buffer");
}

#[test]
fn bad_arguments_are_refused_without_a_completion() {
    let mut rt = runtime(BACKENDS[0]);
    let mut r = Reaper::new();
    let (_c, s, l) = pair(&mut rt, &mut r);
    assert_eq!(rt.read_multishot(s, 0, 1), Err(Status::InvalidArgument));
    assert_eq!(rt.read_multishot(l, 64, 1), Err(Status::InvalidArgument));
    assert_eq!(
        rt.read_multishot(Handle::NONE, 64, 1),
        Err(Status::BadHandle)
    );
    assert_eq!(rt.stats().in_flight, 0);
    let mut out = Vec::new();
    rt.turn(&mut out, 8);
    assert!(out.is_empty());
}

#[test]
fn a_busy_multishot_read_cannot_starve_other_sockets() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (a_client, a, _) = pair(&mut rt, &mut r);
        let (b_client, b, _) = pair(&mut rt, &mut r);
        // Far more buffered on `a` than its 16-byte chunks drain in a turn.
        send(&mut rt, &mut r, a_client, &vec![1; 256 << 10], 1);
        rt.read_multishot(a, 16, 2).unwrap();
        rt.read(b, ReadBuf::with_capacity(16), 3).unwrap();
        send(&mut rt, &mut r, b_client, b"for b", 4);
        let mut seen_b = false;
        for _ in 0..500 {
            let mut out = Vec::new();
            rt.turn(&mut out, 1024);
            seen_b |= out.iter().any(|c| c.user_data == 3);
            for c in r.backlog.drain(..).chain(out) {
                seen_b |= c.user_data == 3;
                if let Some(buf) = c.buf {
                    rt.recycle(buf);
                }
            }
            if seen_b {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            seen_b,
            "b's read never completed while a's chunks kept coming"
        );
    }
}

#[test]
fn a_pooled_read_takes_a_recycled_buffer_when_bytes_arrive_and_completes_once() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _l) = pair(&mut rt, &mut r);
        // Submitted before the buffer is recycled: it can only be the read's if the read
        // takes its buffer when the bytes arrive, not when it is submitted.
        rt.read_pooled(s, 64, 7).unwrap();
        let pooled = Vec::with_capacity(64);
        let at = pooled.as_ptr();
        rt.recycle(pooled);
        send(&mut rt, &mut r, c, b"hello", 1);
        let done = r.wait(&mut rt, 7);
        assert_eq!((done.result, done.flags & FLAG_MORE), (5, 0), "{done:?}");
        let buf = done.buf.expect("a pooled read hands over its buffer");
        assert_eq!((&buf[..], buf.as_ptr()), (&b"hello"[..], at));
        assert_eq!(rt.stats().in_flight, 0, "it completes once, not multi-shot");
        // Queued pooled reads complete in order; the last sees end of stream, with no buffer.
        rt.read_pooled(s, 3, 8).unwrap();
        rt.read_pooled(s, 3, 9).unwrap();
        rt.read_pooled(s, 3, 10).unwrap();
        send(&mut rt, &mut r, c, b"abcd", 2);
        rt.shutdown(c, 3).unwrap();
        let a = r.wait(&mut rt, 8);
        let b = r.wait(&mut rt, 9);
        let end = r.wait(&mut rt, 10);
        assert_eq!(a.buf.as_deref(), Some(&b"abc"[..]));
        assert_eq!(b.buf.as_deref(), Some(&b"d"[..]));
        assert_eq!((end.result, end.buf.is_none()), (0, true), "{end:?}");
        assert_eq!(
            rt.read_pooled(s, 0, 11),
            Err(Status::InvalidArgument),
            "a zero capacity"
        );
    }
}

#[test]
fn a_few_bytes_in_a_large_buffer_come_in_a_buffer_their_size() {
    const CAP: usize = 64 * 1024;
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        let (c, s, _l) = pair(&mut rt, &mut r);
        rt.read_multishot(s, CAP, 7).unwrap();
        send(&mut rt, &mut r, c, b"hello", 1);
        let small = r.wait(&mut rt, 7).buf.expect("bytes");
        assert_eq!(small, b"hello");
        assert!(small.capacity() < CAP / 4, "capacity {}", small.capacity());
        // Given back, the small buffer holds the next small read's copy.
        let at = small.as_ptr();
        rt.recycle(small);
        send(&mut rt, &mut r, c, b"again", 2);
        let again = r.wait(&mut rt, 7).buf.expect("bytes");
        assert_eq!((&again[..], again.as_ptr()), (&b"again"[..], at));
        // A large chunk comes in the read buffer itself.
        let big: Vec<u8> = (0..20 * 1024u32).map(|i| (i % 251) as u8).collect();
        rt.write(c, WriteBuf::from_vec(big.clone()), 3).unwrap();
        let mut got = Vec::new();
        while got.len() < big.len() {
            let cqe = r.wait(&mut rt, 7);
            let buf = cqe.buf.expect("bytes");
            if buf.len() > 8 * 1024 {
                assert!(buf.capacity() >= CAP, "capacity {}", buf.capacity());
            } else {
                assert!(buf.capacity() < CAP / 4, "capacity {}", buf.capacity());
            }
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, big);
        // A pooled read fits its buffer the same way.
        rt.cancel(7).unwrap();
        assert_eq!(r.wait(&mut rt, 7).status(), Status::Canceled);
        rt.read_pooled(s, CAP, 8).unwrap();
        send(&mut rt, &mut r, c, b"once", 4);
        let once = r.wait(&mut rt, 8).buf.expect("bytes");
        assert_eq!(once, b"once");
        assert!(once.capacity() < CAP / 4, "capacity {}", once.capacity());
    }
}
