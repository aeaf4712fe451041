//! What every operation shares: the handle type, the completion record with its op kinds,
//! flags and the address records it may carry (a received datagram's `polyio_addr`, a
//! lookup's `polyio_addrinfo` list), and the multi-shot read payloads lent to C until
//! `polyio_buffer_release` (a process-wide registry by never-reused id, so no release is UB).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{CString, c_char, c_int};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use polyio_core::{AddrInfo, Completion, Runtime, Status};

use crate::status::polyio_status;

/// A handle names a connection, a listener or a file: an opaque 64-bit id (slot, generation and
/// runtime id), never a pointer. 0 (`POLYIO_HANDLE_NONE`) names nothing. A stale, closed,
/// foreign or made-up handle gets `POLYIO_STATUS_BAD_HANDLE`, never undefined behaviour.
///
/// The exact guarantee: within one runtime a closed handle never names anything again (a
/// slot whose 24-bit generation is used up is retired, not reused). A handle of another
/// live runtime never resolves (16-bit runtime ids are unique among live runtimes). A
/// handle of a freed runtime is BAD_HANDLE in every runtime created until 65,534 more
/// runtimes have been created (ids are handed out round-robin); past that, the id comes
/// back and such a handle could name an object of the new runtime.
pub type polyio_handle = u64;

/// The handle that names nothing.
pub const POLYIO_HANDLE_NONE: polyio_handle = 0;

/// Completion flag: the operation completed during its submit call (the inline fast path).
pub const POLYIO_COMPLETION_INLINE: u32 = 1;

/// Completion flag: more completions follow for the same operation (`polyio_read_multishot`);
/// the operation stays in flight, and its last completion comes without this flag.
pub const POLYIO_COMPLETION_MORE: u32 = 2;

/// Completion flag: the operation moved some bytes before it ended with an error, a cancel
/// or a deadline, and `partial` says how many. A write flagged so sent its first `partial`
/// bytes (the peer may get them) and not the rest: the stream's framing is broken, and the
/// caller should close the connection rather than write on.
pub const POLYIO_COMPLETION_PARTIAL: u32 = 4;

/// Completion flag: a received datagram was longer than the buffer (`polyio_udp_recv`'s
/// `cap`, `polyio_udp_recv_multishot`'s `cap`): `result` bytes of it were kept, the rest is
/// lost.
pub const POLYIO_COMPLETION_TRUNC: u32 = 8;

/// Writes `addr` to `*out` (INVALID_ARGUMENT when `out` is NULL, the error otherwise).
pub(crate) fn write_addr(out: *mut polyio_addr, addr: Result<SocketAddr, Status>) -> polyio_status {
    if out.is_null() {
        return polyio_status::InvalidArgument;
    }
    match addr {
        Ok(a) => {
            // SAFETY: checked non-NULL; the caller promised it is writable.
            unsafe { out.write(polyio_addr::from_socket(a)) };
            polyio_status::Ok
        }
        Err(s) => s.into(),
    }
}

/// The kind of operation a completion ends.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum polyio_op {
    Connect = 1,
    Accept = 2,
    Read = 3,
    Write = 4,
    Shutdown = 5,
    Timer = 6,
    /// `polyio_getaddrinfo`: the completion's `addrinfo` holds the addresses.
    Lookup = 7,
    /// `polyio_udp_send`.
    Send = 8,
    /// `polyio_udp_recv`, `polyio_udp_recv_multishot`.
    Recv = 9,
    /// Files (`polyio_fs_*`): their own range, so other kinds number theirs from 7.
    FsOpen = 20,
    FsRead = 21,
    FsWrite = 22,
    FsFsync = 23,
    FsStat = 24,
    FsClose = 25,
    FsReadFile = 26,
    FsWriteFile = 27,
    FsTruncate = 28,
}

