//! ns per submit -> turn round trip of an operation that is ready at once, on both
//! backends: (a) a `timer(0)` submitted and reaped by the next turn; (b) a 64-byte write
//! on a connected pair plus a read of those bytes (the inline path: both complete during
//! their submit calls, and the turn hands them out).
//!
//! `cargo bench -p polyio-core --bench roundtrip -- --quick` for a fast pass (plain
//! `cargo bench -p polyio-core -- --quick` also hands `--quick` to the lib's libtest
//! harness, which rejects it, unless core/Cargo.toml sets `[lib] bench = false`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use polyio_core::{
    Backend, Completion, Handle, ListenOptions, Options, ReadBuf, Runtime, Status, WriteBuf,
};

const BACKENDS: [(Backend, &str); 2] = [(Backend::Epoll, "epoll"), (Backend::Thread, "thread")];

fn runtime(backend: Backend) -> Runtime {
    let rt = Runtime::new(Options {
        backend,
        ..Options::default()
    })
    .expect("runtime");
    assert_eq!(rt.backend(), backend);
    rt
}

/// Reaps until the completions for every one of `uds` arrived; returns them in that order.
fn wait_all(rt: &mut Runtime, uds: &[u64]) -> Vec<Completion> {
    let mut out = Vec::new();
    while !uds
        .iter()
        .all(|ud| out.iter().any(|c: &Completion| c.user_data == *ud))
    {
        let n = rt.reap(&mut out, 16, Some(Duration::from_secs(10)));
        assert!(n > 0, "no completion for {uds:?}");
    }
    uds.iter()
        .map(|ud| {
            let i = out.iter().position(|c| c.user_data == *ud).unwrap();
            out.swap_remove(i)
        })
        .collect()
}

/// A connected (client, server) pair inside `rt`.
fn pair(rt: &mut Runtime) -> (Handle, Handle) {
    let l = rt
        .tcp_listen("127.0.0.1", 0, ListenOptions::default())
        .unwrap();
    let port = rt.local_addr(l).unwrap().port();
    rt.accept(l, 1).unwrap();
    rt.tcp_connect("127.0.0.1", port, 2).unwrap();
    let [s, c]: [Completion; 2] = wait_all(rt, &[1, 2]).try_into().unwrap();
    assert_eq!((s.status(), c.status()), (Status::Ok, Status::Ok));
    rt.set_nodelay(c.handle, true).unwrap();
    (c.handle, s.handle)
}

fn timer_zero(c: &mut Criterion) {
    let mut group = c.benchmark_group("timer0_submit_turn");
    for (backend, name) in BACKENDS {
        let mut rt = runtime(backend);
        let mut out = Vec::with_capacity(4);
        let mut ud = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                ud += 1;
                rt.timer(0, ud).unwrap();
                let n = rt.turn(&mut out, 4);
                assert!(n == 1 && out[0].user_data == ud, "timer(0) not reaped");
                black_box(out.pop());
            })
        });
    }
    group.finish();
}

fn write_read_64(c: &mut Criterion) {
    let mut group = c.benchmark_group("write_read_64_submit_turn");
    for (backend, name) in BACKENDS {
        let mut rt = runtime(backend);
        let (client, server) = pair(&mut rt);
        let mut out = Vec::with_capacity(4);
        let mut wbuf = vec![0x5a; 64];
        let mut rbuf = Vec::with_capacity(64);
        // Warm the path once so readiness is known before timing.
        rt.write(client, WriteBuf::from_vec(wbuf.clone()), 10)
            .unwrap();
        rt.read(server, ReadBuf::with_capacity(64), 11).unwrap();
        wait_all(&mut rt, &[10, 11]);
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.write(client, WriteBuf::from_vec(std::mem::take(&mut wbuf)), 1)
                    .unwrap();
                rt.read(server, ReadBuf::from_vec(std::mem::take(&mut rbuf)), 2)
                    .unwrap();
                // Usually both are already done (inline); otherwise wait for them.
                let mut got = 0;
                while got < 2 {
                    got += rt.turn(&mut out, 4);
                    if got < 2 {
                        rt.reap(&mut out, 4, Some(Duration::from_secs(10)));
                        got = out.len();
                    }
                }
                for c in out.drain(..) {
                    match c.user_data {
                        1 => {
                            assert_eq!(c.result, 64);
                            wbuf = c.buf.unwrap();
                        }
                        _ => {
                            assert_eq!(c.result, 64, "a short read");
                            rbuf = c.buf.unwrap();
                        }
                    }
                }
                black_box(&rbuf);
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = timer_zero, write_read_64
}
criterion_main!(benches);
