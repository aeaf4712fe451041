//! A backend fd closed under the runtime by a buggy caller. tokio's driver panics when its
//! epoll fd is gone and drops that fd while unwinding, which a debug build's I/O-safety check
//! turns into an abort; a panic hook puts /dev/null on the number first (while this thread
//! polls the driver), so that the drop closes an open file and `Runtime` can shut down.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::sync::Once;

thread_local! {
    /// The backend fd of the runtime whose tokio driver this thread is polling (-1: none).
    static POLLING: Cell<RawFd> = const { Cell::new(-1) };
}

/// Marks this thread as polling tokio's driver on `fd` until dropped (also on unwind,
/// which comes after the panic hook ran).
pub(super) struct PollingGuard(RawFd);

impl PollingGuard {
    pub(super) fn new(fd: RawFd) -> PollingGuard {
        PollingGuard(POLLING.replace(fd))
    }
}

impl Drop for PollingGuard {
    fn drop(&mut self) {
        POLLING.set(self.0);
    }
}

/// Installs the panic hook, once per process, in front of the hook set before it (which
/// still runs: the panic message is printed as usual). A hook set later replaces both, and
/// then a debug build aborts in that case again; release builds do not check. Not from a
/// panicking thread (a runtime made in a `Drop` during unwinding), where `set_hook` panics:
/// the next runtime installs it.
pub(super) fn install_hook() {
    static ONCE: Once = Once::new();
    if std::thread::panicking() {
        return;
    }
    ONCE.call_once(|| {
        let next = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(fd) = POLLING.try_with(Cell::get)
                && fd >= 0
                && fd_closed(fd)
            {
                put_dev_null_on(fd);
            }
            next(info);
        }));
    });
}

/// Whether no open file has the number `fd`.
pub(super) fn fd_closed(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any number only reads its flags.
    let rc = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
}

/// Opens /dev/null on the number `fd`, which no file holds, so that whoever owns the number
/// closes an open file when it drops.
pub(super) fn put_dev_null_on(fd: RawFd) {
    // SAFETY: opening /dev/null and moving it onto a number no file holds; dup3 replaces
    // nothing open.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        // The lowest free number is often the very one: then it is in place.
        if null >= 0 && null != fd {
            libc::dup3(null, fd, libc::O_CLOEXEC);
            libc::close(null);
        }
    }
}