/// One finished operation (or, flagged `POLYIO_COMPLETION_MORE`, one step of a multi-shot
/// operation), as `polyio_turn` and `polyio_reap` report it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct polyio_completion {
    /// The value given at submission.
    pub user_data: u64,
    /// The connection the operation used; for connect and accept, the new connection.
    pub handle: polyio_handle,
    /// `>= 0`: success (bytes read or written; 0 for a read means end of stream).
    /// `< 0`: a `polyio_status` error code.
    pub result: i64,
    /// A `polyio_op` value.
    pub op: u32,
    /// `POLYIO_COMPLETION_*` bits.
    pub flags: u32,
    /// The bytes a `polyio_read_multishot` chunk read or a `polyio_udp_recv_multishot`
    /// datagram holds (their `POLYIO_COMPLETION_MORE` completions, when not empty), or a
    /// `polyio_fs_read_file` read (the whole file); NULL in every other completion. polyio
    /// lends this buffer to the caller:
    /// it stays valid and unchanged (also across turns, reaps and `polyio_runtime_free`)
    /// until the caller passes `payload_id` to `polyio_buffer_release`. Never `free` it and
    /// never write to it; a payload that is never released is leaked.
    pub payload: *const u8,
    /// The number of bytes at `payload` (equal to `result`); 0 when `payload` is NULL.
    pub payload_len: usize,
    /// The id that hands `payload` back (`polyio_buffer_release`); 0 when `payload` is NULL.
    /// Ids are never reused within a process.
    pub payload_id: u64,
    /// With `POLYIO_COMPLETION_PARTIAL` (`result < 0`): the bytes the operation moved before
    /// it failed (for a write, the bytes already with the kernel). 0 otherwise.
    pub partial: u64,
    /// For a successful `POLYIO_OP_LOOKUP`: the addresses found (`result` of them), a list
    /// the caller now owns and must free with `polyio_addrinfo_free`. NULL in every other
    /// completion.
    pub addrinfo: *mut polyio_addrinfo,
    /// For a received datagram (op RECV, `result >= 0`): where it came from. Part of the
    /// record (copied out with it, nothing to free); family 0 in every other completion.
    pub addr: polyio_addr,
}

/// A socket address in text form.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct polyio_addr {
    /// The IP address, NUL-terminated (`"127.0.0.1"`, `"::1"`).
    pub ip: [c_char; 46],
    pub port: u16,
    /// 4 or 6; 0 in a completion that carries no address.
    pub family: u8,
}

impl From<SocketAddr> for polyio_addr {
    fn from(addr: SocketAddr) -> polyio_addr {
        polyio_addr::from_socket(addr)
    }
}

impl polyio_addr {
    /// The record that carries no address (family 0).
    pub(crate) const NONE: polyio_addr = polyio_addr {
        ip: [0; 46],
        port: 0,
        family: 0,
    };

    /// `addr` in text form (it runs per datagram: the text of the last IP is reused).
    pub(crate) fn from_socket(addr: SocketAddr) -> polyio_addr {
        let ip = match LAST_IP.get() {
            Some((last, text)) if last == addr.ip() => text,
            _ => {
                let text = ip_text(addr.ip());
                LAST_IP.set(Some((addr.ip(), text)));
                text
            }
        };
        polyio_addr {
            ip,
            port: addr.port(),
            family: if addr.is_ipv4() { 4 } else { 6 },
        }
    }

    /// The address this record names; `None` when it is not a valid IP literal with a
    /// NUL inside `ip`.
    pub(crate) fn socket_addr(&self) -> Option<SocketAddr> {
        if let Some((last, text)) = LAST_IP.get() {
            if text == self.ip {
                return Some(SocketAddr::new(last, self.port));
            }
        }
        let ip = self.parse_ip()?;
        LAST_IP.set(Some((ip, self.ip)));
        Some(SocketAddr::new(ip, self.port))
    }
}

thread_local! {
    /// The last IP address formatted into a record or parsed from one, and its text (NUL
    /// padded): datagrams mostly come from and go back to few hosts, so most records cost
    /// neither formatting nor parsing.
    static LAST_IP: Cell<Option<(IpAddr, [c_char; 46])>> = const { Cell::new(None) };
}

