//! UDP: binding (with its socket options), connecting to a default peer, sending datagrams,
//! receiving them (one at a time or multi-shot, each with its source address and a
//! truncation flag), multicast membership and the IP options. Each datagram is one
//! completion; a UDP socket keeps a receive queue and a send queue of op ids, in order.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use socket2::{Domain, SockAddr, SockAddrStorage, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::buf::{ReadBuf, ReadInner, WriteBuf};
use crate::handle::Handle;
use crate::op::{FLAG_TRUNC, Key, Op, OpCode, OpState};
use crate::opqueue::OpQueue;
use crate::runtime::Runtime;
use crate::socket::{ErrorWatch, Resource, Udp};
use crate::status::Status;

/// Datagrams a multi-shot receive takes in a row before it lets other sockets go first.
const RECV_BURST: usize = 32;

/// Datagrams one `recvmmsg` of a multi-shot receive takes at most.
const RECV_BATCH: usize = 8;

/// UDP socket settings for [`Runtime::udp_bind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpOptions {
    /// Sets `SO_REUSEADDR` (several sockets may bind one multicast address and port).
    pub reuse_addr: bool,
    /// Sets `SO_REUSEPORT`, so several runtimes (one per core) can share a port.
    pub reuse_port: bool,
    /// Sets `SO_BROADCAST`: sends to a broadcast address are allowed.
    pub broadcast: bool,
    /// Sets `IPV6_V6ONLY` on an IPv6 socket (ignored for IPv4).
    pub ipv6_only: bool,
}

impl Runtime {
    /// Opens a UDP socket bound to `addr` (port 0: an ephemeral port; see
    /// [`local_addr`](Self::local_addr)). Synchronous: no completion.
    pub fn udp_bind(&mut self, addr: SocketAddr, options: UdpOptions) -> Result<Handle, Status> {
        self.live()?;
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
        if options.reuse_addr {
            socket.set_reuse_address(true)?;
        }
        if options.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if options.broadcast {
            socket.set_broadcast(true)?;
        }
        if options.ipv6_only && addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = {
            let _e = self.tokio.enter();
            UdpSocket::from_std(socket.into())?
        };
        let noop = Waker::noop().clone();
        let h = self
            .resources
            .insert(Resource::Udp(Udp {
                socket: Arc::new(socket),
                errors: None,
                recvs: OpQueue::new(),
                sends: OpQueue::new(),
                recv_waker: noop.clone(),
                send_waker: noop,
            }))
            .ok_or(Status::QueueFull)?;
        let (rw, sw) = (self.waker_for(Key::Recv(h)), self.waker_for(Key::Send(h)));
        if let Some(Resource::Udp(u)) = self.resources.get_mut(h) {
            u.recv_waker = rw;
            u.send_waker = sw;
        }
        Ok(h)
    }

    /// Connects UDP socket `h` to a default peer (`None`: dissolves the association): sends
    /// without an address go there, and only its datagrams are received. Synchronous. Port 0
    /// is `InvalidArgument`, as in Node's dgram (Linux would take it, then report the socket
    /// not connected and refuse every send).
    pub fn udp_connect(&mut self, h: Handle, peer: Option<SocketAddr>) -> Result<(), Status> {
        let u = self.udp_mut(h)?;
        if peer.is_some_and(|a| a.port() == 0) {
            return Err(Status::InvalidArgument);
        }
        let sock = socket2::SockRef::from(&*u.socket);
        match peer {
            Some(addr) => {
                sock.connect(&addr.into())?;
                // Only a connected socket is told of ICMP errors: watch for them from now.
                if u.errors.is_none() {
                    let s = u.socket.clone();
                    u.errors = Some(Box::pin(async move { s.ready(Interest::ERROR).await }));
                }
            }
            None => {
                // connect(2) with AF_UNSPEC dissolves the association.
                // SAFETY: a zeroed storage is a valid address of family AF_UNSPEC (0).
                let unspec = unsafe {
                    SockAddr::new(
                        SockAddrStorage::zeroed(),
                        std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
                    )
                };
                match sock.connect(&unspec) {
                    // Linux may report EAFNOSUPPORT though the association is gone.
                    Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
                    r => r?,
                }
            }
        }
        Ok(())
    }

