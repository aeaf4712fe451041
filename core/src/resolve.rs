//! The resolver beneath name lookups: the query and answer types, the `Resolve` hook (the
//! system's `getaddrinfo`, or a test's), the one rule every call that takes a host name
//! checks it by, and `start`, which runs one lookup on the detached pool (`pool.rs`) and
//! hands back a future whose drop abandons it, so a pending lookup never holds anything up.

use std::ffi::{CStr, CString};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::pool;
use crate::status::Status;

/// The longest host name, in bytes, without a trailing dot (RFC 1035: 255 octets on the
/// wire, 253 characters written out). One label is at most 63 bytes.
pub const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// The longest service (a port number or a name from `/etc/services`).
pub(crate) const MAX_SERVICE_LEN: usize = 64;

/// What a lookup asks for, as `getaddrinfo(3)`'s hints: `AF_*`, `SOCK_*`, `IPPROTO_*` and
/// `AI_*` values of this system (0: any).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupHints {
    pub family: i32,
    pub socktype: i32,
    pub protocol: i32,
    pub flags: i32,
}

/// One address a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// `AF_INET` or `AF_INET6`.
    pub family: i32,
    pub socktype: i32,
    pub protocol: i32,
    pub addr: SocketAddr,
    /// The canonical name, on the first address when `AI_CANONNAME` was asked for.
    pub canonname: Option<String>,
}

/// One lookup, as a resolver sees it.
#[derive(Debug)]
pub struct Query {
    pub host: Option<String>,
    pub service: Option<String>,
    pub hints: LookupHints,
    slot: Arc<Mutex<Slot>>,
}

impl Query {
    /// True once nobody waits for the answer any more (the op was cancelled, timed out or
    /// its runtime shut down): a slow resolver may give up.
    pub fn abandoned(&self) -> bool {
        lock(&self.slot).abandoned
    }
}

/// Answers lookups. Runs on a pool thread, so it may block. The default is the system's
/// `getaddrinfo(3)` ([`SystemResolver`]); [`Runtime::set_resolver`](crate::Runtime::set_resolver) replaces it (tests use
/// that to supply addresses or to be slow without a network).
pub trait Resolve: Send + Sync + 'static {
    fn resolve(&self, query: &Query) -> Result<Vec<AddrInfo>, Status>;
}

/// The system's `getaddrinfo(3)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, q: &Query) -> Result<Vec<AddrInfo>, Status> {
        system_getaddrinfo(q)
    }
}

/// The resolver a new runtime starts with: the system's, or, when the environment variable
/// `POLYIO_TEST_LOOKUP_DELAY_MS` holds a number, the system's after that long a wait (a
/// test hook for slow lookups: the C, Python and Node tests of shutdown with lookups
/// pending use it; the wait ends early when the lookup is abandoned).
pub(crate) fn default_resolver() -> Arc<dyn Resolve> {
    match std::env::var("POLYIO_TEST_LOOKUP_DELAY_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(ms) => Arc::new(Delayed(Duration::from_millis(ms))),
        None => Arc::new(SystemResolver),
    }
}

/// The system resolver behind a wait (see `default_resolver`).
struct Delayed(Duration);

impl Resolve for Delayed {
    fn resolve(&self, q: &Query) -> Result<Vec<AddrInfo>, Status> {
        let start = std::time::Instant::now();
        while start.elapsed() < self.0 {
            if q.abandoned() {
                return Err(Status::Canceled);
            }
            std::thread::sleep(Duration::from_millis(5).min(self.0));
        }
        system_getaddrinfo(q)
    }
}

/// Checks a host name by the one rule every call taking a host uses: an IP literal
/// (IPv6 in brackets or not), or a name of at most [`MAX_HOST_LEN`] bytes (plus an optional
/// trailing dot) whose dot-separated labels are 1 to 63 printable ASCII characters, no
/// space. Anything else (empty, a NUL, non-ASCII: encode it with IDNA first, too long, an
/// empty label) is `InvalidArgument`, at submission. A well-formed name that does not
/// resolve fails later, in its completion, with `NameNotResolved`.
pub(crate) fn check_host(host: &str) -> Result<(), Status> {
    if ip_literal(host).is_some() {
        return Ok(());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > MAX_HOST_LEN {
        return Err(Status::InvalidArgument);
    }
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= MAX_LABEL_LEN && l.bytes().all(|b| b.is_ascii_graphic())
    };
    if name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(Status::InvalidArgument)
    }
}