/// `ip` in text form, NUL padded, formatted without a heap allocation.
fn ip_text(ip: IpAddr) -> [c_char; 46] {
    use std::io::Write;
    let mut text = [0u8; 46];
    match ip {
        // The common case: four octets by hand (`write!` costs ~1000
        // instructions).
        IpAddr::V4(v4) => {
            let mut at = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[at] = b'.';
                    at += 1;
                }
                if octet >= 100 {
                    text[at] = b'0' + octet / 100;
                    at += 1;
                }
                if octet >= 10 {
                    text[at] = b'0' + octet / 10 % 10;
                    at += 1;
                }
                text[at] = b'0' + octet % 10;
                at += 1;
            }
        }
        // The longest IPv6 text is 45 bytes: it fits, leaving the NUL.
        ip @ IpAddr::V6(_) => {
            let _ = write!(&mut text[..45], "{ip}");
        }
    }
    text.map(|b| b as c_char)
}

impl polyio_addr {
    /// The IP address in `ip`; `None` when it is not a valid IP literal with a NUL inside.
    fn parse_ip(&self) -> Option<IpAddr> {
        if let Some(v4) = ipv4_literal(&self.ip) {
            return Some(IpAddr::V4(v4));
        }
        let len = self.ip.iter().position(|&c| c == 0)?;
        // SAFETY: `c_char` and `u8` have one size and alignment; `len` is within `ip`.
        let bytes = unsafe { std::slice::from_raw_parts(self.ip.as_ptr().cast::<u8>(), len) };
        std::str::from_utf8(bytes).ok()?.parse().ok()
    }
}

/// A NUL-terminated dotted-quad IPv4 literal as `Ipv4Addr::from_str` reads it (four decimal
/// octets of 1 to 3 digits, no leading zero), parsed by hand in one pass as it runs per
/// datagram sent; `None` for anything else (which the std parser then judges).
fn ipv4_literal(text: &[c_char]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let (mut part, mut value, mut digits) = (0, 0u32, 0);
    for &c in text {
        match c as u8 {
            d @ b'0'..=b'9' => {
                if digits == 3 || (digits == 1 && value == 0) {
                    return None; // four digits, or a leading zero
                }
                value = value * 10 + u32::from(d - b'0');
                digits += 1;
            }
            end @ (b'.' | 0) => {
                if digits == 0 || value > 255 {
                    return None;
                }
                octets[part] = value as u8;
                part += 1;
                if end == 0 {
                    return (part == 4).then(|| std::net::Ipv4Addr::from(octets));
                }
                if part == 4 {
                    return None;
                }
                (value, digits) = (0, 0);
            }
            _ => return None,
        }
    }
    None
}

/// One address a lookup found; `next` links the list. The list belongs to the caller from
/// the moment its completion is reaped; free the whole list once, by its first node, with
/// `polyio_addrinfo_free`. Do not modify it.
#[repr(C)]
#[derive(Debug)]
pub struct polyio_addrinfo {
    /// The next address, or NULL after the last.
    pub next: *mut polyio_addrinfo,
    /// `AF_INET` or `AF_INET6`.
    pub family: c_int,
    pub socktype: c_int,
    pub protocol: c_int,
    /// The address and port, in text form.
    pub addr: polyio_addr,
    /// The canonical name (NUL-terminated) on the first node when `AI_CANONNAME` was asked
    /// for; NULL otherwise. Freed with the list.
    pub canonname: *mut c_char,
}

/// The largest released buffer kept for reuse (a whole file's is usually larger: freed).
const MAX_RECYCLED: usize = 1 << 20;

/// Read buffers kept per runtime for reuse between releases and the next turn.
const MAX_RETURNED: usize = 64;

/// Payloads lent to C, and released ones waiting to be reused by the runtime that lent them.
struct Registry {
    lent: Lent,
    /// By `Lender` id, for live runtimes only: released buffers for `Runtime::recycle`.
    returned: BTreeMap<u64, Vec<Vec<u8>>>,
}

