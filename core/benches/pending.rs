//! Cancel, deadline and shutdown with 100,000 operations pending: each is O(1) per op (a
//! per-`user_data` list finds the op; a cancelled op leaves its connection's queue at the
//! front or is skipped later), so the whole batch costs milliseconds, not seconds.
//!
//! `cargo bench -p polyio-core --bench pending -- --quick`. Each figure is the time for all
//! 100,000 calls (one iteration), setup excluded.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use polyio_core::{Completion, Handle, ListenOptions, Options, ReadBuf, Runtime, Status};

const PENDING: u64 = 100_000;

/// A runtime with room for `PENDING` ops, a connected pair, and `PENDING` reads queued on
/// one connection (user_data 1000..), none of which can complete (nobody writes).
fn loaded() -> (Runtime, Handle) {
    let mut rt = Runtime::new(Options {
        max_ops: 4 * PENDING as usize,
        ..Options::default()
    })
    .expect("runtime");
    let l = rt
        .tcp_listen("127.0.0.1", 0, ListenOptions::default())
        .unwrap();
    let port = rt.local_addr(l).unwrap().port();
    rt.accept(l, 1).unwrap();
    rt.tcp_connect("127.0.0.1", port, 2).unwrap();
    let mut out: Vec<Completion> = Vec::new();
    while out.len() < 2 {
        assert!(rt.reap(&mut out, 2, Some(Duration::from_secs(10))) > 0);
    }
    let c = out.iter().find(|c| c.user_data == 2).unwrap();
    assert_eq!(c.status(), Status::Ok);
    let h = c.handle;
    for i in 0..PENDING {
        rt.read(h, ReadBuf::with_capacity(1), 1000 + i).unwrap();
    }
    (rt, h)
}

/// Times `f` on a freshly loaded runtime per iteration. Loading is not counted, and neither
/// is dropping the runtime `f` hands back.
fn timed(b: &mut criterion::Bencher<'_>, f: impl Fn(Runtime) -> Option<Runtime>) {
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let (rt, _) = loaded();
            let t = Instant::now();
            let back = f(rt);
            total += t.elapsed();
            drop(back);
        }
        total
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pending_100k");
    g.sample_size(10);
    g.bench_function("cancel_each_newest_first", |b| {
        timed(b, |mut rt| {
            for i in (0..PENDING).rev() {
                rt.cancel(1000 + i).unwrap();
            }
            Some(rt)
        })
    });
    g.bench_function("cancel_each_oldest_first", |b| {
        timed(b, |mut rt| {
            for i in 0..PENDING {
                rt.cancel(1000 + i).unwrap();
            }
            Some(rt)
        })
    });
    g.bench_function("deadline_each", |b| {
        timed(b, |mut rt| {
            for i in 0..PENDING {
                rt.deadline(1000 + i, 60_000).unwrap();
            }
            Some(rt)
        })
    });
    g.bench_function("shutdown_all", |b| {
        timed(b, |mut rt| {
            rt.shutdown_all();
            Some(rt)
        })
    });
    g.bench_function("drop_runtime", |b| {
        timed(b, |rt| {
            drop(rt);
            None
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
