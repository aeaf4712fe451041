//! Wake-ups: the ready queue that tokio's wakers fill, and the eventfd that tells a sleeping
//! consumer there is work. A waker firing on the thread that is driving the runtime only
//! queues its key; from any other thread it also signals the eventfd, once per batch. A
//! `reap` parked inside tokio's own driver leaves a waker here, which the first key wakes.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};

thread_local! {
    /// The id of the runtime this thread is driving right now (0: none).
    static DRIVING: Cell<u16> = const { Cell::new(0) };
}

/// Marks the current thread as driving runtime `id` until dropped.
pub(crate) struct DrivingGuard {
    previous: u16,
}

impl DrivingGuard {
    pub(crate) fn new(id: u16) -> DrivingGuard {
        DrivingGuard {
            previous: DRIVING.with(|d| d.replace(id)),
        }
    }
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        DRIVING.with(|d| d.set(self.previous));
    }
}

/// The keys queued for the next turn, and the waker of a `reap` parked until one comes.
#[derive(Default)]
struct Ready {
    keys: Vec<u64>,
    parked: Option<Waker>,
}

/// State shared between a runtime and every waker it has handed out.
pub(crate) struct Shared {
    pub(crate) rt_id: u16,
    ready: Mutex<Ready>,
    event_fd: OwnedFd,
    /// True from the first signal until the consumer drains the eventfd: coalesces writes.
    signaled: AtomicBool,
    /// Set by an explicit `RuntimeWaker::wake`: makes a blocked `reap` return.
    woken: AtomicBool,
}

impl Shared {
    pub(crate) fn new(rt_id: u16) -> io::Result<Shared> {
        // SAFETY: eventfd has no memory-safety preconditions; we check its result.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let event_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Shared {
            rt_id,
            ready: Mutex::new(Ready::default()),
            event_fd,
            signaled: AtomicBool::new(false),
            woken: AtomicBool::new(false),
        })
    }

    pub(crate) fn event_fd(&self) -> RawFd {
        self.event_fd.as_raw_fd()
    }

    /// Queues `key`, wakes a parked `reap` and, unless this thread is driving the runtime,
    /// signals the eventfd.
    pub(crate) fn push(&self, key: u64) {
        let parked = {
            let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
            ready.keys.push(key);
            ready.parked.take()
        };
        if let Some(w) = parked {
            w.wake();
        }
        if DRIVING.with(|d| d.get()) != self.rt_id {
            self.signal();
        }
    }

    /// For a `reap` parked in tokio's driver: `Ready` once a key is queued or the eventfd
    /// was signaled; otherwise leaves `cx`'s waker for the next [`push`](Self::push).
    pub(crate) fn poll_parked(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        if !ready.keys.is_empty() || self.signaled.load(Ordering::Acquire) {
            ready.parked = None;
            return Poll::Ready(());
        }
        match &mut ready.parked {
            Some(w) => w.clone_from(cx.waker()),
            None => ready.parked = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Forgets a parked `reap`'s waker (it stopped waiting).
    pub(crate) fn unpark(&self) {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .parked = None;
    }

    /// Makes the backend fd readable (at most one eventfd write until the next drain).
    pub(crate) fn signal(&self) {
        if !self.signaled.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd. A failure can only
            // be EAGAIN (counter saturated), in which case the fd is readable anyway.
            unsafe { libc::write(self.event_fd(), (&one as *const u64).cast(), 8) };
            let parked = self
                .ready
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .parked
                .take();
            if let Some(w) = parked {
                w.wake();
            }
        }
    }

    /// Resets the eventfd if it was signaled. Returns whether it was.
    pub(crate) fn drain_signal(&self) -> bool {
        if !self.signaled.load(Ordering::Acquire) {
            return false;
        }
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd.
        let n = unsafe { libc::read(self.event_fd(), (&mut value as *mut u64).cast(), 8) };
        if n != 8 {
            // The flag is set but its write has not landed yet: keep the flag; that write
            // makes the fd readable and a later turn drains it.
            return false;
        }
        // Read first, clear second. Clearing first would let a signal slip in between: its
        // write would be read here while its flag stayed set, so every later signal would
        // skip its write and a sleeping consumer would never wake (a lost wakeup). A signal
        // that still sees the flag set here pushed its key before, so this turn's
        // `take_ready` picks it up.
        self.signaled.store(false, Ordering::Release);
        true
    }

    /// Whether an explicit wake is waiting to be consumed by a `reap`.
    pub(crate) fn is_woken(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    /// Consumes an explicit wake (see `RuntimeWaker::wake`).
    pub(crate) fn take_woken(&self) -> bool {
        self.woken.swap(false, Ordering::AcqRel)
    }

    /// Swaps the ready queue with `into` (which should be empty), so no allocation happens
    /// in steady state.
    pub(crate) fn take_ready(&self, into: &mut Vec<u64>) {
        let mut q = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut q.keys, into);
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .is_empty()
    }
}