/// Entries the window holds before its oldest still-lent ones move to the hash map.
const WINDOW_MAX: usize = 1024;

/// The lent payloads by id (ids count up from 1 and are never reused; 0 means no payload),
/// each with its lending runtime's `Lender` id. Payloads are mostly released in about the
/// order they were lent, so the ids from `base` on live in a window indexed by `id - base`:
/// lending is a push, releasing an index, no hashing. A payload kept while the window grows
/// past `WINDOW_MAX` moves to `held`, a hash map, so a buffer held for long pins no memory.
struct Lent {
    /// The id of `window[0]`; `base + window.len()` is the next id.
    base: u64,
    window: VecDeque<Option<(u64, Vec<u8>)>>,
    held: HashMap<u64, (u64, Vec<u8>), BuildHasherDefault<IdHasher>>,
}

impl Lent {
    /// Lends `buf` for `lender`; returns its new id.
    fn insert(&mut self, lender: u64, buf: Vec<u8>) -> u64 {
        let id = self.base + self.window.len() as u64;
        self.window.push_back(Some((lender, buf)));
        if self.window.len() > WINDOW_MAX {
            // Keep the older half's still-lent entries aside (amortised over many lends).
            while self.window.len() > WINDOW_MAX / 2 {
                if let Some(Some(e)) = self.window.pop_front() {
                    self.held.insert(self.base, e);
                }
                self.base += 1;
            }
        }
        id
    }

    /// Takes back the payload `id`, if it is lent.
    fn remove(&mut self, id: u64) -> Option<(u64, Vec<u8>)> {
        let Some(at) = id.checked_sub(self.base) else {
            return self.held.remove(&id);
        };
        let e = self.window.get_mut(usize::try_from(at).ok()?)?.take()?;
        while let Some(None) = self.window.front() {
            self.window.pop_front();
            self.base += 1;
        }
        Some(e)
    }
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    lent: Lent {
        base: 1,
        window: VecDeque::new(),
        held: HashMap::with_hasher(BuildHasherDefault::new()),
    },
    returned: BTreeMap::new(),
});
/// Hashes a payload id (unique, counted up from 1) with one multiplication, which spreads
/// consecutive ids over the table (Fibonacci hashing).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

static NEXT_LENDER: AtomicU64 = AtomicU64::new(1);

fn registry() -> MutexGuard<'static, Registry> {
    // The registry's maps stay consistent even if a holder panicked.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A runtime's name in the registry; dropping it (with the runtime) stops recycling into it,
/// while the payloads it lent stay valid until released.
pub(crate) struct Lender {
    id: u64,
    /// Whether this runtime ever lent a payload: until then no call takes the lock.
    lent: bool,
}

impl Lender {
    pub(crate) fn new() -> Lender {
        let id = NEXT_LENDER.fetch_add(1, Ordering::Relaxed);
        registry().returned.insert(id, Vec::new());
        Lender { id, lent: false }
    }

    /// Gives `core` the buffers released since the last call, for its next reads.
    pub(crate) fn take_back(&self, core: &mut Runtime) {
        if !self.lent {
            return;
        }
        let mut reg = registry();
        let back = reg.returned.get_mut(&self.id);
        for buf in back.into_iter().flat_map(|b| b.drain(..)) {
            core.recycle(buf);
        }
    }
}

impl Drop for Lender {
    fn drop(&mut self) {
        let back = registry().returned.remove(&self.id);
        drop(back);
    }
}