    /// Sends `buf` as one datagram to `to`, or (`None`) to the connected peer. Completes with
    /// its length once the kernel took it. Queued sends go out in order. A datagram too
    /// long for the socket fails with `MessageTooLong`; an unconnected socket sending
    /// without an address with `NotConnected` (or the kernel's `EDESTADDRREQ`).
    pub fn udp_send(
        &mut self,
        h: Handle,
        buf: WriteBuf,
        to: Option<SocketAddr>,
        user_data: u64,
    ) -> Result<(), Status> {
        self.admit()?;
        if buf.len() > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        self.udp_mut(h)?;
        let id = self.new_op(
            user_data,
            OpCode::Send,
            h,
            OpState::Send {
                buf,
                to: to.map(Box::new),
            },
        )?;
        let u = self.udp_mut(h)?;
        u.sends.push_back(id);
        if u.sends.len() == 1 {
            self.inline_io(|rt| rt.progress_send(h));
        }
        Ok(())
    }

    /// Sends `data` as one datagram now, without an operation and so without a completion,
    /// if the kernel takes it at once: returns true. False when the socket is not writable
    /// now or sends are already queued on `h` (this one would overtake them): queue it with
    /// [`udp_send`](Self::udp_send). Errors are the send's own (`MessageTooLong`,
    /// `ConnectionRefused` after an ICMP port unreachable, ...).
    pub fn udp_try_send(
        &mut self,
        h: Handle,
        data: &[u8],
        to: Option<SocketAddr>,
    ) -> Result<bool, Status> {
        self.live()?;
        let u = self.udp_mut(h)?;
        if !u.sends.is_empty() {
            return Ok(false);
        }
        match send_to(&u.socket, data, to) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(Status::from(e)),
        }
    }

    /// Receives one datagram into `buf`. Completes with its length (at most the buffer's;
    /// a longer datagram is cut and flagged [`FLAG_TRUNC`](crate::FLAG_TRUNC)) and its source
    /// in [`Completion::addr`](crate::Completion::addr). Queued receives complete in order;
    /// a cancelled receive takes no datagram. An error the kernel reports for an earlier
    /// send (an ICMP port unreachable on a connected socket: `ConnectionRefused`) ends it.
    pub fn udp_recv(&mut self, h: Handle, buf: ReadBuf, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if buf.capacity() == 0 || buf.capacity() > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        self.queue_recv(h, user_data, OpState::Recv(buf))
    }

    /// Receives continuously: every datagram (its first `cap` bytes, flagged `FLAG_TRUNC`
    /// when longer) completes with its length, an owned buffer holding it and its source
    /// address, flagged [`FLAG_MORE`](crate::FLAG_MORE). An error the kernel reports for an
    /// earlier send (`ConnectionRefused`, ...) completes with the error, also flagged MORE,
    /// and the receive stays armed (asyncio's `error_received`). It ends with one
    /// completion without `FLAG_MORE`: `Canceled` (by [`cancel`](Self::cancel) or
    /// [`close`](Self::close)) or `TimedOut` (a deadline). Hand the buffers back with
    /// [`recycle`](Self::recycle).
    pub fn udp_recv_multishot(
        &mut self,
        h: Handle,
        cap: usize,
        user_data: u64,
    ) -> Result<(), Status> {
        self.admit()?;
        if cap == 0 || cap > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        self.queue_recv(h, user_data, OpState::RecvMulti { cap })
    }

    fn queue_recv(&mut self, h: Handle, user_data: u64, state: OpState) -> Result<(), Status> {
        self.udp_mut(h)?;
        let id = self.new_op(user_data, OpCode::Recv, h, state)?;
        let u = self.udp_mut(h)?;
        u.recvs.push_back(id);
        if u.recvs.len() == 1 {
            self.inline_io(|rt| rt.progress_recv(h));
        }
        Ok(())
    }

    /// Sends queued on UDP socket `h` that have not completed (0 for a stale handle).
    pub fn udp_pending_sends(&self, h: Handle) -> usize {
        match self.resources.get(h) {
            Some(Resource::Udp(u)) => self.q.live_count(&u.sends),
            Some(Resource::Conn(_) | Resource::Listener(_) | Resource::File(_)) | None => 0,
        }
    }

    /// Allows or forbids sends to a broadcast address (`SO_BROADCAST`).
    pub fn udp_set_broadcast(&mut self, h: Handle, on: bool) -> Result<(), Status> {
        self.udp_mut(h)?;
        self.with_socket(h, |s| s.set_broadcast(on))
    }

    /// The unicast hop limit (`IP_TTL`, or `IPV6_UNICAST_HOPS` on an IPv6 socket), 1 to 255.
    pub fn udp_set_ttl(&mut self, h: Handle, ttl: u32) -> Result<(), Status> {
        if !(1..=255).contains(&ttl) {
            return Err(Status::InvalidArgument);
        }
        let v6 = self.udp_is_v6(h)?;
        self.with_socket(h, |s| {
            if v6 {
                s.set_unicast_hops_v6(ttl)
            } else {
                s.set_ttl_v4(ttl)
            }
        })
    }

    /// The multicast hop limit (`IP_MULTICAST_TTL` / `IPV6_MULTICAST_HOPS`), 0 to 255.
    pub fn udp_set_multicast_ttl(&mut self, h: Handle, ttl: u32) -> Result<(), Status> {
        if ttl > 255 {
            return Err(Status::InvalidArgument);
        }
        let v6 = self.udp_is_v6(h)?;
        self.with_socket(h, |s| {
            if v6 {
                s.set_multicast_hops_v6(ttl)
            } else {
                s.set_multicast_ttl_v4(ttl)
            }
        })
    }

    /// Whether this host's own multicast sends loop back to it (`IP_MULTICAST_LOOP` /
    /// `IPV6_MULTICAST_LOOP`).
    pub fn udp_set_multicast_loop(&mut self, h: Handle, on: bool) -> Result<(), Status> {
        let v6 = self.udp_is_v6(h)?;
        self.with_socket(h, |s| {
            if v6 {
                s.set_multicast_loop_v6(on)
            } else {
                s.set_multicast_loop_v4(on)
            }
        })
    }

    /// Joins multicast group `group` on the interface with address `interface` (IPv4; `None`:
    /// the system's choice) or index (IPv6: `interface` is ignored, the default interface is
    /// used). `InvalidArgument` when `group` is not a multicast address.
    pub fn udp_join_multicast(
        &mut self,
        h: Handle,
        group: IpAddr,
        interface: Option<IpAddr>,
    ) -> Result<(), Status> {
        self.membership(h, group, interface, true)
    }

    /// Leaves a group joined with [`udp_join_multicast`](Self::udp_join_multicast).
    pub fn udp_leave_multicast(
        &mut self,
        h: Handle,
        group: IpAddr,
        interface: Option<IpAddr>,
    ) -> Result<(), Status> {
        self.membership(h, group, interface, false)
    }

    fn membership(
        &mut self,
        h: Handle,
        group: IpAddr,
        interface: Option<IpAddr>,
        join: bool,
    ) -> Result<(), Status> {
        self.udp_mut(h)?;
        if !group.is_multicast() {
            return Err(Status::InvalidArgument);
        }
        match group {
            IpAddr::V4(g) => {
                let iface = match interface {
                    None => std::net::Ipv4Addr::UNSPECIFIED,
                    Some(IpAddr::V4(i)) => i,
                    Some(IpAddr::V6(_)) => return Err(Status::InvalidArgument),
                };
                self.with_socket(h, |s| {
                    if join {
                        s.join_multicast_v4(&g, &iface)
                    } else {
                        s.leave_multicast_v4(&g, &iface)
                    }
                })
            }
            IpAddr::V6(g) => self.with_socket(h, |s| {
                if join {
                    s.join_multicast_v6(&g, 0)
                } else {
                    s.leave_multicast_v6(&g, 0)
                }
            }),
        }
    }

    fn udp_is_v6(&mut self, h: Handle) -> Result<bool, Status> {
        let u = self.udp_mut(h)?;
        Ok(u.socket.local_addr()?.is_ipv6())
    }

    pub(crate) fn udp_mut(&mut self, h: Handle) -> Result<&mut Udp, Status> {
        match self.resources.get_mut(h) {
            Some(Resource::Udp(u)) => Ok(u),
            Some(Resource::Conn(_) | Resource::Listener(_) | Resource::File(_)) => {
                Err(Status::InvalidArgument)
            }
            None => Err(Status::BadHandle),
        }
    }

    // ---- progress ----------------------------------------------------------------------

    pub(crate) fn progress_recv(&mut self, h: Handle) {
        let Some(Resource::Udp(u)) = self.resources.get_mut(h) else {
            return;
        };
        let q = &mut self.q;
        let mut burst = 0;
        while let Some(id) = u.recvs.front() {
            let multi = match q.op(id) {
                Some(Op {
                    state: OpState::Recv(_),
                    ..
                }) => None,
                Some(Op {
                    state: OpState::RecvMulti { cap },
                    ..
                }) => Some(*cap),
                _ => {
                    u.recvs.pop_front();
                    continue;
                }
            };
            let mut cx = Context::from_waker(&u.recv_waker);
            // The readiness the recvmsg below consumes (and clears when it finds nothing).
            let interest = match u.socket.poll_recv_ready(&mut cx) {
                // Not readable; but an error pending on a connected socket is for a receive.
                Poll::Pending if !error_pending(&mut u.errors, &u.socket, &mut cx) => return,
                Poll::Pending => Interest::ERROR,
                Poll::Ready(Err(e)) => {
                    u.recvs.pop_front();
                    q.finish_datagram(id, Err(Status::from(e)), h, None, 0);
                    continue;
                }
                Poll::Ready(Ok(())) => Interest::READABLE,
            };
            let Some(cap) = multi else {
                let Some(Op {
                    state: OpState::Recv(buf),
                    ..
                }) = q.op_mut(id)
                else {
                    return;
                };
                match recv_from(&u.socket, buf, usize::MAX, interest) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        u.recvs.pop_front();
                        q.finish_datagram(id, Err(Status::from(e)), h, None, 0);
                    }
                    Ok(d) => {
                        u.recvs.pop_front();
                        q.finish_datagram(id, Ok(d.len), h, Some(d.from), d.flags);
                    }
                }
                continue;
            };
            // Two slots first: a lone datagram comes with the news that the queue is empty
            // (no recvmsg that would only say EAGAIN); a full batch asks for more next.
            let want = if burst == 0 { 2 } else { RECV_BATCH }.min(RECV_BURST - burst);
            let mut bufs: [Vec<u8>; RECV_BATCH] = Default::default();
            for b in &mut bufs[..want] {
                *b = q.take_buf(cap);
            }
            let mut got = [NO_DATAGRAM; RECV_BATCH];
            let r = recv_batch(
                &u.socket,
                &mut bufs[..want],
                &mut got[..want],
                cap,
                interest,
            );
            let n = match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => {
                    q.post_more_error(id, Status::from(e), h);
                    1
                }
                Ok(n) => {
                    for (b, d) in bufs.iter_mut().zip(&got).take(n) {
                        q.post_more_datagram(id, d.len, h, std::mem::take(b), d.from, d.flags);
                    }
                    n
                }
            };
            for b in bufs.into_iter().take(want) {
                if b.capacity() > 0 {
                    q.spare(b);
                }
            }
            if n == 0 {
                continue;
            }
            burst += n;
            if burst >= RECV_BURST {
                // Let other sockets go first; come back in the next round of this turn.
                self.shared.push(Key::Recv(h).encode());
                return;
            }
        }
    }

    pub(crate) fn progress_send(&mut self, h: Handle) {
        let Some(Resource::Udp(u)) = self.resources.get_mut(h) else {
            return;
        };
        let q = &mut self.q;
        while let Some(id) = u.sends.front() {
            let Some(Op {
                state: OpState::Send { buf, to },
                ..
            }) = q.op(id)
            else {
                u.sends.pop_front();
                continue;
            };
            let mut cx = Context::from_waker(&u.send_waker);
            match u.socket.poll_send_ready(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Err(e)) => {
                    u.sends.pop_front();
                    q.finish(id, Err(Status::from(e)), h);
                    continue;
                }
                Poll::Ready(Ok(())) => {}
            }
            match send_to(&u.socket, buf.as_slice(), to.as_deref().copied()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => {
                    u.sends.pop_front();
                    q.finish(id, r.map_err(Status::from), h);
                }
            }
        }
    }
}

