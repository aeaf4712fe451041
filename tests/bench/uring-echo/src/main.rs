//! uring-echo: a raw io_uring TCP echo server, the floor of what a ring backend could cost per
//! request. Multi-shot accept, multi-shot recv into a provided-buffer ring, each received
//! buffer sent back from where it landed and given back to the ring when the send completes.
//!
//! Two shapes of loop, the two ways polyio's consumers would drive a ring:
//! - default (a C program blocking in `polyio_reap`): one `io_uring_enter` per loop submits
//!   every queued send and re-arm and waits for the next completion (`SINGLE_ISSUER |
//!   DEFER_TASKRUN`, so completions are posted only inside that call).
//! - `--epoll` (Python's or Node's loop watching the backend fd): the loop waits in
//!   `epoll_wait` on the ring fd, reads completions from shared memory, and submits what they
//!   queued with one `io_uring_enter` that does not wait (no `DEFER_TASKRUN`: the kernel posts
//!   completions on its own, so the ring fd turns readable).
//! - `--no-defer`: the first shape on a ring without `DEFER_TASKRUN`, the loop entering only
//!   when no completion is waiting.
//!
//! A connection's sends are not ordered against each other: the load generator keeps one
//! request in flight per connection, so two sends of one connection are rarely in flight at
//! once, and then both go out inline in submission order (a send buffer far larger than a
//! request never makes the first wait). A backend would link them or queue them per
//! connection.
//!
//! Usage: `uring-echo [--epoll | --no-defer] HOST PORT` or `uring-echo [--epoll | --no-defer]
//! --unix PATH`.

