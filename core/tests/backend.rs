//! The backend fd: the runtime finds tokio's own epoll instance even when the application's
//! epoll lists files under the same fd numbers as the runtime's (one test: it relies on which
//! fd numbers are free, so nothing else in this binary may open fds meanwhile).

use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use polyio_core::{Backend, OpCode, Options, Runtime};

/// How many fd numbers the application's epoll names before the runtime starts.
const SPAN: usize = 64;
/// Where the application keeps its dups, clear of the numbers the runtime will take.
const HIGH_FD: RawFd = 512;

fn owned(fd: RawFd) -> OwnedFd {
    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn readable_now(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// The application's epoll, made first, then SPAN eventfds registered with it, dup'd to
/// high numbers (which keeps them registered) and closed: the lowest free fd numbers, the
/// ones the runtime takes next, are each listed by the application's epoll as a `tfd:`,
/// with an eventfd's inode (which every eventfd shares).
fn app_epoll_naming_the_next_fds() -> (OwnedFd, Vec<OwnedFd>) {
    // SAFETY: no pointers; the result is checked by `owned`.
    let ep = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) });
    let mut low = Vec::with_capacity(SPAN);
    let mut high = Vec::with_capacity(SPAN);
    for _ in 0..SPAN {
        // SAFETY: no pointers; the result is checked by `owned`.
        let efd = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) });
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: both fds are open; `ev` is a live epoll_event.
        let r = unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                efd.as_raw_fd(),
                &mut ev,
            )
        };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        // SAFETY: dups an open fd; the result is checked by `owned`.
        let dup = owned(unsafe { libc::fcntl(efd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH_FD) });
        low.push(efd);
        high.push(dup);
    }
    drop(low);
    (ep, high)
}

#[test]
fn backend_fd_is_the_runtimes_epoll_not_the_applications() {
    let (app_ep, _app_fds) = app_epoll_naming_the_next_fds();
    let mut rt = Runtime::new(Options::default()).expect("runtime");
    assert_eq!(rt.backend(), Backend::Epoll);
    let fd = rt.backend_fd();
    assert_ne!(
        fd,
        app_ep.as_raw_fd(),
        "the backend fd is the application's epoll"
    );

    // A wake makes the backend fd readable at once.
    rt.waker().wake();
    assert!(readable_now(fd), "a wake left the backend fd quiet");
    let mut out = Vec::new();
    assert_eq!(rt.reap(&mut out, 4, Some(Duration::ZERO)), 0);

    // A connection is waiting: a reap with no time limit returns its accept. On the wrong
    // epoll it would sleep forever; the watchdog turns that into a failure.
    let l = rt
        .tcp_listen("127.0.0.1", 0, Default::default())
        .expect("listen");
    let port = rt.local_addr(l).expect("local_addr").port();
    rt.accept(l, 7).expect("accept");
    let _client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (done, watchdog) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = watchdog.recv_timeout(Duration::from_secs(30)) {
            eprintln!("reap slept with an accept ready: the backend fd missed the wake");
            std::process::exit(1);
        }
    });
    let n = rt.reap(&mut out, 4, None);
    let _ = done.send(());
    assert_eq!(n, 1);
    assert_eq!(
        (out[0].op, out[0].user_data, out[0].result),
        (OpCode::Accept, 7, 0)
    );
}