/// Whether a socket's error watch fired (then it is re-armed, and the next `recvmsg` reports
/// the error); false when it did not or the socket is not connected (no watch).
fn error_pending(
    errors: &mut Option<ErrorWatch>,
    socket: &Arc<UdpSocket>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(watch) = errors else {
        return false;
    };
    if watch.as_mut().poll(cx).is_pending() {
        return false;
    }
    let s = socket.clone();
    *watch = Box::pin(async move { s.ready(Interest::ERROR).await });
    true
}

/// A datagram received: its length in the buffer, its source, `FLAG_TRUNC` if cut.
struct Datagram {
    len: usize,
    from: SocketAddr,
    flags: u32,
}

/// A slot no datagram has filled yet.
const NO_DATAGRAM: Datagram = Datagram {
    len: 0,
    from: SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::UNSPECIFIED,
        0,
    )),
    flags: 0,
};

/// One `recvmmsg` of up to `bufs.len()` datagrams, each into the first `cap` bytes of one
/// buffer's spare capacity (which grows by it), described in `got`; returns how many arrived. Fewer than asked
/// means the queue was empty: then tokio's readiness for `interest` is cleared (as a short
/// stream read clears it), so the next receive waits for the next event instead of trying
/// a recvmsg that would only say EAGAIN.
fn recv_batch(
    socket: &UdpSocket,
    bufs: &mut [Vec<u8>],
    got: &mut [Datagram],
    cap: usize,
    interest: Interest,
) -> io::Result<usize> {
    let k = bufs.len().min(got.len()).min(RECV_BATCH);
    // Only the `k` entries in use are initialised (zeroing all of them, 1.7 KiB, cost more
    // than the rest of this function).
    let mut iov = [const { MaybeUninit::<libc::iovec>::uninit() }; RECV_BATCH];
    let mut names = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; RECV_BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; RECV_BATCH];
    for i in 0..k {
        let spare = bufs[i].spare_capacity_mut();
        iov[i].write(libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len().min(cap),
        });
        names[i] = MaybeUninit::zeroed();
        // SAFETY: a zeroed message header is a valid value (no control data, no flags).
        let hdr = &mut msgs[i].write(unsafe { std::mem::zeroed() }).msg_hdr;
        hdr.msg_name = names[i].as_mut_ptr().cast();
        hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = iov[i].as_mut_ptr();
        hdr.msg_iovlen = 1;
    }
    let fd = socket.as_raw_fd();
    let mut short = None;
    let r = socket.try_io(interest, || {
        // SAFETY: each header points at its live address storage and iovec, and each
        // iovec at a buffer's spare capacity; `k` headers are initialised.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr().cast::<libc::mmsghdr>(),
                k as libc::c_uint,
                0,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < k && interest == Interest::READABLE {
            short = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    let n = short.map_or(r, Ok)?;
    for i in 0..n {
        // SAFETY: `n <= k`, and the first `k` headers and address storages were initialised
        // above (recvmmsg only wrote into them).
        let (msg, name) = unsafe { (msgs[i].assume_init_ref(), names[i].assume_init_ref()) };
        let len = msg.msg_len as usize;
        // SAFETY: recvmmsg initialised `len` bytes of this buffer's spare capacity.
        unsafe { bufs[i].set_len(len) };
        got[i] = Datagram {
            len,
            from: sockaddr_of(name).ok_or(io::ErrorKind::InvalidData)?,
            flags: if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                FLAG_TRUNC
            } else {
                0
            },
        };
    }
    Ok(n)
}

/// The IPv4 or IPv6 address the kernel stored in `ss`.
fn sockaddr_of(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: a storage of family AF_INET holds a sockaddr_in; storage is aligned
            // for every address type.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for AF_INET6 and sockaddr_in6.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// One `recvmsg` of at most `max` bytes into `buf`'s free space, if tokio says the socket is
/// ready for `interest` (clearing it when there is nothing); an owned buffer grows by the
/// bytes received.
fn recv_from(
    socket: &UdpSocket,
    buf: &mut ReadBuf,
    max: usize,
    interest: Interest,
) -> io::Result<Datagram> {
    let (ptr, len) = match &mut buf.0 {
        ReadInner::Owned(v) => (
            v.spare_capacity_mut().as_mut_ptr().cast::<u8>(),
            (v.capacity() - v.len()).min(max),
        ),
        ReadInner::Raw(ptr, len) => (*ptr, (*len).min(max)),
    };
    let fd = socket.as_raw_fd();
    // SAFETY: `ptr..ptr+len` is writable: a Vec's spare capacity, or raw memory its
    // submitter guaranteed until this op completes.
    let d = socket.try_io(interest, || unsafe { recvmsg(fd, ptr, len) })?;
    if let ReadInner::Owned(v) = &mut buf.0 {
        // SAFETY: recvmsg initialised `d.len` bytes of the spare capacity.
        unsafe { v.set_len(v.len() + d.len) };
    }
    Ok(d)
}

/// One `recvmsg` into `len` bytes at `ptr`.
///
/// # Safety
/// `fd` is an open datagram socket and `ptr..ptr+len` is writable.
unsafe fn recvmsg(fd: RawFd, ptr: *mut u8, len: usize) -> io::Result<Datagram> {
    let mut iov = libc::iovec {
        iov_base: ptr.cast(),
        iov_len: len,
    };
    // SAFETY: `init` writes a socket address of at most `*addr_len` bytes into `storage`
    // (the kernel does, through msg_name) and stores its length in `*addr_len`.
    let ((n, msg_flags), addr) = unsafe {
        SockAddr::try_init(|storage, addr_len| {
            // SAFETY: a zeroed msghdr is a valid value.
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = storage.cast();
            msg.msg_namelen = *addr_len;
            msg.msg_iov = &raw mut iov;
            msg.msg_iovlen = 1;
            // SAFETY: msg points at the address storage, `iov` (a live local) and the
            // caller's buffer.
            let n = libc::recvmsg(fd, &mut msg, 0);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            *addr_len = msg.msg_namelen;
            Ok((n as usize, msg.msg_flags))
        })
    }?;
    let from = addr.as_socket().ok_or(io::ErrorKind::InvalidData)?;
    let flags = if msg_flags & libc::MSG_TRUNC != 0 {
        FLAG_TRUNC
    } else {
        0
    };
    Ok(Datagram {
        len: n,
        from,
        flags,
    })
}

/// One `send` (to the connected peer) or `sendto`, with `MSG_NOSIGNAL`.
fn send_to(socket: &UdpSocket, data: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
    let fd = socket.as_raw_fd();
    socket.try_io(Interest::WRITABLE, || {
        let n = match to {
            // SAFETY: `data` is readable for its length; the socket is open.
            None => unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) },
            Some(addr) => {
                let addr = SockAddr::from(addr);
                // SAFETY: as above; `addr` is a valid socket address of `len()` bytes.
                unsafe {
                    libc::sendto(
                        fd,
                        data.as_ptr().cast(),
                        data.len(),
                        libc::MSG_NOSIGNAL,
                        addr.as_ptr().cast(),
                        addr.len(),
                    )
                }
            }
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
}
