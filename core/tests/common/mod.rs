//! Helpers shared by the core test files: runtimes on each backend, and reaping until a
//! given completion arrives.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use polyio_core::{Backend, Completion, Handle, ListenOptions, Options, Runtime, Status};
use socket2::{Domain, Socket, Type};

pub const BACKENDS: [Backend; 2] = [Backend::Epoll, Backend::Thread];

pub fn runtime(backend: Backend) -> Runtime {
    let rt = Runtime::new(Options {
        backend,
        ..Options::default()
    })
    .expect("runtime");
    assert_eq!(rt.backend(), backend);
    rt
}

/// Reaps completions into a backlog until one with `user_data` shows up (10 s limit).
pub struct Reaper {
    pub backlog: VecDeque<Completion>,
}

impl Reaper {
    pub fn new() -> Reaper {
        Reaper {
            backlog: VecDeque::new(),
        }
    }

    pub fn wait(&mut self, rt: &mut Runtime, user_data: u64) -> Completion {
        let start = std::time::Instant::now();
        loop {
            if let Some(i) = self.backlog.iter().position(|c| c.user_data == user_data) {
                return self.backlog.remove(i).unwrap();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no completion for user_data {user_data}"
            );
            let mut out = Vec::new();
            rt.reap(&mut out, 64, Some(Duration::from_millis(100)));
            self.backlog.extend(out);
        }
    }
}

/// A listener on 127.0.0.1 with an ephemeral port.
pub fn listen(rt: &mut Runtime) -> (Handle, u16) {
    let l = rt
        .tcp_listen("127.0.0.1", 0, ListenOptions::default())
        .expect("listen");
    let port = rt.local_addr(l).expect("local_addr").port();
    (l, port)
}

/// A connected pair (client, server) inside one runtime.
pub fn pair(rt: &mut Runtime, r: &mut Reaper) -> (Handle, Handle, Handle) {
    let (l, port) = listen(rt);
    rt.accept(l, 9001).unwrap();
    rt.tcp_connect("127.0.0.1", port, 9002).unwrap();
    let a = r.wait(rt, 9001);
    let c = r.wait(rt, 9002);
    assert_eq!(a.status(), Status::Ok);
    assert_eq!(c.status(), Status::Ok);
    (c.handle, a.handle, l)
}

/// A listener whose accept queue is full and never drained: connects to it stay in flight
/// (the kernel drops their SYNs). The returned sockets keep it that way while alive.
pub fn blackhole() -> (SocketAddr, Vec<Socket>) {
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut keep = vec![l];
    for _ in 0..4 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        keep.push(s);
    }
    (addr, keep)
}