/// The IP address `host` spells, with or without IPv6 brackets (`"::1"`, `"[::1]"`).
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Where a pool thread leaves a lookup's answer.
#[derive(Debug, Default)]
struct Slot {
    result: Option<Result<Vec<AddrInfo>, Status>>,
    waker: Option<Waker>,
    abandoned: bool,
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A lookup in flight on the pool.
pub(crate) struct Lookup {
    slot: Arc<Mutex<Slot>>,
}

impl Future for Lookup {
    type Output = Result<Vec<AddrInfo>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = lock(&self.slot);
        if let Some(r) = s.result.take() {
            return Poll::Ready(r);
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Lookup {
    fn drop(&mut self) {
        let mut s = lock(&self.slot);
        s.abandoned = true;
        s.waker = None;
    }
}

/// The system's `getaddrinfo(3)`, every address it returns (IPv4 and IPv6 only).
fn system_getaddrinfo(q: &Query) -> Result<Vec<AddrInfo>, Status> {
    let cstr = |s: &Option<String>| {
        s.as_deref()
            .map(CString::new)
            .transpose()
            .map_err(|_| Status::InvalidArgument)
    };
    let (host, service) = (cstr(&q.host)?, cstr(&q.service)?);
    // SAFETY: an all-zero addrinfo is a valid value (null pointers, zero numbers).
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = q.hints.family;
    hints.ai_socktype = q.hints.socktype;
    hints.ai_protocol = q.hints.protocol;
    hints.ai_flags = q.hints.flags;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: host and service are NUL-terminated strings or null, hints is a valid
    // addrinfo, and res receives a list we free below.
    let rc = unsafe { libc::getaddrinfo(ptr(&host), ptr(&service), &hints, &mut res) };
    if rc != 0 {
        return Err(gai_status(rc, std::io::Error::last_os_error()));
    }
    let mut out = Vec::new();
    let mut at = res;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getaddrinfo returned, not yet freed.
        let ai = unsafe { &*at };
        // SAFETY: ai_addr points to ai_addrlen bytes of a sockaddr of family ai_family.
        if let Some(addr) = unsafe { sockaddr_of(ai) } {
            let canonname = (!ai.ai_canonname.is_null()).then(|| {
                // SAFETY: a non-null ai_canonname is a NUL-terminated string in the list.
                unsafe { CStr::from_ptr(ai.ai_canonname) }
                    .to_string_lossy()
                    .into_owned()
            });
            out.push(AddrInfo {
                family: ai.ai_family,
                socktype: ai.ai_socktype,
                protocol: ai.ai_protocol,
                addr,
                canonname,
            });
        }
        at = ai.ai_next;
    }
    // SAFETY: `res` came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

/// The socket address of one `addrinfo` node; `None` for families other than IPv4/IPv6.
///
/// # Safety
/// `ai.ai_addr` must point to `ai.ai_addrlen` readable bytes holding a sockaddr of family
/// `ai.ai_family`.
unsafe fn sockaddr_of(ai: &libc::addrinfo) -> Option<SocketAddr> {
    let len = ai.ai_addrlen as usize;
    match ai.ai_family {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the caller promises a sockaddr_in of this length (unaligned read).
            let sa = unsafe { std::ptr::read_unaligned(ai.ai_addr.cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sa.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the caller promises a sockaddr_in6 of this length (unaligned read).
            let sa = unsafe { std::ptr::read_unaligned(ai.ai_addr.cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(sa.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sa.sin6_port),
                sa.sin6_flowinfo,
                sa.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The status for a `getaddrinfo` error code (`errno` for `EAI_SYSTEM`).
fn gai_status(rc: i32, errno: std::io::Error) -> Status {
    match rc {
        libc::EAI_AGAIN => Status::NameTryAgain,
        libc::EAI_MEMORY => Status::NoMemory,
        libc::EAI_SYSTEM => Status::from(errno),
        libc::EAI_SERVICE | libc::EAI_FAMILY | libc::EAI_SOCKTYPE | libc::EAI_BADFLAGS => {
            Status::InvalidArgument
        }
        // EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY, EAI_FAIL: no answer for this name.
        _ => Status::NameNotResolved,
    }
}

/// Starts a lookup on the pool with `resolver`; the future yields its answer. Dropping the
/// future abandons the lookup.
pub(crate) fn start(
    resolver: Arc<dyn Resolve>,
    host: Option<&str>,
    service: Option<&str>,
    hints: LookupHints,
) -> Result<Lookup, Status> {
    let slot = Arc::new(Mutex::new(Slot::default()));
    let query = Query {
        host: host.map(str::to_owned),
        service: service.map(str::to_owned),
        hints,
        slot: slot.clone(),
    };
    pool::spawn(move || {
        if query.abandoned() {
            return;
        }
        let r = resolver.resolve(&query);
        let waker = {
            let mut s = lock(&query.slot);
            if s.abandoned {
                return;
            }
            s.result = Some(r);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    })?;
    Ok(Lookup { slot })
}