/// Moves `done` into C records at `out`, lending each payload buffer to the caller.
///
/// # Safety
/// `out` has room for `done.len()` records.
pub(crate) unsafe fn write_records(
    lender: &mut Lender,
    core: &mut Runtime,
    done: &mut Vec<Completion>,
    out: *mut polyio_completion,
) {
    let mut reg: Option<MutexGuard<'static, Registry>> = None;
    for (i, c) in done.drain(..).enumerate() {
        let (payload, payload_len, payload_id) = match c.buf {
            Some(buf) if !buf.is_empty() => {
                let (p, len) = (buf.as_ptr(), buf.len());
                let reg = reg.get_or_insert_with(registry);
                let id = reg.lent.insert(lender.id, buf);
                lender.lent = true;
                (p, len, id)
            }
            Some(buf) => {
                core.recycle(buf);
                (std::ptr::null(), 0, 0)
            }
            None => (std::ptr::null(), 0, 0),
        };
        let rec = polyio_completion {
            user_data: c.user_data,
            handle: c.handle.into_raw(),
            result: c.result,
            op: c.op as u32,
            flags: c.flags,
            payload,
            payload_len,
            payload_id,
            partial: c.partial,
            addrinfo: c.addrs.map_or(std::ptr::null_mut(), |a| addrinfo_list(&a)),
            addr: c.addr.map_or(polyio_addr::NONE, polyio_addr::from_socket),
        };
        // SAFETY: `i < done.len()` and the caller promised room for that many at `out`.
        unsafe { out.add(i).write(rec) };
    }
}

/// The C list for a lookup's addresses (NULL for none), owned by the caller from here on.
pub(crate) fn addrinfo_list(addrs: &[AddrInfo]) -> *mut polyio_addrinfo {
    let mut head: *mut polyio_addrinfo = std::ptr::null_mut();
    for a in addrs.iter().rev() {
        let canonname = a
            .canonname
            .as_deref()
            .and_then(|c| CString::new(c).ok())
            .map_or(std::ptr::null_mut(), CString::into_raw);
        head = Box::into_raw(Box::new(polyio_addrinfo {
            next: head,
            family: a.family,
            socktype: a.socktype,
            protocol: a.protocol,
            addr: polyio_addr::from(a.addr),
            canonname,
        }));
    }
    head
}