struct KeyWaker {
    key: u64,
    shared: Arc<Shared>,
}

impl Wake for KeyWaker {
    fn wake(self: Arc<Self>) {
        self.shared.push(self.key);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.push(self.key);
    }
}

/// A waker that queues `key` on `shared`'s ready queue.
pub(crate) fn waker(shared: &Arc<Shared>, key: u64) -> Waker {
    Waker::from(Arc::new(KeyWaker {
        key,
        shared: shared.clone(),
    }))
}

/// Two wakers, for two keys (a connection's read and write), sharing one allocation: an
/// idle connection holds one where two `KeyWaker`s would take two.
struct PairWaker {
    keys: [u64; 2],
    shared: Arc<Shared>,
}

/// The waker for `keys[0]` and the one for `keys[1]`, both queueing on `shared`.
pub(crate) fn waker_pair(shared: &Arc<Shared>, keys: [u64; 2]) -> (Waker, Waker) {
    let pair = Arc::new(PairWaker {
        keys,
        shared: shared.clone(),
    });
    let data = Arc::into_raw(pair).cast::<()>();
    // SAFETY: `data` is an `Arc<PairWaker>` turned raw, which owns one strong count; the
    // second waker takes one more. Each vtable's functions treat `data` as such an `Arc`.
    unsafe {
        Arc::increment_strong_count(data.cast::<PairWaker>());
        (
            Waker::from_raw(RawWaker::new(data, &PAIR_VTABLES[0])),
            Waker::from_raw(RawWaker::new(data, &PAIR_VTABLES[1])),
        )
    }
}

/// The vtables of the two wakers of a `PairWaker`: the same functions, with the key's
/// index as a constant.
static PAIR_VTABLES: [RawWakerVTable; 2] = [pair_vtable::<0>(), pair_vtable::<1>()];

const fn pair_vtable<const I: usize>() -> RawWakerVTable {
    RawWakerVTable::new(
        pair_clone::<I>,
        pair_wake::<I>,
        pair_wake_by_ref::<I>,
        pair_drop,
    )
}

/// # Safety
/// `data` is a live `Arc<PairWaker>` from `waker_pair` (as are all the `pair_*` functions').
unsafe fn pair_clone<const I: usize>(data: *const ()) -> RawWaker {
    // SAFETY: the caller's guarantee; the clone owns the count added here.
    unsafe { Arc::increment_strong_count(data.cast::<PairWaker>()) };
    RawWaker::new(data, &PAIR_VTABLES[I])
}

/// # Safety
/// As `pair_clone`; consumes the waker's count.
unsafe fn pair_wake<const I: usize>(data: *const ()) {
    // SAFETY: the caller's guarantee; this takes over the waker's count.
    let pair = unsafe { Arc::from_raw(data.cast::<PairWaker>()) };
    pair.shared.push(pair.keys[I]);
}

/// # Safety
/// As `pair_clone`.
unsafe fn pair_wake_by_ref<const I: usize>(data: *const ()) {
    // SAFETY: the caller's guarantee; borrowed, no count taken.
    let pair = unsafe { &*data.cast::<PairWaker>() };
    pair.shared.push(pair.keys[I]);
}

/// # Safety
/// As `pair_clone`; consumes the waker's count.
unsafe fn pair_drop(data: *const ()) {
    // SAFETY: the caller's guarantee; this releases the waker's count.
    unsafe { drop(Arc::from_raw(data.cast::<PairWaker>())) };
}

/// A thread-safe handle that wakes a runtime from any thread.
#[derive(Clone)]
pub struct RuntimeWaker {
    pub(crate) shared: Arc<Shared>,
}

impl RuntimeWaker {
    /// Makes the runtime's backend fd readable so that its consumer runs a turn, and makes a
    /// `reap` blocked on another thread return (possibly with no completions).
    pub fn wake(&self) {
        self.shared.woken.store(true, Ordering::Release);
        self.shared.signal();
    }
}

impl std::fmt::Debug for RuntimeWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeWaker")
            .field("runtime", &self.shared.rt_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waker_pair_queues_each_key_and_frees_its_allocation_once() {
        let shared = Arc::new(Shared::new(7).unwrap());
        let (r, w) = waker_pair(&shared, [11, 22]);
        let r2 = r.clone();
        assert!(r2.will_wake(&r));
        assert!(!r.will_wake(&w), "the two wakers must stay distinct");
        r.wake_by_ref();
        w.wake_by_ref();
        r2.wake();
        let w2 = w.clone();
        drop(w);
        w2.wake();
        let mut keys = Vec::new();
        shared.take_ready(&mut keys);
        assert_eq!(keys, [11, 22, 11, 22]);
        assert_eq!(Arc::strong_count(&shared), 2, "r still holds the pair");
        drop(r);
        assert_eq!(Arc::strong_count(&shared), 1, "the pair was not freed");
    }
}