use std::net::{TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::{BufRingEntry, Fd};
use io_uring::{IoUring, cqueue, opcode, squeue};

/// Submission queue entries.
const ENTRIES: u32 = 256;
/// Buffers in the provided-buffer ring (a power of two).
const BUFS: u16 = 512;
/// Size of each provided buffer.
const BUF_SIZE: usize = 16 * 1024;
/// The provided-buffer group every receive takes from.
const BGID: u16 = 0;

/// What a completion is for: the top byte of its `user_data`.
const ACCEPT: u64 = 1 << 56;
const RECV: u64 = 2 << 56;
const SEND: u64 = 3 << 56;
const KIND: u64 = 0xff << 56;

/// The provided-buffer ring: the entries the kernel picks receive buffers from, and the
/// memory they name.
struct BufRing {
    entries: *mut BufRingEntry,
    pool: Vec<u8>,
    tail: u16,
}

impl BufRing {
    /// Maps the entries, registers them as group `BGID` and hands the kernel every buffer.
    fn new(ring: &IoUring) -> std::io::Result<Self> {
        let bytes = usize::from(BUFS) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping, no address hint; the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `addr` is a page-aligned mapping of `BUFS` entries that lives as long as
        // the process (never unmapped), which outlives the ring.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(addr as u64, BUFS, BGID, 0)?
        };
        let mut this = BufRing {
            entries: addr.cast(),
            pool: vec![0; usize::from(BUFS) * BUF_SIZE],
            tail: 0,
        };
        for bid in 0..BUFS {
            this.push(bid);
        }
        this.publish();
        Ok(this)
    }

    /// Queues buffer `bid` for the kernel (visible after `publish`).
    fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (BUFS - 1));
        let addr = self.pool.as_mut_ptr() as u64 + u64::from(bid) * BUF_SIZE as u64;
        // SAFETY: `slot` < BUFS, inside the mapping; the kernel reads only entries below the
        // published tail, and this one is past it.
        let entry = unsafe { &mut *self.entries.add(slot) };
        entry.set_addr(addr);
        entry.set_len(BUF_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the pushed buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field of the first entry, inside the mapping, which the kernel
        // reads as an atomic u16.
        let tail = unsafe { &*BufRingEntry::tail(self.entries).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// The bytes buffer `bid` holds from `off` to `off + len`.
    fn bytes(&self, bid: u16, off: usize, len: usize) -> *const u8 {
        self.pool[usize::from(bid) * BUF_SIZE + off..][..len].as_ptr()
    }
}

/// The server: its ring, its buffers, and per buffer the send it is lent to.
struct Echo {
    ring: IoUring,
    bufs: BufRing,
    /// Per buffer id: (fd, bytes already sent, bytes to send).
    sending: Vec<(RawFd, usize, usize)>,
    listener: RawFd,
    /// Whether connections are TCP (and so get `TCP_NODELAY`).
    tcp: bool,
    /// Buffers given back since the last publish.
    returned: bool,
}

impl Echo {
    /// Queues `sqe`, submitting what is queued first when the queue is full.
    fn push(&mut self, sqe: &squeue::Entry) {
        loop {
            // SAFETY: every buffer an entry names lives in `bufs.pool` until its completion.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                eprintln!("uring-echo: submit failed: {e}");
            }
        }
    }

    fn arm_accept(&mut self) {
        let sqe = opcode::AcceptMulti::new(Fd(self.listener))
            .build()
            .user_data(ACCEPT);
        self.push(&sqe);
    }

    fn arm_recv(&mut self, fd: RawFd) {
        let sqe = opcode::RecvMulti::new(Fd(fd), BGID)
            .build()
            .user_data(RECV | fd as u64);
        self.push(&sqe);
    }

    fn send(&mut self, fd: RawFd, bid: u16) {
        let (_, off, len) = self.sending[usize::from(bid)];
        let ptr = self.bufs.bytes(bid, off, len - off);
        let sqe = opcode::Send::new(Fd(fd), ptr, (len - off) as u32)
            .build()
            .user_data(SEND | (u64::from(bid) << 32) | fd as u64);
        self.push(&sqe);
    }

    /// Handles every completion in the queue; returns how many there were.
    fn reap(&mut self) -> usize {
        let mut n = 0;
        // One entry at a time: the queue borrows the ring, which handling the entry needs.
        loop {
            let next = self.ring.completion().next();
            let Some(cqe) = next else { break };
            self.complete(cqe.user_data(), cqe.result(), cqe.flags());
            n += 1;
        }
        if self.returned {
            self.bufs.publish();
            self.returned = false;
        }
        n
    }

    fn complete(&mut self, data: u64, res: i32, flags: u32) {
        let fd = (data & 0xffff_ffff) as RawFd;
        match data & KIND {
            ACCEPT => {
                if res >= 0 {
                    if self.tcp {
                        set_nodelay(res);
                    }
                    self.arm_recv(res);
                }
                if !cqueue::more(flags) {
                    self.arm_accept();
                }
            }
            RECV => match (res, cqueue::buffer_select(flags)) {
                (n, Some(bid)) if n > 0 => {
                    self.sending[usize::from(bid)] = (fd, 0, n as usize);
                    self.send(fd, bid);
                    if !cqueue::more(flags) {
                        self.arm_recv(fd);
                    }
                }
                (n, _) if n == -libc::ENOBUFS => self.arm_recv(fd),
                _ => {
                    // End of stream or an error: the multi-shot receive is over.
                    // SAFETY: `fd` is the connection this receive was armed on, closed once.
                    unsafe { libc::close(fd) };
                }
            },
            SEND => {
                let bid = ((data >> 32) & 0xffff) as u16;
                let (_, off, len) = self.sending[usize::from(bid)];
                if res > 0 && off + (res as usize) < len {
                    self.sending[usize::from(bid)].1 += res as usize;
                    self.send(fd, bid);
                } else {
                    self.bufs.push(bid);
                    self.returned = true;
                }
            }
            _ => {}
        }
    }

    /// The C shape: one `io_uring_enter` per loop submits and waits.
    fn run_blocking(&mut self) -> std::io::Result<()> {
        loop {
            // Completions already posted (without DEFER_TASKRUN the kernel posts them on any
            // way back to user space) need no syscall: enter only with nothing to handle.
            if self.reap() > 0 && self.ring.submission().is_empty() {
                continue;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The Python/Node shape: wait in `epoll_wait` on the ring fd, then reap and submit.
    fn run_epoll(&mut self) -> std::io::Result<()> {
        // SAFETY: plain syscall, result checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: `ev` is a valid event for the call's duration.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, self.ring.as_raw_fd(), &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        loop {
            self.reap();
            if !self.ring.submission().is_empty() {
                self.ring.submit()?;
                if !self.ring.completion().is_empty() {
                    continue;
                }
            }
            let mut out = [libc::epoll_event { events: 0, u64: 0 }; 1];
            // SAFETY: `out` has room for the one event asked for.
            let n = unsafe { libc::epoll_wait(ep, out.as_mut_ptr(), 1, -1) };
            if n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
}

fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid c_int for the call's duration.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

fn serve(listener: OwnedFd, tcp: bool, epoll: bool, defer: bool) -> std::io::Result<()> {
    let mut builder = IoUring::builder();
    if defer {
        builder.setup_single_issuer().setup_defer_taskrun();
    }
    let ring = builder.build(ENTRIES)?;
    let bufs = BufRing::new(&ring)?;
    let mut echo = Echo {
        ring,
        bufs,
        sending: vec![(0, 0, 0); usize::from(BUFS)],
        listener: listener.as_raw_fd(),
        tcp,
        returned: false,
    };
    echo.arm_accept();
    if epoll {
        echo.run_epoll()
    } else {
        echo.run_blocking()
    }
}

/// The listening socket `args` name: `HOST PORT` or `--unix PATH`; and whether it is TCP.
fn listen(args: &[String]) -> Result<(OwnedFd, bool), String> {
    match args {
        [flag, path] if flag == "--unix" => UnixListener::bind(path)
            .map(|l| (OwnedFd::from(l), false))
            .map_err(|e| format!("cannot listen on {path}: {e}")),
        [host, port] => {
            let addr = port
                .parse::<u16>()
                .ok()
                .and_then(|p| (host.as_str(), p).to_socket_addrs().ok()?.next())
                .ok_or_else(|| format!("invalid address {host}:{port}"))?;
            TcpListener::bind(addr)
                .map(|l| (OwnedFd::from(l), true))
                .map_err(|e| format!("cannot listen on {addr}: {e}"))
        }
        _ => Err("usage: uring-echo [--epoll | --no-defer] (HOST PORT | --unix PATH)".into()),
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let epoll = args.first().is_some_and(|a| a == "--epoll");
    if epoll {
        args.remove(0);
    }
    let no_defer = args.first().is_some_and(|a| a == "--no-defer");
    if no_defer {
        args.remove(0);
    }
    let (listener, tcp) = match listen(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("uring-echo: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(listener, tcp, epoll, !epoll && !no_defer) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uring-echo: {e}");
            ExitCode::from(1)
        }
    }
}
