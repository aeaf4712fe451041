//! Timers: results, ordering, the next timeout, reap's timeout, and bad delays, on both
//! backends.

mod common;

use std::time::{Duration, Instant};

use common::{BACKENDS, Reaper, pair, runtime};
use polyio_core::{Completion, Handle, OpCode, ReadBuf, Runtime, Status};

/// Reaps until `n` completions have arrived (10 s limit), in arrival order.
fn reap_n(rt: &mut Runtime, n: usize) -> Vec<Completion> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "only {} of {n} completions arrived",
            out.len()
        );
        let want = n - out.len();
        rt.reap(&mut out, want, Some(Duration::from_millis(100)));
    }
    out
}

#[test]
fn timers_complete_with_zero_and_op_timer() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.timer(0, 1).unwrap();
        rt.timer(5, 2).unwrap();
        assert_eq!(rt.stats().in_flight, 2);
        let out = reap_n(&mut rt, 2);
        for c in &out {
            assert_eq!(c.op, OpCode::Timer, "{c:?}");
            assert_eq!(c.result, 0, "{c:?}");
            assert_eq!(c.status(), Status::Ok);
            assert_eq!(c.handle, Handle::NONE);
            assert!(c.buf.is_none());
        }
        let mut uds: Vec<u64> = out.iter().map(|c| c.user_data).collect();
        uds.sort_unstable();
        assert_eq!(uds, [1, 2]);
        assert_eq!(rt.stats().in_flight, 0);
        // Nothing else ever shows up.
        let mut more = Vec::new();
        assert_eq!(rt.turn(&mut more, 16), 0);
    }
}

#[test]
fn timers_fire_in_deadline_order() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        for (ms, ud) in [(40, 4), (10, 2), (0, 1), (25, 3)] {
            rt.timer(ms, ud).unwrap();
        }
        let order: Vec<u64> = reap_n(&mut rt, 4).iter().map(|c| c.user_data).collect();
        assert_eq!(order, [1, 2, 3, 4]);
    }
}

#[test]
fn timers_due_in_the_same_turn_still_complete_in_deadline_order() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        for (ms, ud) in [(12, 3), (3, 1), (8, 2)] {
            rt.timer(ms, ud).unwrap();
        }
        // Let all three fall due before the runtime looks at them.
        std::thread::sleep(Duration::from_millis(20));
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 16), 3);
        let order: Vec<u64> = out.iter().map(|c| c.user_data).collect();
        assert_eq!(order, [1, 2, 3]);
    }
}

#[test]
fn equal_delays_fire_in_submission_order() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let uds: Vec<u64> = (0..50).map(|i| 1000 - i * 7).collect();
        for &ud in &uds {
            rt.timer(5, ud).unwrap();
        }
        let order: Vec<u64> = reap_n(&mut rt, uds.len())
            .iter()
            .map(|c| c.user_data)
            .collect();
        assert_eq!(order, uds);

        // Zero delays too, all due on the same turn.
        for &ud in &uds {
            rt.timer(0, ud).unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 1000), uds.len());
        let order: Vec<u64> = out.iter().map(|c| c.user_data).collect();
        assert_eq!(order, uds);
    }
}