/// Hands back the payload of a `POLYIO_COMPLETION_MORE` completion by its `payload_id`.
/// Afterwards its `payload` pointer is invalid; polyio may reuse the buffer for a later read.
/// Safe from any thread, and after the runtime that lent the payload is freed.
///
/// Errors: INVALID_ARGUMENT (`payload_id` 0), NOT_FOUND (no payload with this id is lent
/// now: released already, or never given out). Such a call changes nothing.
#[unsafe(no_mangle)]
pub extern "C" fn polyio_buffer_release(payload_id: u64) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        if payload_id == 0 {
            return polyio_status::InvalidArgument;
        }
        let mut reg = registry();
        let Some((lender, buf)) = reg.lent.remove(payload_id) else {
            return polyio_status::NotFound;
        };
        match reg.returned.get_mut(&lender) {
            Some(back) if back.len() < MAX_RETURNED && buf.capacity() <= MAX_RECYCLED => {
                back.push(buf)
            }
            _ => {
                drop(reg);
                drop(buf);
            }
        }
        polyio_status::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_match_core() {
        assert_eq!(POLYIO_COMPLETION_INLINE, polyio_core::FLAG_INLINE);
        assert_eq!(POLYIO_COMPLETION_MORE, polyio_core::FLAG_MORE);
        assert_eq!(POLYIO_COMPLETION_PARTIAL, polyio_core::FLAG_PARTIAL);
        assert_eq!(POLYIO_COMPLETION_TRUNC, polyio_core::FLAG_TRUNC);
        assert_eq!(polyio_op::Send as u32, polyio_core::OpCode::Send as u32);
        assert_eq!(polyio_op::Recv as u32, polyio_core::OpCode::Recv as u32);
    }

    #[test]
    fn addresses_round_trip_through_the_text_record() {
        for text in [
            "127.0.0.1:9",
            "[::1]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:1",
        ] {
            let a: SocketAddr = text.parse().unwrap();
            assert_eq!(polyio_addr::from_socket(a).socket_addr(), Some(a));
        }
        let mut bad = polyio_addr::NONE;
        bad.ip = [b'1' as c_char; 46];
        assert_eq!(bad.socket_addr(), None);
    }

    #[test]
    fn the_last_ip_kept_never_stands_for_another() {
        let a: SocketAddr = "127.0.0.1:5".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:6".parse().unwrap();
        let (ra, rb) = (polyio_addr::from_socket(a), polyio_addr::from_socket(b));
        assert_eq!(ra.socket_addr(), Some(a));
        assert_eq!(rb.socket_addr(), Some(b));
        assert_eq!(polyio_addr::from_socket(a).socket_addr(), Some(a));
        let mut odd = ra;
        odd.ip[20] = b'x' as c_char; // past the NUL: same address, other bytes
        assert_eq!(odd.socket_addr(), Some(a));
        odd.ip[0] = b'x' as c_char;
        assert_eq!(odd.socket_addr(), None);
    }

    #[test]
    fn ipv4_text_matches_std_both_ways() {
        for octets in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [10, 20, 99, 100],
            [255, 255, 255, 9],
        ] {
            let a = SocketAddr::from((octets, 80));
            let rec = polyio_addr::from_socket(a);
            let len = rec.ip.iter().position(|&c| c == 0).unwrap();
            let text: Vec<u8> = rec.ip[..len].iter().map(|&c| c as u8).collect();
            assert_eq!(text, a.ip().to_string().into_bytes());
        }
        for text in [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.1000",
            "a.b.c.d",
            "",
            "1.2.3.-4",
            "::1",
        ] {
            let nul_terminated: Vec<c_char> =
                text.bytes().chain([0]).map(|b| b as c_char).collect();
            assert_eq!(
                ipv4_literal(&nul_terminated),
                text.parse::<std::net::Ipv4Addr>().ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn lent_ids_resolve_in_any_release_order() {
        let mut lent = Lent {
            base: 1,
            window: VecDeque::new(),
            held: HashMap::default(),
        };
        let ids: Vec<u64> = (0..3 * WINDOW_MAX)
            .map(|i| lent.insert(7, vec![i as u8]))
            .collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "counted up");
        assert_eq!(ids[0], 1);
        // The first stays lent while thousands come and go: it moved aside, the window
        // stayed bounded.
        for (i, &id) in ids.iter().enumerate().skip(1).rev() {
            assert_eq!(lent.remove(id), Some((7, vec![i as u8])));
            assert_eq!(lent.remove(id), None, "twice");
        }
        assert!(lent.window.len() <= WINDOW_MAX);
        assert_eq!(lent.remove(ids[0]), Some((7, vec![0])));
        assert_eq!(lent.remove(ids[0]), None);
        assert!(lent.window.is_empty() && lent.held.is_empty());
        let next = lent.insert(7, vec![1]);
        assert_eq!(next, ids[ids.len() - 1] + 1, "never reused");
        assert_eq!(lent.remove(next + 1), None, "never given out");
        assert_eq!(lent.remove(0), None);
        assert_eq!(lent.remove(u64::MAX), None);
        // Released in lending order: the window empties as it goes.
        let more: Vec<u64> = (0..10).map(|_| lent.insert(8, Vec::new())).collect();
        for id in more {
            assert!(lent.remove(id).is_some());
        }
        assert_eq!(lent.remove(next), Some((7, vec![1])));
        assert!(lent.window.is_empty());
    }

    #[test]
    fn hostile_releases_change_nothing() {
        let lender = Lender::new();
        let id = {
            let mut reg = registry();
            reg.lent.insert(lender.id, vec![1u8, 2, 3])
        };
        assert_eq!(polyio_buffer_release(0), polyio_status::InvalidArgument);
        assert_eq!(polyio_buffer_release(u64::MAX), polyio_status::NotFound);
        drop(lender);
        assert_eq!(
            polyio_buffer_release(id),
            polyio_status::Ok,
            "after its runtime went"
        );
        assert_eq!(polyio_buffer_release(id), polyio_status::NotFound, "twice");
    }
}