#[test]
fn next_timeout_reflects_the_earliest_timer() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        assert_eq!(rt.next_timeout(), None, "idle runtime");

        rt.timer(60_000, 1).unwrap();
        let t = rt.next_timeout().expect("a timer is pending");
        assert!(t <= Duration::from_secs(60), "{t:?}");
        assert!(t > Duration::ZERO, "a one-minute timer is not due yet");

        rt.timer(30_000, 2).unwrap();
        let t2 = rt.next_timeout().expect("timers are pending");
        assert!(t2 <= Duration::from_secs(30), "earliest timer wins: {t2:?}");

        // A later timer does not move it.
        rt.timer(90_000, 3).unwrap();
        assert!(rt.next_timeout().unwrap() <= Duration::from_secs(30));

        // A due timer: the consumer must not sleep.
        rt.timer(0, 4).unwrap();
        assert_eq!(rt.next_timeout(), Some(Duration::ZERO));

        // A turn that fires it but hands nothing out leaves a completion waiting.
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 0), 0);
        assert_eq!(
            rt.next_timeout(),
            Some(Duration::ZERO),
            "a completion waits"
        );
        assert_eq!(rt.turn(&mut out, 16), 1);
        assert_eq!(out[0].user_data, 4);
        assert!(rt.next_timeout().unwrap() <= Duration::from_secs(30));

        // Cancelling the earliest moves the next timeout to the next one; cancelling all
        // makes the runtime idle again.
        rt.cancel(2).unwrap();
        out.clear();
        rt.turn(&mut out, 16);
        assert_eq!(out.len(), 1);
        let t3 = rt.next_timeout().expect("timers are pending");
        assert!(t3 > Duration::from_secs(30), "{t3:?}");
        assert!(t3 <= Duration::from_secs(60), "{t3:?}");
        rt.cancel(1).unwrap();
        rt.cancel(3).unwrap();
        out.clear();
        rt.turn(&mut out, 16);
        assert_eq!(out.len(), 2);
        assert_eq!(rt.next_timeout(), None, "idle again");
    }
}

#[test]
fn reap_with_a_timeout_returns_zero_no_earlier_than_the_timeout() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut r = Reaper::new();
        // Something must be in flight, else reap returns at once: an idle read and a long
        // timer.
        let (c, _s, _) = pair(&mut rt, &mut r);
        rt.read(c, ReadBuf::with_capacity(16), 1).unwrap();
        rt.timer(60_000, 2).unwrap();
        for ms in [0, 1, 30] {
            let timeout = Duration::from_millis(ms);
            let mut out = Vec::new();
            let start = Instant::now();
            assert_eq!(rt.reap(&mut out, 16, Some(timeout)), 0);
            assert!(start.elapsed() >= timeout, "returned early for {ms} ms");
            assert!(out.is_empty());
        }
        assert_eq!(rt.stats().in_flight, 2);
    }
}

#[test]
fn reap_on_an_idle_runtime_returns_zero() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let mut out = Vec::new();
        // Nothing in flight: nothing could ever complete, so even an unbounded reap returns.
        assert_eq!(rt.reap(&mut out, 16, None), 0);
        assert_eq!(rt.reap(&mut out, 16, Some(Duration::from_secs(60))), 0);
    }
}

#[test]
fn reap_without_a_timeout_waits_for_a_timer() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        rt.timer(10, 7).unwrap();
        let mut out = Vec::new();
        let start = Instant::now();
        assert_eq!(rt.reap(&mut out, 16, None), 1);
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!((out[0].user_data, out[0].result), (7, 0));
    }
}

#[test]
fn a_timer_does_not_fire_before_its_delay() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        let start = Instant::now();
        rt.timer(25, 1).unwrap();
        let out = reap_n(&mut rt, 1);
        assert_eq!(out[0].user_data, 1);
        assert!(start.elapsed() >= Duration::from_millis(25));
    }
}

#[test]
fn an_unrepresentable_delay_is_invalid_and_posts_nothing() {
    for backend in BACKENDS {
        let mut rt = runtime(backend);
        assert_eq!(rt.timer(u64::MAX, 1), Err(Status::InvalidArgument));
        assert_eq!(rt.stats().in_flight, 0);
        assert_eq!(rt.next_timeout(), None);
        let mut out = Vec::new();
        assert_eq!(rt.turn(&mut out, 16), 0);
        assert_eq!(rt.reap(&mut out, 16, Some(Duration::from_millis(5))), 0);
        assert!(out.is_empty());
        assert_eq!(rt.cancel(1), Err(Status::NotFound));
        // The runtime still works.
        rt.timer(0, 2).unwrap();
        assert_eq!(reap_n(&mut rt, 1)[0].user_data, 2);
    }
}
